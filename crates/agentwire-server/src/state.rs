//! `AppState`: what every handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use agentwire_bridge_factory::{ExternalLimits, ExternalRuns};
use agentwire_startup::Ready;
use agentwire_ws::WsTransport;

use crate::limits::HttpLimits;
use crate::{Authenticate, Authenticator};

/// The server's shared state: the started components, the authenticator, and the drain flag.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    ready: Ready,
    auth: Arc<dyn Authenticate>,
    /// Whether `auth` is agentwire's own (config-driven) authenticator.
    builtin_auth: bool,
    started: Instant,
    draining: AtomicBool,
    external: ExternalRuns,
    ws: WsTransport,
    durable_streams: Option<agentwire_durable_streams::DurableStreams>,
    http_limits: Arc<HttpLimits>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("draining", &self.draining)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over a finished startup, authenticating as its config says.
    pub fn new(ready: Ready) -> Self {
        let auth = Authenticator::from_config(ready.config());
        let mut state = Self::with_authenticator(ready, auth);
        Arc::get_mut(&mut state.inner)
            .expect("just built")
            .builtin_auth = true;
        state
    }

    /// State whose requests are authenticated by `auth` (your own [`Authenticate`]).
    ///
    /// Installs nothing global. The WebSocket writers' metric handles bind to the `metrics`
    /// recorder installed when this is called: install yours, or call
    /// [`install_metrics_recorder`](crate::install_metrics_recorder), before it.
    pub fn with_authenticator(ready: Ready, auth: impl Authenticate) -> Self {
        let external = ExternalRuns::new(
            Arc::new(ready.bridge().clone()),
            ExternalLimits {
                idle_ttl: ready.config().history.ttl,
                ..ExternalLimits::default()
            },
        );
        let auth: Arc<dyn Authenticate> = Arc::new(auth);
        let ws = WsTransport::with_authenticator(ready.clone(), auth.clone());
        let http_limits = Arc::new(HttpLimits::new(&ready.config().limits));
        let durable_streams = crate::durable::build(&ready, auth.clone());
        Self {
            inner: Arc::new(Inner {
                http_limits,
                ready,
                auth,
                durable_streams,
                builtin_auth: false,
                started: Instant::now(),
                draining: AtomicBool::new(false),
                ws,
                external,
            }),
        }
    }

    /// Whether the dev-only debug routes may be served: only with agentwire's own dev auth
    /// (which refuses to run off loopback), never behind an embedding app's authenticator.
    pub fn debug_routes_enabled(&self) -> bool {
        self.inner.builtin_auth
            && self.ready().config().auth.mode == agentwire_startup::AuthMode::Dev
    }

    /// The started components.
    pub fn ready(&self) -> &Ready {
        &self.inner.ready
    }

    /// The Durable Streams surface mounted at `/ds`, unless `durable_streams.enabled` is off.
    pub fn durable_streams(&self) -> Option<&agentwire_durable_streams::DurableStreams> {
        self.inner.durable_streams.as_ref()
    }

    /// The authenticator.
    pub fn auth(&self) -> &dyn Authenticate {
        &*self.inner.auth
    }

    /// Seconds since the state was made.
    pub fn uptime_secs(&self) -> u64 {
        self.inner.started.elapsed().as_secs()
    }

    /// Whether shutdown began (readiness is 503, no new connections).
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    pub(crate) fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    /// The grammar bookkeeping of runs published over `/v1/publish`.
    pub fn external_runs(&self) -> &ExternalRuns {
        &self.inner.external
    }

    /// The per-user bounds of the HTTP API (request rates, open streams).
    pub(crate) fn http_limits(&self) -> &Arc<HttpLimits> {
        &self.inner.http_limits
    }

    /// The WebSocket transport behind `/ws` (its sessions, so shutdown can wait for them).
    pub(crate) fn ws_transport(&self) -> &WsTransport {
        &self.inner.ws
    }
}
