//! A local Bitrix24 REST that follows the published API strictly.
//!
//! What it models, from Bitrix24's REST documentation:
//! - Access through an inbound webhook (`/rest/{user}/{secret}/{method}.json`) or OAuth
//!   (`/rest/{method}.json` with an `auth` parameter; tokens renewed at `/oauth/token/`,
//!   each renewal issuing a new refresh token and retiring the old one). Bad credentials:
//!   `401 INVALID_CREDENTIALS`; an expired token: `401 expired_token`.
//! - The rate limit as a leaky bucket: every HTTP request adds one, the bucket drains
//!   `per_sec` (2) a second, and a request over `burst` (50) gets
//!   `503 {"error":"QUERY_LIMIT_EXCEEDED"}`. A `batch` is one request.
//! - Parameters as JSON, as a form, or in the query string; inside `batch`, each command is
//!   `method?query` in PHP's `http_build_query` form. `batch` takes at most 50 commands and
//!   answers `result`, `result_error`, `result_total`, `result_next`, `result_time` (each
//!   an empty JSON array `[]` when it has nothing, as PHP encodes an empty array).
//! - Methods: `crm.duplicate.findbycomm` (≤ 20 values; `[]` when nothing matches),
//!   `crm.contact.add`/`update`/`get`/`fields`, `telephony.externalcall.register`
//!   (a repeated registration with the same parameters, before `finish`, within 30 minutes
//!   returns the same `CALL_ID`), `telephony.externalcall.finish` (creates the call
//!   activity), `telephony.externalCall.attachRecord`, `crm.timeline.comment.add`/`list`,
//!   `crm.activity.todo.add`, `crm.activity.list`, `profile`. Unknown methods:
//!   `404 ERROR_METHOD_NOT_FOUND`.
//!
//! Where the documentation says nothing we chose, and say so here: `finish` on a call that
//! is unknown or already finished answers `400 NOT_FOUND`; `attachRecord` with a file name
//! the call already has replaces it. Unknown fields in `crm.contact.add`/`update` are
//! ignored, as the real service does, and counted in [`BitrixStats::ignored_fields`] so a
//! test can insist there were none.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::faults::{Fault, FaultPlan, Faults, LeakyBucket, Rng};
use crate::http::{Handler, Reply, Request, Response, Server, parse_form};

/// How the fake is set up.
#[derive(Debug, Clone)]
pub struct BitrixConfig {
    /// The inbound webhook's user id.
    pub webhook_user: u64,
    /// The inbound webhook's secret.
    pub webhook_secret: String,
    /// The OAuth application's id.
    pub client_id: String,
    /// The OAuth application's secret.
    pub client_secret: String,
    /// How long an access token lives.
    pub access_ttl: Duration,
    /// The bucket's size.
    pub burst: u32,
    /// How fast it drains, per second.
    pub per_sec: f64,
    /// How long a repeated registration returns the same call.
    pub register_dedup: Duration,
    /// Random faults.
    pub faults: FaultPlan,
}

impl Default for BitrixConfig {
    fn default() -> BitrixConfig {
        BitrixConfig {
            webhook_user: 1,
            webhook_secret: "x7k2abc9def0ghij".into(),
            client_id: "local.5f0c0ffee00001.00000001".into(),
            client_secret: "fake-bitrix-client-secret".into(),
            access_ttl: Duration::from_secs(3600),
            burst: 50,
            per_sec: 2.0,
            register_dedup: Duration::from_secs(30 * 60),
            faults: FaultPlan::default(),
        }
    }
}

/// Counters a test reads.
#[derive(Debug, Default)]
pub struct BitrixStats {
    /// HTTP requests received.
    pub requests: AtomicU64,
    /// Commands executed (a batch counts each of its commands).
    pub commands: AtomicU64,
    /// Requests refused because the client went over the rate limit.
    pub limit_violations: AtomicU64,
    /// Token renewals that worked.
    pub refreshes: AtomicU64,
    /// Renewals with a refresh token that had already been used.
    pub reused_refresh_tokens: AtomicU64,
    /// Unknown contact fields that were ignored.
    pub ignored_fields: AtomicU64,
    /// Method calls refused as invalid (400).
    pub bad_requests: AtomicU64,
}

/// The contact fields of the fake portal (`crm.contact.fields`).
pub fn contact_fields() -> Value {
    json!({
        "ID": {"type": "integer", "isRequired": false, "isReadOnly": true, "isMultiple": false, "title": "ID"},
        "NAME": {"type": "string", "isRequired": false, "isReadOnly": false, "isMultiple": false, "title": "Имя"},
        "LAST_NAME": {"type": "string", "isRequired": false, "isReadOnly": false, "isMultiple": false, "title": "Фамилия"},
        "COMMENTS": {"type": "string", "isRequired": false, "isReadOnly": false, "isMultiple": false, "title": "Комментарий"},
        "PHONE": {"type": "crm_multifield", "isRequired": false, "isReadOnly": false, "isMultiple": true, "title": "Телефон"},
        "EMAIL": {"type": "crm_multifield", "isRequired": false, "isReadOnly": false, "isMultiple": true, "title": "E-mail"},
        "UF_CRM_BUDGET": {"type": "double", "isRequired": false, "isReadOnly": false, "isMultiple": false,
                          "title": "UF_CRM_BUDGET", "listLabel": "Budget", "formLabel": "Budget"},
        "UF_CRM_INTEREST": {"type": "enumeration", "isRequired": false, "isReadOnly": false, "isMultiple": false,
                            "title": "UF_CRM_INTEREST", "listLabel": "Interest", "formLabel": "Interest",
                            "items": [{"ID": "45", "VALUE": "High"}, {"ID": "46", "VALUE": "Low"}]},
        "UF_CRM_CALLBACK": {"type": "date", "isRequired": false, "isReadOnly": false, "isMultiple": false,
                            "title": "UF_CRM_CALLBACK", "listLabel": "Callback date", "formLabel": "Callback date"},
        "UF_CRM_AGREED": {"type": "boolean", "isRequired": false, "isReadOnly": false, "isMultiple": false,
                          "title": "UF_CRM_AGREED", "listLabel": "Agreed", "formLabel": "Agreed"}
    })
}

#[derive(Debug, Clone)]
struct Contact {
    id: u64,
    fields: Map<String, Value>,
}

#[derive(Debug, Clone)]
struct Call {
    call_id: String,
    params: Value,
    registered: Instant,
    finished: Option<Value>,
    records: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Tokens {
    access: BTreeMap<String, Instant>,
    refresh: std::collections::BTreeSet<String>,
    used_refresh: std::collections::BTreeSet<String>,
    issued: u64,
}

#[derive(Debug, Default)]
struct State {
    contacts: Vec<Contact>,
    calls: Vec<Call>,
    comments: Vec<Value>,
    activities: Vec<Value>,
    next_id: u64,
    tokens: Tokens,
}

/// The fake Bitrix24 portal.
#[derive(Debug)]
pub struct BitrixFake {
    cfg: BitrixConfig,
    state: Mutex<State>,
    bucket: Mutex<LeakyBucket>,
    /// Fault injection.
    pub faults: Faults,
    /// Counters.
    pub stats: BitrixStats,
}

/// A running fake Bitrix24 on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct BitrixServer {
    /// The fake's state and knobs.
    pub fake: Arc<BitrixFake>,
    server: Server,
}

impl BitrixServer {
    /// Start a fake with `cfg`.
    pub fn start(cfg: BitrixConfig) -> std::io::Result<BitrixServer> {
        let fake = Arc::new(BitrixFake::new(cfg));
        let server = Server::start(fake.clone())?;
        Ok(BitrixServer { fake, server })
    }

    /// The portal's base URL (stands for `https://PORTAL.bitrix24.ru`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The inbound webhook URL, ending in `/`.
    pub fn webhook_url(&self) -> String {
        format!(
            "{}/rest/{}/{}/",
            self.server.url(),
            self.fake.cfg.webhook_user,
            self.fake.cfg.webhook_secret
        )
    }
}

/// A method's failure: HTTP status, code, description.
struct Fail(u16, &'static str, String);

type Outcome = Result<Value, Fail>;

fn bad(desc: impl Into<String>) -> Fail {
    Fail(400, "INVALID_ARG_VALUE", desc.into())
}

/// Marks a list result inside the fake (never sent).
const LIST: &str = "\u{0}list";

/// A method's result, and the list's `total` and `next` when it is a list.
fn split_list(v: Value) -> (Value, Option<Value>, Option<Value>) {
    match v {
        Value::Object(mut o) if o.contains_key(LIST) => {
            let items = o.remove(LIST).unwrap_or(Value::Null);
            (items, o.remove("total"), o.remove("next"))
        }
        other => (other, None, None),
    }
}

fn error_body(code: &str, desc: &str) -> Value {
    json!({"error": code, "error_description": desc})
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o.values().cloned().collect(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// PHP's empty array: `[]` whatever it would have held.
fn php_map(m: Map<String, Value>) -> Value {
    if m.is_empty() {
        Value::Array(Vec::new())
    } else {
        Value::Object(m)
    }
}

fn now_iso() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("@{secs}")
}

/// Parse PHP-style nested form pairs (`a[b][0]=x`) into a JSON object of strings.
pub fn php_params(pairs: &[(String, String)]) -> Value {
    let mut root = Value::Object(Map::new());
    for (key, val) in pairs {
        let mut path: Vec<String> = Vec::new();
        let (head, rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (key.as_str(), ""),
        };
        path.push(head.to_owned());
        let mut r = rest;
        while let Some(stripped) = r.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            path.push(stripped[..end].to_owned());
            r = &stripped[end + 1..];
        }
        let mut node = &mut root;
        for (i, seg) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            let obj = match node {
                Value::Object(o) => o,
                _ => break,
            };
            let seg = if seg.is_empty() {
                obj.len().to_string()
            } else {
                seg.clone()
            };
            if last {
                obj.insert(seg, Value::String(val.clone()));
                break;
            }
            node = obj.entry(seg).or_insert_with(|| Value::Object(Map::new()));
        }
    }
    arrays(root)
}

/// Turn objects keyed `0..n` into arrays, as PHP would list them.
fn arrays(v: Value) -> Value {
    match v {
        Value::Object(o) => {
            let seq = !o.is_empty()
                && o.keys()
                    .enumerate()
                    .all(|(i, k)| k.parse::<usize>().ok() == Some(i))
                && {
                    let mut keys: Vec<usize> = o.keys().filter_map(|k| k.parse().ok()).collect();
                    keys.sort_unstable();
                    keys.iter().enumerate().all(|(i, k)| i == *k)
                };
            if seq {
                let mut items: Vec<(usize, Value)> = o
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(0), arrays(v)))
                    .collect();
                items.sort_by_key(|(k, _)| *k);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(o.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

impl BitrixFake {
    /// A fake with `cfg`.
    pub fn new(cfg: BitrixConfig) -> BitrixFake {
        BitrixFake {
            bucket: Mutex::new(LeakyBucket::new(cfg.burst, cfg.per_sec)),
            faults: Faults::new(cfg.faults.clone()),
            cfg,
            state: Mutex::new(State {
                next_id: 100,
                ..State::default()
            }),
            stats: BitrixStats::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issue an OAuth token pair, as installing the application would (test set-up).
    pub fn issue_tokens(&self) -> (String, String) {
        let mut st = self.lock();
        let v = self.token_pair(&mut st);
        (
            v["access_token"].as_str().unwrap_or_default().to_owned(),
            v["refresh_token"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Expire every access token now.
    pub fn expire_access_tokens(&self) {
        self.lock().tokens.access.clear();
    }

    /// Add a contact directly (test set-up); returns its id.
    pub fn add_contact(&self, name: &str, phone: &str) -> u64 {
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        let mut fields = Map::new();
        fields.insert("NAME".into(), json!(name));
        fields.insert(
            "PHONE".into(),
            json!([{"ID": id * 10, "VALUE": phone, "VALUE_TYPE": "WORK"}]),
        );
        st.contacts.push(Contact { id, fields });
        id
    }

    /// Everything the portal holds: `contacts`, `calls` (with `finished` once finished),
    /// `comments`, `activities`.
    pub fn snapshot(&self) -> Value {
        let st = self.lock();
        json!({
            "contacts": st.contacts.iter().map(|c| {
                let mut f = c.fields.clone();
                f.insert("ID".into(), json!(c.id.to_string()));
                Value::Object(f)
            }).collect::<Vec<_>>(),
            "calls": st.calls.iter().map(|c| json!({
                "CALL_ID": c.call_id, "params": c.params, "finished": c.finished,
                "records": c.records.keys().collect::<Vec<_>>()})).collect::<Vec<_>>(),
            "comments": st.comments,
            "activities": st.activities,
        })
    }

    fn token_pair(&self, st: &mut State) -> Value {
        st.tokens.issued += 1;
        let n = st.tokens.issued;
        let access = format!("b24-access-{n}-{:x}", Rng::new(n ^ 0xb24).next_u64());
        let refresh = format!("b24-refresh-{n}-{:x}", Rng::new(!n).next_u64());
        st.tokens
            .access
            .insert(access.clone(), Instant::now() + self.cfg.access_ttl);
        st.tokens.refresh.insert(refresh.clone());
        json!({"access_token": access, "expires_in": self.cfg.access_ttl.as_secs(),
               "scope": "crm,telephony", "domain": "callhelper.bitrix24.ru",
               "server_endpoint": "https://oauth.bitrix.info/rest/", "status": "L",
               "client_endpoint": "https://callhelper.bitrix24.ru/rest/",
               "member_id": "a223c6b3710f85df22e9377d6c4f7553", "user_id": 1,
               "refresh_token": refresh})
    }

    fn oauth(&self, req: &Request) -> Response {
        let mut pairs = req.query_pairs();
        pairs.extend(parse_form(std::str::from_utf8(&req.body).unwrap_or("")));
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        if get("client_id") != self.cfg.client_id || get("client_secret") != self.cfg.client_secret
        {
            return Response::json(
                401,
                &error_body("invalid_client", "Invalid client credentials"),
            );
        }
        if get("grant_type") != "refresh_token" {
            return Response::json(
                400,
                &error_body("unsupported_grant_type", "The grant type is not supported"),
            );
        }
        let rt = get("refresh_token").to_owned();
        let mut st = self.lock();
        if st.tokens.used_refresh.contains(&rt) {
            self.stats
                .reused_refresh_tokens
                .fetch_add(1, Ordering::Relaxed);
            return Response::json(400, &error_body("invalid_grant", "Invalid refresh token"));
        }
        if !st.tokens.refresh.remove(&rt) {
            return Response::json(400, &error_body("invalid_grant", "Invalid refresh token"));
        }
        st.tokens.used_refresh.insert(rt);
        self.stats.refreshes.fetch_add(1, Ordering::Relaxed);
        Response::json(200, &self.token_pair(&mut st))
    }

    /// The request's parameters (JSON body, form body or query string).
    fn params(req: &Request) -> Result<Value, Fail> {
        let ct = req.header("content-type").unwrap_or("");
        let mut params = php_params(&req.query_pairs());
        if ct.starts_with("application/json") && !req.body.is_empty() {
            let body: Value = serde_json::from_slice(&req.body).map_err(|_| {
                Fail(
                    400,
                    "INVALID_REQUEST",
                    "The request body is not valid JSON".into(),
                )
            })?;
            let Value::Object(o) = body else {
                return Err(Fail(
                    400,
                    "INVALID_REQUEST",
                    "The request body must be a JSON object".into(),
                ));
            };
            if let Value::Object(p) = &mut params {
                p.extend(o);
            }
        } else if !req.body.is_empty() {
            let form = php_params(&parse_form(std::str::from_utf8(&req.body).unwrap_or("")));
            if let (Value::Object(p), Value::Object(f)) = (&mut params, form) {
                p.extend(f);
            }
        }
        Ok(params)
    }

    fn route(&self, req: &Request) -> Response {
        let path = req.path.trim_end_matches('/');
        if path == "/oauth/token" {
            return self.oauth(req);
        }
        let Some(rest) = path.strip_prefix("/rest/") else {
            return Response::json(
                404,
                &error_body("ERROR_METHOD_NOT_FOUND", "Method not found!"),
            );
        };
        let params = match Self::params(req) {
            Ok(p) => p,
            Err(Fail(s, c, d)) => return Response::json(s, &error_body(c, &d)),
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let method = match parts.as_slice() {
            [user, secret, method] => {
                if user.parse::<u64>().ok() != Some(self.cfg.webhook_user)
                    || *secret != self.cfg.webhook_secret
                {
                    return Response::json(
                        401,
                        &error_body("INVALID_CREDENTIALS", "Invalid request credentials"),
                    );
                }
                *method
            }
            [method] => {
                let token = params.get("auth").and_then(Value::as_str).unwrap_or("");
                let st = self.lock();
                match st.tokens.access.get(token) {
                    Some(exp) if Instant::now() < *exp => {}
                    Some(_) => {
                        return Response::json(
                            401,
                            &error_body("expired_token", "The access token provided has expired."),
                        );
                    }
                    None if token.is_empty() => {
                        return Response::json(
                            401,
                            &error_body("NO_AUTH_FOUND", "Wrong authorization data"),
                        );
                    }
                    None => {
                        return Response::json(
                            401,
                            &error_body("expired_token", "The access token provided has expired."),
                        );
                    }
                }
                *method
            }
            _ => {
                return Response::json(
                    404,
                    &error_body("ERROR_METHOD_NOT_FOUND", "Method not found!"),
                );
            }
        };
        let method = method.trim_end_matches(".json").to_ascii_lowercase();
        let out = if method == "batch" {
            self.batch(&params)
        } else {
            self.call(&method, &params)
        };
        match out {
            Ok(result) => {
                let (result, total, next) = split_list(result);
                let mut body =
                    json!({"result": result, "time": {"start": 0, "finish": 0, "duration": 0.01}});
                if let Some(t) = total {
                    body["total"] = t;
                }
                if let Some(n) = next {
                    body["next"] = n;
                }
                Response::json(200, &body)
            }
            Err(Fail(s, c, d)) => {
                if s == 400 {
                    self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
                }
                Response::json(s, &error_body(c, &d))
            }
        }
    }

    fn batch(&self, params: &Value) -> Outcome {
        let halt = params.get("halt").and_then(int).unwrap_or(0) != 0;
        let cmds: Vec<(String, String)> = match params.get("cmd") {
            Some(Value::Object(o)) => o
                .iter()
                .map(|(k, v)| (k.clone(), text(v).unwrap_or_default()))
                .collect(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), text(v).unwrap_or_default()))
                .collect(),
            _ => return Err(bad("cmd is required")),
        };
        if cmds.len() > 50 {
            return Err(Fail(
                400,
                "ERROR_BATCH_LENGTH_EXCEEDED",
                "Max batch length exceeded".into(),
            ));
        }
        let mut result = Map::new();
        let mut errors = Map::new();
        let mut totals = Map::new();
        let mut nexts = Map::new();
        for (key, cmd) in cmds {
            let (method, query) = cmd.split_once('?').unwrap_or((cmd.as_str(), ""));
            let method = method.to_ascii_lowercase();
            if method == "batch" {
                return Err(Fail(
                    400,
                    "ERROR_BATCH_METHOD_NOT_ALLOWED",
                    "Method is not allowed for batch usage".into(),
                ));
            }
            let p = php_params(&parse_form(query));
            match self.call(&method, &p) {
                Ok(v) => {
                    let (v, total, next) = split_list(v);
                    if let Some(t) = total {
                        totals.insert(key.clone(), t);
                    }
                    if let Some(n) = next {
                        nexts.insert(key.clone(), n);
                    }
                    result.insert(key, v);
                }
                Err(Fail(_, code, desc)) => {
                    errors.insert(key, error_body(code, &desc));
                    if halt {
                        break;
                    }
                }
            }
        }
        Ok(
            json!({"result": php_map(result), "result_error": php_map(errors),
                  "result_total": php_map(totals), "result_next": php_map(nexts), "result_time": []}),
        )
    }

    fn call(&self, method: &str, p: &Value) -> Outcome {
        self.stats.commands.fetch_add(1, Ordering::Relaxed);
        match method {
            "profile" => {
                Ok(json!({"ID": "1", "ADMIN": true, "NAME": "Test", "LAST_NAME": "Agent"}))
            }
            "crm.contact.fields" => Ok(contact_fields()),
            "crm.duplicate.findbycomm" => self.find_by_comm(p),
            "crm.contact.add" => self.contact_add(p),
            "crm.contact.update" => self.contact_update(p),
            "crm.contact.get" => self.contact_get(p),
            "telephony.externalcall.register" => self.register(p),
            "telephony.externalcall.finish" => self.finish(p),
            "telephony.externalcall.attachrecord" => self.attach_record(p),
            "crm.timeline.comment.add" => self.comment_add(p),
            "crm.timeline.comment.list" => self.comment_list(p),
            "crm.activity.todo.add" => self.todo_add(p),
            "crm.activity.list" => self.activity_list(p),
            _ => Err(Fail(
                404,
                "ERROR_METHOD_NOT_FOUND",
                "Method not found!".into(),
            )),
        }
    }

    fn find_by_comm(&self, p: &Value) -> Outcome {
        let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "PHONE" && kind != "EMAIL" {
            return Err(bad("Parameter 'type' must be PHONE or EMAIL"));
        }
        let entity = p.get("entity_type").and_then(Value::as_str).unwrap_or("");
        if !entity.is_empty() && !["LEAD", "CONTACT", "COMPANY"].contains(&entity) {
            return Err(bad("Parameter 'entity_type' is not valid"));
        }
        let values = list(p.get("values").unwrap_or(&Value::Null));
        if values.is_empty() || values.len() > 20 {
            return Err(bad("Parameter 'values' must hold from 1 to 20 items"));
        }
        let wanted: Vec<String> = values.iter().filter_map(text).map(|v| digits(&v)).collect();
        let st = self.lock();
        let ids: Vec<u64> = st
            .contacts
            .iter()
            .filter(|c| {
                list(c.fields.get("PHONE").unwrap_or(&Value::Null))
                    .iter()
                    .any(|ph| {
                        let d = digits(ph["VALUE"].as_str().unwrap_or(""));
                        wanted.iter().any(|w| {
                            let a = &d[d.len().saturating_sub(10)..];
                            let b = &w[w.len().saturating_sub(10)..];
                            !a.is_empty() && a == b
                        })
                    })
            })
            .map(|c| c.id)
            .collect();
        if ids.is_empty() || entity == "LEAD" || entity == "COMPANY" {
            return Ok(json!([]));
        }
        Ok(json!({"CONTACT": ids}))
    }

    fn check_contact_fields(
        &self,
        fields: &Map<String, Value>,
    ) -> Result<Map<String, Value>, Fail> {
        let defs = contact_fields();
        let mut kept = Map::new();
        for (k, v) in fields {
            let Some(def) = defs.get(k) else {
                self.stats.ignored_fields.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if def["isReadOnly"] == true {
                continue;
            }
            let ok = match def["type"].as_str().unwrap_or("") {
                "string" => text(v).is_some(),
                "double" => text(v).is_some_and(|s| s.is_empty() || s.parse::<f64>().is_ok()),
                "boolean" => {
                    matches!(text(v).as_deref(), Some("Y" | "N" | "1" | "0" | "")) || v.is_boolean()
                }
                "date" => text(v).is_some_and(|s| {
                    s.is_empty()
                        || (s.len() >= 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-')
                }),
                "enumeration" => text(v).is_some_and(|s| {
                    s.is_empty()
                        || def["items"]
                            .as_array()
                            .is_some_and(|items| items.iter().any(|i| i["ID"] == s))
                }),
                "crm_multifield" => list(v)
                    .iter()
                    .all(|item| item.get("VALUE").and_then(text).is_some()),
                _ => true,
            };
            if !ok {
                return Err(bad(format!("Field '{k}' has a value of the wrong type")));
            }
            kept.insert(k.clone(), v.clone());
        }
        Ok(kept)
    }

    fn contact_add(&self, p: &Value) -> Outcome {
        let Some(fields) = p.get("fields").and_then(Value::as_object) else {
            return Err(bad("Parameter 'fields' is required"));
        };
        let mut kept = self.check_contact_fields(fields)?;
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        if let Some(phones) = kept.get("PHONE").cloned() {
            let with_ids: Vec<Value> = list(&phones)
                .into_iter()
                .enumerate()
                .map(|(i, mut ph)| {
                    ph["ID"] = json!(id * 10 + i as u64);
                    ph
                })
                .collect();
            kept.insert("PHONE".into(), Value::Array(with_ids));
        }
        st.contacts.push(Contact { id, fields: kept });
        Ok(json!(id))
    }

    fn contact_update(&self, p: &Value) -> Outcome {
        let Some(id) = p.get("id").and_then(int) else {
            return Err(bad("Parameter 'id' is required"));
        };
        let Some(fields) = p.get("fields").and_then(Value::as_object) else {
            return Err(bad("Parameter 'fields' is required"));
        };
        let kept = self.check_contact_fields(fields)?;
        let mut st = self.lock();
        let Some(c) = st.contacts.iter_mut().find(|c| c.id as i64 == id) else {
            return Err(Fail(400, "NOT_FOUND", "Not found".into()));
        };
        c.fields.extend(kept);
        Ok(json!(true))
    }

    fn contact_get(&self, p: &Value) -> Outcome {
        let Some(id) = p.get("id").and_then(int) else {
            return Err(bad("Parameter 'id' is required"));
        };
        let st = self.lock();
        let c = st
            .contacts
            .iter()
            .find(|c| c.id as i64 == id)
            .ok_or_else(|| Fail(400, "NOT_FOUND", "Not found".into()))?;
        let mut f = c.fields.clone();
        f.insert("ID".into(), json!(c.id.to_string()));
        Ok(Value::Object(f))
    }

    fn register(&self, p: &Value) -> Outcome {
        let user = p.get("USER_ID").and_then(int);
        let inner = p.get("USER_PHONE_INNER").and_then(text);
        if user.is_none() && inner.is_none() {
            return Err(bad("USER_ID or USER_PHONE_INNER is required"));
        }
        let Some(phone) = p
            .get("PHONE_NUMBER")
            .and_then(text)
            .filter(|s| !s.is_empty())
        else {
            return Err(bad("PHONE_NUMBER is required"));
        };
        let Some(kind) = p.get("TYPE").and_then(int).filter(|t| (1..=5).contains(t)) else {
            return Err(bad("TYPE must be 1 (outgoing), 2 (incoming), 3, 4 or 5"));
        };
        if let Some(d) = p.get("CALL_START_DATE") {
            if !text(d).is_some_and(|s| {
                s.len() >= 19 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T'
            }) {
                return Err(bad("CALL_START_DATE must be a date in ISO 8601"));
            }
        }
        let entity_type = p.get("CRM_ENTITY_TYPE").and_then(text);
        let entity_id = p.get("CRM_ENTITY_ID").and_then(int);
        let mut st = self.lock();
        if let (Some(t), Some(id)) = (&entity_type, entity_id) {
            if t != "CONTACT" && t != "COMPANY" && t != "LEAD" {
                return Err(bad("CRM_ENTITY_TYPE is not valid"));
            }
            if t == "CONTACT" && !st.contacts.iter().any(|c| c.id as i64 == id) {
                return Err(bad("CRM_ENTITY_ID was not found"));
            }
        }
        let key = json!({"USER_ID": user, "USER_PHONE_INNER": inner, "PHONE_NUMBER": phone,
                         "TYPE": kind, "CALL_START_DATE": p.get("CALL_START_DATE").and_then(text),
                         "CRM_ENTITY_TYPE": entity_type, "CRM_ENTITY_ID": entity_id});
        let dedup = self.cfg.register_dedup;
        if let Some(c) = st
            .calls
            .iter()
            .find(|c| c.finished.is_none() && c.params == key && c.registered.elapsed() < dedup)
        {
            return Ok(json!({"CALL_ID": c.call_id, "CRM_CREATED_LEAD": null,
                             "CRM_ENTITY_TYPE": entity_type, "CRM_ENTITY_ID": entity_id,
                             "CRM_CREATED_ENTITIES": []}));
        }
        st.next_id += 1;
        let n = st.next_id;
        let call_id = format!(
            "externalCall.{:016x}{:016x}.{n}",
            Rng::new(n).next_u64(),
            Rng::new(!n).next_u64()
        );
        st.calls.push(Call {
            call_id: call_id.clone(),
            params: key,
            registered: Instant::now(),
            finished: None,
            records: BTreeMap::new(),
        });
        Ok(
            json!({"CALL_ID": call_id, "CRM_CREATED_LEAD": null, "CRM_ENTITY_TYPE": entity_type,
                  "CRM_ENTITY_ID": entity_id, "CRM_CREATED_ENTITIES": []}),
        )
    }

    fn finish(&self, p: &Value) -> Outcome {
        let Some(call_id) = p.get("CALL_ID").and_then(text) else {
            return Err(bad("CALL_ID is required"));
        };
        if p.get("USER_ID").and_then(int).is_none() {
            return Err(bad("USER_ID is required"));
        }
        let Some(duration) = p.get("DURATION").and_then(int).filter(|d| *d >= 0) else {
            return Err(bad("DURATION is required"));
        };
        let status = p
            .get("STATUS_CODE")
            .and_then(text)
            .unwrap_or_else(|| "200".into());
        let mut st = self.lock();
        st.next_id += 1;
        let activity = st.next_id;
        let Some(c) = st
            .calls
            .iter_mut()
            .find(|c| c.call_id == call_id && c.finished.is_none())
        else {
            return Err(Fail(
                400,
                "NOT_FOUND",
                "Call is not found or is already finished".into(),
            ));
        };
        let done = json!({"CALL_ID": call_id, "CALL_DURATION": duration, "CALL_FAILED_CODE": status,
                          "CRM_ACTIVITY_ID": activity, "PORTAL_USER_ID": p.get("USER_ID").and_then(int),
                          "CALL_START_DATE": c.params["CALL_START_DATE"], "PHONE_NUMBER": c.params["PHONE_NUMBER"],
                          "CRM_ENTITY_TYPE": c.params["CRM_ENTITY_TYPE"], "CRM_ENTITY_ID": c.params["CRM_ENTITY_ID"]});
        c.finished = Some(done.clone());
        Ok(done)
    }

    fn attach_record(&self, p: &Value) -> Outcome {
        let Some(call_id) = p.get("CALL_ID").and_then(text) else {
            return Err(bad("CALL_ID is required"));
        };
        let Some(name) = p.get("FILENAME").and_then(text).filter(|s| !s.is_empty()) else {
            return Err(bad("FILENAME is required"));
        };
        let has_content = p
            .get("FILE_CONTENT")
            .and_then(text)
            .is_some_and(|s| !s.is_empty());
        let has_url = p
            .get("RECORD_URL")
            .and_then(text)
            .is_some_and(|s| s.starts_with("http"));
        if !has_content && !has_url {
            return Err(bad("FILE_CONTENT or RECORD_URL is required"));
        }
        let mut st = self.lock();
        st.next_id += 1;
        let file_id = st.next_id;
        let Some(c) = st.calls.iter_mut().find(|c| c.call_id == call_id) else {
            return Err(Fail(400, "NOT_FOUND", "Call is not found".into()));
        };
        c.records.insert(name, file_id);
        Ok(json!({"FILE_ID": file_id}))
    }

    fn entity_exists(st: &State, kind: &str, id: i64) -> bool {
        kind.eq_ignore_ascii_case("contact") && st.contacts.iter().any(|c| c.id as i64 == id)
    }

    fn comment_add(&self, p: &Value) -> Outcome {
        let Some(f) = p.get("fields").and_then(Value::as_object) else {
            return Err(bad("Parameter 'fields' is required"));
        };
        let (Some(eid), Some(etype), Some(comment)) = (
            f.get("ENTITY_ID").and_then(int),
            f.get("ENTITY_TYPE").and_then(text),
            f.get("COMMENT").and_then(text).filter(|c| !c.is_empty()),
        ) else {
            return Err(bad("ENTITY_ID, ENTITY_TYPE and COMMENT are required"));
        };
        let mut st = self.lock();
        if !Self::entity_exists(&st, &etype, eid) {
            return Err(bad("The entity was not found"));
        }
        st.next_id += 1;
        let id = st.next_id;
        st.comments
            .push(json!({"ID": id.to_string(), "ENTITY_ID": eid.to_string(),
                                "ENTITY_TYPE": etype.to_lowercase(), "COMMENT": comment,
                                "CREATED": now_iso(), "AUTHOR_ID": "1"}));
        Ok(json!(id))
    }

    fn paged(items: Vec<Value>, p: &Value) -> Outcome {
        let start = p.get("start").and_then(int).unwrap_or(0).max(0) as usize;
        let total = items.len();
        let page: Vec<Value> = items.into_iter().skip(start).take(50).collect();
        // A list's `total` and `next` sit beside `result` in the answer (or in
        // `result_total`/`result_next` of a batch): `split_list` takes them out.
        let mut out = json!({LIST: page, "total": total});
        if start + 50 < total {
            out["next"] = json!(start + 50);
        }
        Ok(out)
    }

    fn comment_list(&self, p: &Value) -> Outcome {
        let filter = p.get("filter").cloned().unwrap_or(Value::Null);
        let eid = filter.get("ENTITY_ID").and_then(int);
        let etype = filter
            .get("ENTITY_TYPE")
            .and_then(text)
            .map(|s| s.to_lowercase());
        if eid.is_none() || etype.is_none() {
            return Err(bad(
                "filter[ENTITY_ID] and filter[ENTITY_TYPE] are required",
            ));
        }
        let st = self.lock();
        let items: Vec<Value> = st
            .comments
            .iter()
            .filter(|c| {
                int(&c["ENTITY_ID"]) == eid && c["ENTITY_TYPE"].as_str().map(str::to_owned) == etype
            })
            .cloned()
            .collect();
        Self::paged(items, p)
    }

    fn todo_add(&self, p: &Value) -> Outcome {
        let (Some(owner_type), Some(owner_id)) = (
            p.get("ownerTypeId").and_then(int),
            p.get("ownerId").and_then(int),
        ) else {
            return Err(bad("ownerTypeId and ownerId are required"));
        };
        let Some(deadline) = p
            .get("deadline")
            .and_then(text)
            .filter(|d| d.len() >= 19 && d.as_bytes()[4] == b'-')
        else {
            return Err(bad("deadline is required (ISO 8601)"));
        };
        let mut st = self.lock();
        if owner_type != 3 || !Self::entity_exists(&st, "contact", owner_id) {
            return Err(bad("The owner was not found"));
        }
        st.next_id += 1;
        let id = st.next_id;
        st.activities.push(json!({"ID": id.to_string(), "OWNER_TYPE_ID": owner_type.to_string(),
                                  "OWNER_ID": owner_id.to_string(), "DEADLINE": deadline,
                                  "SUBJECT": p.get("title").and_then(text).unwrap_or_default(),
                                  "DESCRIPTION": p.get("description").and_then(text).unwrap_or_default(),
                                  "RESPONSIBLE_ID": p.get("responsibleId").and_then(text).unwrap_or_else(|| "1".into()),
                                  "PROVIDER_ID": "CRM_TODO"}));
        Ok(json!({"id": id}))
    }

    fn activity_list(&self, p: &Value) -> Outcome {
        let filter = p.get("filter").cloned().unwrap_or(Value::Null);
        let ot = filter.get("OWNER_TYPE_ID").and_then(int);
        let oid = filter.get("OWNER_ID").and_then(int);
        let st = self.lock();
        let items: Vec<Value> = st
            .activities
            .iter()
            .filter(|a| ot.is_none_or(|t| int(&a["OWNER_TYPE_ID"]) == Some(t)))
            .filter(|a| oid.is_none_or(|o| int(&a["OWNER_ID"]) == Some(o)))
            .cloned()
            .collect();
        Self::paged(items, p)
    }
}

impl Handler for BitrixFake {
    fn handle(&self, req: &Request) -> Reply {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let limited = || {
            Reply::Respond(Response::json(
                503,
                &error_body("QUERY_LIMIT_EXCEEDED", "Too many requests"),
            ))
        };
        let is_oauth = req.path.starts_with("/oauth/");
        if !is_oauth {
            let admitted = self
                .bucket
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .admit(Instant::now());
            if !admitted {
                self.stats.limit_violations.fetch_add(1, Ordering::Relaxed);
                return limited();
            }
        }
        let fault = self.faults.next();
        match fault {
            Some(Fault::RateLimited) => return limited(),
            Some(Fault::ServerError) => {
                return Reply::Respond(Response::json(
                    500,
                    &error_body("INTERNAL_SERVER_ERROR", "Internal server error"),
                ));
            }
            Some(Fault::DropBefore) => return Reply::Drop,
            Some(Fault::HangBefore) => return Reply::Hang(self.faults.hang()),
            _ => {}
        }
        let resp = self.route(req);
        match fault {
            Some(Fault::DropAfter) => Reply::Drop,
            Some(Fault::HangAfter) => Reply::Hang(self.faults.hang()),
            Some(Fault::MalformedAfter) => Reply::Respond(Response {
                status: 200,
                headers: vec![(
                    "content-type".into(),
                    "application/json; charset=utf-8".into(),
                )],
                body: b"{\"result\":{\"result\":{\"c0\":".to_vec(),
            }),
            _ => Reply::Respond(resp),
        }
    }
}
