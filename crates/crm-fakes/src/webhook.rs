//! A local receiver of CallHelper's signed webhook, the way a customer's CRM would take it.
//!
//! It checks what the webhook's documentation promises (`crates/crm/docs/webhook.md` and
//! the JSON Schema beside it): a JSON `POST`, the `X-CallHelper-Signature` header
//! `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` made with the shared secret, a
//! timestamp at most five minutes off, `X-CallHelper-Delivery` equal to the body's
//! `delivery_id`, and the payload's required keys. It keeps each delivery once by its id
//! (a repeat is answered `200` and counted as a duplicate), as a receiver should.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::faults::{Fault, FaultPlan, Faults};
use crate::http::{Handler, Reply, Request, Response, Server};

/// How the receiver is set up.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The shared secret.
    pub secret: String,
    /// How far the signature's timestamp may be from now.
    pub tolerance: Duration,
    /// Random faults.
    pub faults: FaultPlan,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig {
            secret: "whsec-fake-shared-secret".into(),
            tolerance: Duration::from_secs(300),
            faults: FaultPlan::default(),
        }
    }
}

/// Counters a test reads.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Requests received.
    pub requests: AtomicU64,
    /// Deliveries refused for a bad signature or timestamp.
    pub bad_signatures: AtomicU64,
    /// Deliveries refused as malformed.
    pub bad_requests: AtomicU64,
    /// Deliveries received again after they had been kept.
    pub duplicates: AtomicU64,
}

/// The fake receiver.
#[derive(Debug)]
pub struct WebhookFake {
    cfg: WebhookConfig,
    kept: Mutex<BTreeMap<String, Value>>,
    reject: Mutex<Option<(u16, String)>>,
    /// Fault injection.
    pub faults: Faults,
    /// Counters.
    pub stats: WebhookStats,
}

/// A running receiver on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct WebhookServer {
    /// The receiver's state and knobs.
    pub fake: Arc<WebhookFake>,
    server: Server,
}

impl WebhookServer {
    /// Start a receiver with `cfg`.
    pub fn start(cfg: WebhookConfig) -> std::io::Result<WebhookServer> {
        let fake = Arc::new(WebhookFake::new(cfg));
        let server = Server::start(fake.clone())?;
        Ok(WebhookServer { fake, server })
    }

    /// The URL to post to.
    pub fn url(&self) -> String {
        format!("{}/hook", self.server.url())
    }
}

/// The signature header's value for `body` at `t` (what a sender must send).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

impl WebhookFake {
    /// A receiver with `cfg`.
    pub fn new(cfg: WebhookConfig) -> WebhookFake {
        WebhookFake {
            faults: Faults::new(cfg.faults.clone()),
            cfg,
            kept: Mutex::new(BTreeMap::new()),
            reject: Mutex::new(None),
            stats: WebhookStats::default(),
        }
    }

    /// Refuse every delivery with this status and text (until cleared with `None`), as a
    /// CRM that does not accept the payload would.
    pub fn reject_all(&self, answer: Option<(u16, &str)>) {
        *self.reject.lock().unwrap_or_else(|e| e.into_inner()) =
            answer.map(|(s, t)| (s, t.to_owned()));
    }

    /// The deliveries kept, by id.
    pub fn deliveries(&self) -> BTreeMap<String, Value> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn verify(&self, req: &Request) -> Result<(), Response> {
        let unauthorized = |why: &str| {
            self.stats.bad_signatures.fetch_add(1, Ordering::Relaxed);
            Response::json(401, &json!({"error": "bad_signature", "message": why}))
        };
        let Some(h) = req.header("x-callhelper-signature") else {
            return Err(unauthorized("X-CallHelper-Signature is missing"));
        };
        let mut t = None;
        let mut v1 = None;
        for part in h.split(',') {
            match part.trim().split_once('=') {
                Some(("t", x)) => t = x.parse::<i64>().ok(),
                Some(("v1", x)) => v1 = Some(x.to_owned()),
                _ => {}
            }
        }
        let (Some(t), Some(v1)) = (t, v1) else {
            return Err(unauthorized("X-CallHelper-Signature must be t=...,v1=..."));
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if (now - t).unsigned_abs() > self.cfg.tolerance.as_secs() {
            return Err(unauthorized(
                "the signature's timestamp is too old or in the future",
            ));
        }
        let expected = sign(&self.cfg.secret, t, &req.body);
        let expected = expected.rsplit("v1=").next().unwrap_or("");
        // Constant-time comparison.
        let same = expected.len() == v1.len()
            && expected
                .bytes()
                .zip(v1.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Err(unauthorized("the signature does not match"));
        }
        Ok(())
    }

    fn receive(&self, req: &Request) -> Response {
        if req.method != "POST" || req.path != "/hook" {
            return Response::json(404, &json!({"error": "not_found"}));
        }
        if let Err(r) = self.verify(req) {
            return r;
        }
        let bad = |why: String| {
            self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
            Response::json(400, &json!({"error": "bad_request", "message": why}))
        };
        if !req
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
        {
            return bad("Content-Type must be application/json".into());
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return bad("the body is not JSON".into());
        };
        for key in [
            "schema",
            "event",
            "delivery_id",
            "sent_at",
            "run",
            "contact",
        ] {
            if body.get(key).is_none() {
                return bad(format!("`{key}` is required"));
            }
        }
        if body["schema"] != "callhelper-crm-webhook/1" {
            return bad("unknown schema".into());
        }
        let id = body["delivery_id"].as_str().unwrap_or("").to_owned();
        if req.header("x-callhelper-delivery") != Some(id.as_str()) || id.is_empty() {
            return bad("X-CallHelper-Delivery must equal delivery_id".into());
        }
        if let Some((status, text)) = self
            .reject
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Response::json(status, &json!({"error": "rejected", "message": text}));
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let duplicate = kept.contains_key(&id);
        if duplicate {
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
        } else {
            kept.insert(id, body);
        }
        Response::json(200, &json!({"ok": true, "duplicate": duplicate}))
    }
}

impl Handler for WebhookFake {
    fn handle(&self, req: &Request) -> Reply {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let fault = self.faults.next();
        match fault {
            Some(Fault::RateLimited) => {
                return Reply::Respond(
                    Response::json(429, &json!({"error": "too_many_requests"}))
                        .with_header("retry-after", "1"),
                );
            }
            Some(Fault::ServerError) => {
                return Reply::Respond(Response::json(500, &json!({"error": "internal"})));
            }
            Some(Fault::DropBefore) => return Reply::Drop,
            Some(Fault::HangBefore) => return Reply::Hang(self.faults.hang()),
            _ => {}
        }
        let resp = self.receive(req);
        match fault {
            Some(Fault::DropAfter) => Reply::Drop,
            Some(Fault::HangAfter) => Reply::Hang(self.faults.hang()),
            Some(Fault::MalformedAfter) => Reply::Respond(Response {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: b"{\"ok\": tru".to_vec(),
            }),
            _ => Reply::Respond(resp),
        }
    }
}
