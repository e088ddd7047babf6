//! End-to-end tests: the real server on an ephemeral loopback port, real WebSocket and HTTP
//! clients.

mod auth;
mod expiry;
mod frames;
mod golden_path;
mod health;
mod http;
mod isolation;
mod lifecycle;
mod reliability;
