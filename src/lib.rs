//! Workspace-level package of agentwire: it holds the end-to-end tests under `tests/` and the
//! runnable programs under `examples/`. It has no API of its own; see the `agentwire-*` crates.
