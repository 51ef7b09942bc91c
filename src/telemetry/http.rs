//! The HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, `/v1/state/{location}/{sku}`,
//! `/v1/risks/top?n=` and `/v1/alerts/open?location=&kind=&limit=`.
//!
//! With a token ([`AppState::with_token`], from `http.token_file`; required by the config when
//! the server binds beyond loopback) every `/v1/*` request needs `Authorization: Bearer
//! <token>`, compared in constant time; a missing or wrong one gets 401. `/metrics` and the
//! probes stay open (Prometheus and the kubelet send no token).
//!
//! Hardening, because this port faces whatever can reach the pod: GET (and HEAD) only, other
//! methods get 405; a header-read timeout (which also closes idle keep-alive connections and
//! slow-loris clients), a per-request timeout (503), a global concurrency limit on requests, a
//! cap on open connections and small request heads and bodies. The bind address comes from the
//! caller (the config's default is loopback).
//!
//! The accept loop is ours rather than `axum::serve` so that hyper gets a timer (without one
//! its header-read timeout never fires) and so that shutdown drains: on cancellation the
//! listener closes, each connection finishes its in-flight request and closes, and
//! [`HttpServer::wait`] returns when all have.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::{Health, Metrics, TelemetryError};
use crate::event::{KEY_SEPARATOR, MAX_ID_BYTES};

/// Default `n` of `/v1/risks/top`.
pub const DEFAULT_TOP_N: usize = 50;
/// Largest `n` of `/v1/risks/top`; larger values are clamped.
pub const MAX_TOP_N: usize = 1000;

/// Read access to the keys this instance holds, implemented by the service over its shards.
///
/// Calls run on tokio's blocking pool, so an implementation may block briefly (e.g. ask each
/// shard's task over a channel and wait for the reply); the request timeout bounds what the
/// client waits, and the concurrency limit bounds how many calls run at once.
pub trait StateQuery: Send + Sync + 'static {
    /// The current state, risk and reasons of one key, or `None` if this instance does not
    /// hold it (not assigned here, or never seen).
    fn key(&self, location: &str, sku: &str) -> Option<Value>;
    /// The `n` keys with the highest current risk on this instance, highest first.
    fn top(&self, n: usize) -> Vec<Value>;
    /// The open confirmed alerts of the keys this instance holds that pass `filter`, at most
    /// `filter.limit`, sorted by (location, sku, kind). The default holds none (an
    /// implementation without alerts, e.g. a test double of the other queries).
    fn open_alerts(&self, filter: &OpenAlertFilter) -> Vec<Value> {
        let _ = filter;
        Vec::new()
    }
}

/// Default `limit` of `/v1/alerts/open`.
pub const DEFAULT_OPEN_LIMIT: usize = 1000;
/// Largest `limit` of `/v1/alerts/open`; larger values are clamped.
pub const MAX_OPEN_LIMIT: usize = 10_000;

/// What `/v1/alerts/open` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAlertFilter {
    /// Only this location.
    pub location: Option<String>,
    /// Only this kind.
    pub kind: Option<crate::alert::AlertKind>,
    /// At most this many (one more is asked for, to tell whether the list is cut).
    pub limit: usize,
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Exported by `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Reported by `/readyz`.
    pub health: Arc<Health>,
    /// Answers `/v1/state/…`, `/v1/risks/top` and `/v1/alerts/open`.
    pub query: Arc<dyn StateQuery>,
    /// The bearer token `/v1/*` requires; `None`: no token asked.
    token: Option<Arc<crate::config::Secret>>,
}

impl AppState {
    /// Bundles the shared parts.
    pub fn new(metrics: Arc<Metrics>, health: Arc<Health>, query: Arc<dyn StateQuery>) -> Self {
        AppState {
            metrics,
            health,
            query,
            token: None,
        }
    }

    /// Requires `Authorization: Bearer <token>` on `/v1/*` (`http.token_file`).
    pub fn with_token(mut self, token: Option<crate::config::Secret>) -> Self {
        self.token = token.map(Arc::new);
        self
    }
}

/// Server limits. The defaults suit a metrics scraper, probes and a few operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest time from the first byte of a request head (or from idling on a keep-alive
    /// connection) to its end; the connection is closed past it.
    pub header_read_timeout: Duration,
    /// Longest time to answer one request (503 past it).
    pub request_timeout: Duration,
    /// Requests processed at once; more wait (within their timeout).
    pub max_concurrent_requests: usize,
    /// Open connections; further clients wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 64,
            max_connections: 256,
        }
    }
}

impl HttpLimits {
    /// The limits `[http]` sets: `request_timeout_ms` bounds a request, its head included (the
    /// header-read timeout is the default's or that, whichever is shorter), and
    /// `max_concurrent_requests`; the connection cap keeps its default.
    pub fn from_config(http: &crate::config::HttpSection) -> Self {
        let d = HttpLimits::default();
        let request_timeout = http.request_timeout();
        HttpLimits {
            header_read_timeout: d.header_read_timeout.min(request_timeout),
            request_timeout,
            max_concurrent_requests: http.max_concurrent_requests,
            max_connections: d.max_connections,
        }
    }
}

// GET requests carry no body; the head limit (hyper's read buffer) bounds what a client can
// make us hold per connection.
const MAX_BODY_BYTES: usize = 1024;
const MAX_HEAD_BYTES: usize = 16 * 1024;
// After an accept error (e.g. out of file descriptors), pause instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A running server: its bound address, and a way to wait for it to drain.
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// The address actually bound (the port is chosen by the OS when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server has stopped: after the shutdown token is cancelled, the listener
    /// is closed and every open connection has finished its in-flight request. Bounded by the
    /// request and header timeouts for well-behaved clients; wrap it in your own deadline.
    pub async fn wait(self) -> Result<(), TelemetryError> {
        self.task.await.map_err(TelemetryError::Task)
    }
}

/// Binds `addr` and serves the endpoints with [`HttpLimits::default`] until `shutdown` is
/// cancelled. Returns once bound, with the actual address.
pub async fn serve(
    addr: SocketAddr,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<HttpServer, TelemetryError> {
    serve_with(addr, state, HttpLimits::default(), shutdown).await
}

/// [`serve`] with explicit limits.
pub async fn serve_with(
    addr: SocketAddr,
    state: AppState,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> Result<HttpServer, TelemetryError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    let app = router(state, &limits);
    let task = tokio::spawn(accept_loop(listener, app, limits, shutdown));
    Ok(HttpServer { local_addr, task })
}

fn router(state: AppState, limits: &HttpLimits) -> Router {
    let v1 = Router::new()
        .route("/v1/state/{location}/{sku}", get(key_state))
        .route("/v1/risks/top", get(top_risks))
        .route("/v1/alerts/open", get(open_alerts))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(v1)
        .fallback(not_found)
        .with_state(state)
        // Last added is outermost: the timeout also covers waiting for a concurrency permit.
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(GlobalConcurrencyLimitLayer::new(
            limits.max_concurrent_requests.max(1),
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_closed) => break,
            },
        };
        let stream = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Per-connection errors (reset before accept, EMFILE) must not stop the
                    // server; back off so a persistent one does not spin a core.
                    tracing::warn!(error = %e, "telemetry HTTP accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(MAX_HEAD_BYTES);
            let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
            tokio::select! {
                // Connection errors (timeouts, resets, malformed heads) end only this
                // connection; there is nobody to report them to.
                _ = conn.as_mut() => {}
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    // Stop accepting before draining, so clients see a refused connection, not a hang.
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(body) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encode_failed",
            e.to_string(),
        ),
    }
}

/// Alive unless the run loop's watchdog sees no progress for `service.watchdog_stall_secs`
/// (a hung process: the liveness probe fails and Kubernetes restarts it).
async fn healthz(State(state): State<AppState>) -> Response {
    match state.health.stalled() {
        None => "ok\n".into_response(),
        Some(idle) => {
            tracing::error!(
                idle_secs = idle.as_secs(),
                "the run loop has made no progress for longer than service.watchdog_stall_secs: /healthz fails"
            );
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "stalled",
                format!("the run loop has made no progress for {} s", idle.as_secs()),
            )
        }
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    let report = state.health.readiness();
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

async fn key_state(
    State(state): State<AppState>,
    Path((location, sku)): Path<(String, String)>,
) -> Response {
    let valid = |id: &str| {
        !id.is_empty() && id.len() <= MAX_ID_BYTES && !id.as_bytes().contains(&KEY_SEPARATOR)
    };
    if !valid(&location) || !valid(&sku) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_key",
            format!("location and sku must be 1..={MAX_ID_BYTES} bytes without '|'"),
        );
    }
    let query = Arc::clone(&state.query);
    let (loc, s) = (location.clone(), sku.clone());
    match tokio::task::spawn_blocking(move || query.key(&loc, &s)).await {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({
                "error": "not_found",
                "detail": "key is not held by this instance",
                "location": location,
                "sku": sku,
            })),
        )
            .into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "query_failed",
            "state query failed".into(),
        ),
    }
}

/// Query of `/v1/risks/top`.
#[derive(Debug, Deserialize)]
struct TopParams {
    n: Option<usize>,
}

async fn top_risks(State(state): State<AppState>, Query(params): Query<TopParams>) -> Response {
    let n = params.n.unwrap_or(DEFAULT_TOP_N).min(MAX_TOP_N);
    let query = Arc::clone(&state.query);
    match tokio::task::spawn_blocking(move || query.top(n)).await {
        Ok(mut risks) => {
            risks.truncate(n);
            Json(json!({ "n": risks.len(), "risks": risks })).into_response()
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "query_failed",
            "state query failed".into(),
        ),
    }
}

/// Query of `/v1/alerts/open`.
#[derive(Debug, Deserialize)]
struct OpenParams {
    location: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
}

async fn open_alerts(State(state): State<AppState>, Query(params): Query<OpenParams>) -> Response {
    use crate::alert::AlertKind;
    let kind = match params.kind.as_deref() {
        None | Some("") => None,
        Some("stockout_risk") => Some(AlertKind::StockoutRisk),
        Some("stockout") => Some(AlertKind::Stockout),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_kind",
                "kind must be stockout_risk or stockout".into(),
            )
        }
    };
    let location = params.location.filter(|l| !l.is_empty());
    if location
        .as_deref()
        .is_some_and(|l| l.len() > MAX_ID_BYTES || l.as_bytes().contains(&KEY_SEPARATOR))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_location",
            format!("location must be at most {MAX_ID_BYTES} bytes without '|'"),
        );
    }
    let limit = params
        .limit
        .unwrap_or(DEFAULT_OPEN_LIMIT)
        .clamp(1, MAX_OPEN_LIMIT);
    let filter = OpenAlertFilter {
        location,
        kind,
        limit: limit + 1,
    };
    let query = Arc::clone(&state.query);
    match tokio::task::spawn_blocking(move || query.open_alerts(&filter)).await {
        Ok(mut alerts) => {
            let truncated = alerts.len() > limit;
            alerts.truncate(limit);
            Json(json!({ "n": alerts.len(), "truncated": truncated, "alerts": alerts }))
                .into_response()
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "query_failed",
            "state query failed".into(),
        ),
    }
}

/// `/v1/*` with a token set: the request must carry `Authorization: Bearer <token>`.
async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    if presented.is_some_and(|p| token_matches(token.expose().as_bytes(), p)) {
        return next.run(request).await;
    }
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "/v1/* requires Authorization: Bearer <token> (http.token_file)".into(),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Constant-time in the token's contents (`subtle`): a wrong guess takes as long whatever
/// prefix of it is right. The length is not hidden; the token's entropy does not depend on it.
fn token_matches(expected: &[u8], presented: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    expected.ct_eq(presented).into()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint".into(),
    )
}

fn error(status: StatusCode, code: &str, detail: String) -> Response {
    (status, Json(json!({ "error": code, "detail": detail }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_exactly() {
        assert!(token_matches(b"s3cret", b"s3cret"));
        assert!(!token_matches(b"s3cret", b"s3cre"));
        assert!(!token_matches(b"s3cret", b"s3cret "));
        assert!(!token_matches(b"s3cret", b"S3cret"));
        assert!(!token_matches(b"s3cret", b""));
    }

    #[test]
    fn limits_follow_the_http_section() {
        let mut h = crate::config::Config::defaults().http;
        let l = HttpLimits::from_config(&h);
        assert_eq!(l.request_timeout, Duration::from_secs(10));
        assert_eq!(l.header_read_timeout, Duration::from_secs(5));
        assert_eq!(l.max_concurrent_requests, 64);
        h.request_timeout_ms = 500;
        h.max_concurrent_requests = 3;
        let l = HttpLimits::from_config(&h);
        // A slow request head is cut off by the request timeout too.
        assert_eq!(l.header_read_timeout, Duration::from_millis(500));
        assert_eq!(l.request_timeout, Duration::from_millis(500));
        assert_eq!(l.max_concurrent_requests, 3);
    }
}
