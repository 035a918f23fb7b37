//! The HTTP face of the service (axum): routes, limits, error answers.
//!
//! Every request, on every route, passes the same guard first: a per-address rate limit
//! (429 with `Retry-After`), a cap on requests in flight (503), and a time limit (503).
//! Bodies are capped at [`protocol::MAX_BODY`] bytes and must be exactly a
//! [`LeaseRequest`]. Logs carry no customer names, keys, machine hashes or addresses.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use callhelper_licence::MachineHash;
use callhelper_licence::protocol::{
    self, DeactivateBody, ErrorBody, LeaseBody, LeaseRequest, code,
};
use tokio::sync::Semaphore;

use crate::db::Store;
use crate::ratelimit::{RateConfig, RateLimiter};
use crate::service::{Refusal, Service, ServiceError};

/// Limits applied to every request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Per-address rate.
    pub rate: RateConfig,
    /// Requests handled at once; more get 503.
    pub max_in_flight: usize,
    /// Longest time one request may take.
    pub timeout: Duration,
    /// Take the client address from the last `X-Forwarded-For` entry (only behind a
    /// reverse proxy that sets it).
    pub trust_forwarded_for: bool,
    /// Print one line per request (method, path, status, time; nothing personal).
    pub log_requests: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            rate: RateConfig::default(),
            max_in_flight: 256,
            timeout: Duration::from_secs(10),
            trust_forwarded_for: false,
            log_requests: false,
        }
    }
}

struct Guard {
    limits: Limits,
    limiter: RateLimiter,
    in_flight: Arc<Semaphore>,
}

fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

fn error(status: StatusCode, code: &str) -> Response {
    json(
        status,
        &ErrorBody {
            code: code.into(),
            seats: None,
            retry_after: None,
        },
    )
}

fn client_ip(headers: &HeaderMap, peer: SocketAddr, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for {
        if let Some(ip) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back()
        {
            return ip;
        }
    }
    peer.ip()
}

async fn guard(
    State(g): State<Arc<Guard>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let ip = client_ip(req.headers(), peer, g.limits.trust_forwarded_for);
    let resp = if let Err(wait) = g.limiter.check(ip, started) {
        let mut r = json(
            StatusCode::TOO_MANY_REQUESTS,
            &ErrorBody {
                code: code::RATE_LIMITED.into(),
                seats: None,
                retry_after: Some(wait),
            },
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        r
    } else if let Ok(_permit) = g.in_flight.clone().try_acquire_owned() {
        match tokio::time::timeout(g.limits.timeout, next.run(req)).await {
            Ok(r) => r,
            Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, code::BUSY),
        }
    } else {
        error(StatusCode::SERVICE_UNAVAILABLE, code::BUSY)
    };
    if g.limits.log_requests {
        eprintln!(
            "{method} {path} {} {:.1} ms",
            resp.status().as_u16(),
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    resp
}

/// The request body, or `None` for anything that is not exactly a well-formed request.
fn parse(body: &[u8]) -> Option<(LeaseRequest, MachineHash)> {
    let req: LeaseRequest = serde_json::from_slice(body).ok()?;
    let machine = MachineHash::parse(&req.machine)?;
    Some((req, machine))
}

fn refusal(e: ServiceError) -> Response {
    match e {
        ServiceError::Refused(Refusal::BadRequest) => {
            error(StatusCode::BAD_REQUEST, code::BAD_REQUEST)
        }
        ServiceError::Refused(Refusal::Invalid) => {
            error(StatusCode::FORBIDDEN, code::LICENCE_INVALID)
        }
        ServiceError::Refused(Refusal::Expired) => {
            error(StatusCode::FORBIDDEN, code::LICENCE_EXPIRED)
        }
        ServiceError::Refused(Refusal::Revoked) => {
            error(StatusCode::FORBIDDEN, code::LICENCE_REVOKED)
        }
        ServiceError::Refused(Refusal::SeatsExhausted { seats }) => json(
            StatusCode::CONFLICT,
            &ErrorBody {
                code: code::SEATS_EXHAUSTED.into(),
                seats: Some(seats),
                retry_after: None,
            },
        ),
        ServiceError::Store(e) => {
            eprintln!("licence server: database error: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL)
        }
    }
}

/// Parse the body, run `f` on a blocking thread (the database is synchronous), and
/// answer with `ok` of its result or the refusal.
async fn handle<T: Send + 'static>(
    body: &[u8],
    f: impl FnOnce(LeaseRequest, MachineHash) -> Result<T, ServiceError> + Send + 'static,
    ok: impl FnOnce(T) -> Response,
) -> Response {
    let Some((req, machine)) = parse(body) else {
        return error(StatusCode::BAD_REQUEST, code::BAD_REQUEST);
    };
    match tokio::task::spawn_blocking(move || f(req, machine)).await {
        Ok(Ok(v)) => ok(v),
        Ok(Err(e)) => refusal(e),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL),
    }
}

async fn lease<S: Store>(State(app): State<Arc<Service<S>>>, body: Bytes) -> Response {
    let now = callhelper_licence::time::now();
    handle(
        &body,
        move |req, machine| app.lease(&req.key, &machine, now),
        |lease| json(StatusCode::OK, &LeaseBody { lease }),
    )
    .await
}

async fn deactivate<S: Store>(State(app): State<Arc<Service<S>>>, body: Bytes) -> Response {
    handle(
        &body,
        move |req, machine| app.deactivate(&req.key, &machine),
        |freed| json(StatusCode::OK, &DeactivateBody { freed }),
    )
    .await
}

async fn health() -> &'static str {
    "ok"
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, code::BAD_REQUEST)
}

/// The router of the service, with every limit applied.
pub fn router<S: Store>(service: Arc<Service<S>>, limits: Limits) -> Router {
    let guard_state = Arc::new(Guard {
        limits,
        limiter: RateLimiter::new(limits.rate),
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
    });
    Router::new()
        .route(protocol::ACTIVATE, post(lease::<S>))
        .route(protocol::RENEW, post(lease::<S>))
        .route(protocol::DEACTIVATE, post(deactivate::<S>))
        .route(protocol::HEALTH, get(health))
        .fallback(not_found)
        .with_state(service)
        .layer(DefaultBodyLimit::max(protocol::MAX_BODY))
        .layer(middleware::from_fn_with_state(guard_state, guard))
}

/// Serve on `listener` until `shutdown` completes, reclaiming ended leases every minute.
pub async fn serve<S: Store>(
    listener: tokio::net::TcpListener,
    service: Arc<Service<S>>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let reclaimer = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let s = service.clone();
                let now = callhelper_licence::time::now();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.reclaim(now)).await {
                    eprintln!("licence server: reclaiming ended leases failed: {e}");
                }
            }
        })
    };
    let app = router(service, limits);
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    reclaimer.abort();
    result
}
