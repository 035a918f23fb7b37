//! Click-to-call from a CRM card: a small HTTP endpoint on 127.0.0.1 that a CRM widget in
//! the agent's browser calls to start a call in the app.
//!
//! `POST /dial` with `Authorization: Bearer <per-install token>` and a JSON body
//! `{"phone": "+7 912 345-67-89", "crm": "amocrm", "entity_id": "123"}` answers `202`
//! and hands a [`DialRequest`] to the app (which asks the phone engine to dial); `401`
//! without the right token, `403` from a web origin not on the list, `400` for a body or
//! number that cannot be dialled, `503` when the app cannot take a call now. `OPTIONS
//! /dial` answers the browser's CORS preflight for allowed origins; `GET /health` tells a
//! widget the app is running. Only 127.0.0.1 is listened on.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

/// A request to dial, from a CRM widget. `Debug` hides the number.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct DialRequest {
    /// The number to call.
    pub phone: String,
    /// The CRM it came from (`amocrm`, `bitrix24`...).
    #[serde(default)]
    pub crm: Option<String>,
    /// The CRM's id of the card it came from.
    #[serde(default)]
    pub entity_id: Option<String>,
}

impl fmt::Debug for DialRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DialRequest")
            .field("crm", &self.crm)
            .field("entity_id", &self.entity_id)
            .finish_non_exhaustive()
    }
}

/// What the app does with a dial request: `true` when it takes it.
pub type OnDial = Arc<dyn Fn(DialRequest) -> bool + Send + Sync>;

/// A fresh per-install token (256 bits from the OS's hash keys and the clock).
pub fn new_token() -> Secret {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..4u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    Secret::new(out)
}

/// True for a number a person could dial: digits with `+ ( ) - . ` and spaces, 3 to 20
/// digits.
pub fn dialable(phone: &str) -> bool {
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    (3..=20).contains(&digits)
        && phone.len() <= 40
        && phone
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '(' | ')' | '-' | '.' | ' '))
}

/// The running endpoint; stops when dropped.
#[derive(Debug)]
pub struct DialEndpoint {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Config {
    token: Secret,
    origins: Vec<String>,
    on_dial: OnDial,
}

impl DialEndpoint {
    /// Listen on 127.0.0.1:`port` (0: any free port). `origins` are the web origins
    /// allowed to call (`https://example.amocrm.ru`); requests without an `Origin` header
    /// (not from a browser) need only the token.
    pub fn start(
        port: u16,
        token: Secret,
        origins: Vec<String>,
        on_dial: OnDial,
    ) -> io::Result<DialEndpoint> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let cfg = Arc::new(Config {
            token,
            origins,
            on_dial,
        });
        let thread = std::thread::Builder::new()
            .name("crm-dial".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        let cfg = cfg.clone();
                        let _ = std::thread::Builder::new()
                            .name("crm-dial-conn".into())
                            .spawn(move || {
                                let _ = serve(conn, &cfg);
                            });
                    }
                }
            })?;
        Ok(DialEndpoint {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DialEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(300));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn serve(mut s: TcpStream, cfg: &Config) -> io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let head_end = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 8192 {
            return reply(&mut s, 431, None, "{\"error\":\"headers too large\"}");
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let origin = header("origin").map(str::to_owned);
    let allowed = origin
        .as_deref()
        .is_none_or(|o| cfg.origins.iter().any(|a| a.eq_ignore_ascii_case(o)));
    let cors = origin.as_deref().filter(|_| allowed);
    match (method, path) {
        ("GET", "/health") => reply(&mut s, 200, cors, "{\"app\":\"callhelper\"}"),
        ("OPTIONS", "/dial") if allowed && origin.is_some() => reply(&mut s, 204, cors, ""),
        ("OPTIONS", "/dial") => reply(&mut s, 403, None, "{\"error\":\"origin not allowed\"}"),
        ("POST", "/dial") => {
            if !allowed {
                return reply(&mut s, 403, None, "{\"error\":\"origin not allowed\"}");
            }
            let token_ok = header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|t| same(t.trim(), cfg.token.expose()));
            if !token_ok {
                return reply(
                    &mut s,
                    401,
                    cors,
                    "{\"error\":\"a valid token is required\"}",
                );
            }
            let len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if len > 4096 {
                return reply(&mut s, 413, cors, "{\"error\":\"body too large\"}");
            }
            let mut body = buf[head_end..].to_vec();
            while body.len() < len {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
            let Ok(req) = serde_json::from_slice::<DialRequest>(&body) else {
                return reply(
                    &mut s,
                    400,
                    cors,
                    "{\"error\":\"send JSON: {\\\"phone\\\": \\\"...\\\"}\"}",
                );
            };
            if !dialable(&req.phone) {
                return reply(
                    &mut s,
                    400,
                    cors,
                    "{\"error\":\"the number cannot be dialled\"}",
                );
            }
            if (cfg.on_dial)(req) {
                reply(&mut s, 202, cors, "{\"ok\":true}")
            } else {
                reply(
                    &mut s,
                    503,
                    cors,
                    "{\"error\":\"the app cannot take a call now\"}",
                )
            }
        }
        _ => reply(&mut s, 404, cors, "{\"error\":\"not found\"}"),
    }
}

fn reply(s: &mut TcpStream, status: u16, cors: Option<&str>, body: &str) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(o) = cors {
        out.push_str(&format!(
            "access-control-allow-origin: {o}\r\naccess-control-allow-methods: POST, OPTIONS\r\n\
             access-control-allow-headers: authorization, content-type\r\nvary: origin\r\n"
        ));
    }
    out.push_str("\r\n");
    out.push_str(body);
    s.write_all(out.as_bytes())?;
    s.flush()
}
