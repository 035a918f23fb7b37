//! A local amoCRM (API v4) that follows the published API strictly.
//!
//! What it models, from amoCRM's developer documentation:
//! - OAuth 2.0 at `POST /oauth2/access_token` (`authorization_code` and `refresh_token`
//!   grants); every refresh issues a new refresh token and the old one stops working; a
//!   long-lived token works as a Bearer token too. Requests without a valid token get
//!   `401` as `application/problem+json`.
//! - At most `limit` requests in any sliding window (7 a second by default); over it the
//!   answer is `429 Too Many Requests`. Every such answer that was not injected on purpose
//!   is counted as a violation.
//! - Contacts: `GET /api/v4/contacts?query=` (full-text, so a phone's last ten digits find
//!   it; an empty list is `204 No Content`), `POST`/`PATCH /api/v4/contacts` (arrays),
//!   custom fields checked against `GET /api/v4/contacts/custom_fields` with
//!   `400 validation-errors` answers.
//! - Calls: `POST /api/v4/calls` (array; `direction`, `duration`, `source`, `phone`
//!   required; `uniq`, `link`, `call_status` 1–7, `call_result`, `responsible_user_id`,
//!   `created_at`, `request_id` optional). A call is attached to the contact with that
//!   phone as a `call_in`/`call_out` note; when no contact has the phone the call is not
//!   added and the item is reported in `errors` (the documentation says the call "will not
//!   be added" without publishing the shape; we answer it like a validation error).
//! - Notes (`/api/v4/contacts/notes`, `/api/v4/contacts/{id}/notes`) and tasks
//!   (`/api/v4/tasks`), with `filter[...]` and paging (`page`, `limit` ≤ 250).
//!
//! Stricter than the real service on purpose: unknown keys in request objects are
//! refused, so a typo in the client fails a test instead of being silently ignored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::faults::{Fault, FaultPlan, Faults, SlidingWindow};
use crate::http::{Handler, Reply, Request, Response, Server};

/// How the fake is set up.
#[derive(Debug, Clone)]
pub struct AmoConfig {
    /// The integration's id.
    pub client_id: String,
    /// The integration's secret.
    pub client_secret: String,
    /// The integration's redirect URI.
    pub redirect_uri: String,
    /// An authorisation code the first exchange may use (once).
    pub auth_code: String,
    /// A long-lived token that is always accepted.
    pub long_lived_token: Option<String>,
    /// How long an access token lives.
    pub access_ttl: Duration,
    /// Requests allowed per window.
    pub limit: usize,
    /// The window.
    pub window: Duration,
    /// Random faults.
    pub faults: FaultPlan,
}

impl Default for AmoConfig {
    fn default() -> AmoConfig {
        AmoConfig {
            client_id: "b6a1d2c4-0000-4000-8000-000000000001".into(),
            client_secret: "fake-amo-client-secret".into(),
            redirect_uri: "https://callhelper.invalid/oauth".into(),
            auth_code: "def50200-fake-auth-code".into(),
            long_lived_token: None,
            access_ttl: Duration::from_secs(86_400),
            limit: 7,
            window: Duration::from_secs(1),
            faults: FaultPlan::default(),
        }
    }
}

/// Counters a test reads.
#[derive(Debug, Default)]
pub struct AmoStats {
    /// Requests received.
    pub requests: AtomicU64,
    /// Requests refused because the client went over the rate limit.
    pub limit_violations: AtomicU64,
    /// Token refreshes that worked.
    pub refreshes: AtomicU64,
    /// Refreshes with a refresh token that had already been used.
    pub reused_refresh_tokens: AtomicU64,
    /// Requests refused for a bad or expired token.
    pub unauthorized: AtomicU64,
    /// Requests refused as malformed (400).
    pub bad_requests: AtomicU64,
}

/// The custom fields of contacts in the fake account.
pub fn contact_fields() -> Value {
    json!([
        {"id": 100, "name": "Телефон", "type": "multitext", "code": "PHONE", "sort": 4,
         "is_api_only": false, "enums": [
            {"id": 1, "value": "WORK", "sort": 2}, {"id": 2, "value": "WORKDD", "sort": 4},
            {"id": 3, "value": "MOB", "sort": 6}, {"id": 4, "value": "FAX", "sort": 8},
            {"id": 5, "value": "HOME", "sort": 10}, {"id": 6, "value": "OTHER", "sort": 12}]},
        {"id": 101, "name": "Email", "type": "multitext", "code": "EMAIL", "sort": 6,
         "is_api_only": false, "enums": [
            {"id": 7, "value": "WORK", "sort": 2}, {"id": 8, "value": "PRIV", "sort": 4},
            {"id": 9, "value": "OTHER", "sort": 6}]},
        {"id": 200, "name": "Budget", "type": "numeric", "code": null, "sort": 500,
         "is_api_only": false, "enums": null},
        {"id": 201, "name": "Interest", "type": "select", "code": null, "sort": 501,
         "is_api_only": false, "enums": [
            {"id": 11, "value": "High", "sort": 1}, {"id": 12, "value": "Low", "sort": 2}]},
        {"id": 202, "name": "Comment", "type": "textarea", "code": null, "sort": 502,
         "is_api_only": false, "enums": null},
        {"id": 203, "name": "Callback date", "type": "date", "code": null, "sort": 503,
         "is_api_only": false, "enums": null},
        {"id": 204, "name": "Agreed", "type": "checkbox", "code": null, "sort": 504,
         "is_api_only": false, "enums": null}
    ])
}

#[derive(Debug, Clone)]
struct Contact {
    id: u64,
    name: String,
    /// field id → values (each `{"value":..., "enum_code"/"enum_id":...}`).
    fields: BTreeMap<u64, Vec<Value>>,
    created_at: i64,
    updated_at: i64,
}

#[derive(Debug, Clone)]
struct Note {
    id: u64,
    entity_id: u64,
    note_type: String,
    params: Value,
    created_at: i64,
}

#[derive(Debug, Clone)]
struct Task {
    id: u64,
    entity_id: u64,
    entity_type: String,
    text: String,
    complete_till: i64,
    task_type_id: u64,
    responsible_user_id: u64,
}

#[derive(Debug, Default)]
struct Tokens {
    access: HashMap<String, Instant>,
    refresh: HashSet<String>,
    used_refresh: HashSet<String>,
    auth_code_used: bool,
    issued: u64,
}

#[derive(Debug, Default)]
struct State {
    contacts: Vec<Contact>,
    notes: Vec<Note>,
    tasks: Vec<Task>,
    next_id: u64,
    tokens: Tokens,
}

/// The fake amoCRM.
#[derive(Debug)]
pub struct AmoFake {
    cfg: AmoConfig,
    state: Mutex<State>,
    limiter: Mutex<SlidingWindow>,
    /// Fault injection.
    pub faults: Faults,
    /// Counters.
    pub stats: AmoStats,
}

/// A running fake amoCRM on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct AmoServer {
    /// The fake's state and knobs.
    pub fake: Arc<AmoFake>,
    server: Server,
}

impl AmoServer {
    /// Start a fake with `cfg`.
    pub fn start(cfg: AmoConfig) -> std::io::Result<AmoServer> {
        let fake = Arc::new(AmoFake::new(cfg));
        let server = Server::start(fake.clone())?;
        Ok(AmoServer { fake, server })
    }

    /// The account's base URL (stands for `https://SUBDOMAIN.amocrm.ru`).
    pub fn url(&self) -> String {
        self.server.url()
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn problem(status: u16, title: &str, detail: &str) -> Response {
    Response::typed(
        status,
        "application/problem+json",
        &json!({"title": title, "type": format!("https://httpstatus.es/{status}"),
                "status": status, "detail": detail}),
    )
}

/// Validation errors of one request: (request index, code, path, detail).
type Invalid = Vec<(usize, &'static str, String, String)>;

fn validation_failed(errors: &Invalid) -> Response {
    let mut by_req: BTreeMap<usize, Vec<Value>> = BTreeMap::new();
    for (i, code, path, detail) in errors {
        by_req
            .entry(*i)
            .or_default()
            .push(json!({"code": code, "path": path, "detail": detail}));
    }
    let list: Vec<Value> = by_req
        .into_iter()
        .map(|(i, errs)| json!({"request_id": i.to_string(), "errors": errs}))
        .collect();
    Response::typed(
        400,
        "application/problem+json",
        &json!({"validation-errors": list, "title": "Bad Request",
                "type": "https://httpstatus.es/400", "status": 400,
                "detail": "Request validation failed"}),
    )
}

fn check_keys(obj: &serde_json::Map<String, Value>, allowed: &[&str], i: usize, bad: &mut Invalid) {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            bad.push((i, "UnknownField", k.clone(), format!("Unknown field {k}")));
        }
    }
}

impl AmoFake {
    /// A fake with `cfg`.
    pub fn new(cfg: AmoConfig) -> AmoFake {
        AmoFake {
            limiter: Mutex::new(SlidingWindow::new(cfg.limit, cfg.window)),
            faults: Faults::new(cfg.faults.clone()),
            cfg,
            state: Mutex::new(State {
                next_id: 1000,
                ..State::default()
            }),
            stats: AmoStats::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Expire every access token now (the next API call gets 401).
    pub fn expire_access_tokens(&self) {
        self.lock().tokens.access.clear();
    }

    /// Add a contact directly (test set-up); returns its id.
    pub fn add_contact(&self, name: &str, phone: &str) -> u64 {
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        let now = unix_now();
        st.contacts.push(Contact {
            id,
            name: name.into(),
            fields: BTreeMap::from([(100, vec![json!({"value": phone, "enum_code": "WORK"})])]),
            created_at: now,
            updated_at: now,
        });
        id
    }

    /// Everything the account holds, as JSON: `contacts`, `notes` (calls are notes of type
    /// `call_in`/`call_out`) and `tasks`.
    pub fn snapshot(&self) -> Value {
        let st = self.lock();
        json!({
            "contacts": st.contacts.iter().map(contact_json).collect::<Vec<_>>(),
            "notes": st.notes.iter().map(note_json).collect::<Vec<_>>(),
            "tasks": st.tasks.iter().map(task_json).collect::<Vec<_>>(),
        })
    }

    fn token_pair(&self, st: &mut State) -> Value {
        st.tokens.issued += 1;
        let n = st.tokens.issued;
        let access = format!("amo-access-{n}-{:x}", crate::faults::Rng::new(n).next_u64());
        let refresh = format!(
            "def50200amo-refresh-{n}-{:x}",
            crate::faults::Rng::new(!n).next_u64()
        );
        st.tokens
            .access
            .insert(access.clone(), Instant::now() + self.cfg.access_ttl);
        st.tokens.refresh.insert(refresh.clone());
        json!({"token_type": "Bearer", "expires_in": self.cfg.access_ttl.as_secs(),
               "access_token": access, "refresh_token": refresh})
    }

    fn oauth(&self, req: &Request) -> Response {
        let oauth_error = |hint: &str| {
            Response::typed(
                400,
                "application/problem+json",
                &json!({"hint": hint, "title": "Некорректный запрос",
                        "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
                        "status": 400,
                        "detail": "В запросе отсутствует ряд параметров или параметры невалидны"}),
            )
        };
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return oauth_error("Request body is not JSON");
        };
        let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
        if s("client_id") != self.cfg.client_id || s("client_secret") != self.cfg.client_secret {
            return oauth_error("Client authentication failed");
        }
        if s("redirect_uri") != self.cfg.redirect_uri {
            return oauth_error("Redirect URI mismatch");
        }
        let mut st = self.lock();
        match s("grant_type") {
            "authorization_code" => {
                if s("code") != self.cfg.auth_code || st.tokens.auth_code_used {
                    return oauth_error("Authorization code has been revoked");
                }
                st.tokens.auth_code_used = true;
                Response::json(200, &self.token_pair(&mut st))
            }
            "refresh_token" => {
                let rt = s("refresh_token").to_owned();
                if st.tokens.used_refresh.contains(&rt) {
                    self.stats
                        .reused_refresh_tokens
                        .fetch_add(1, Ordering::Relaxed);
                    return oauth_error("Token has been revoked");
                }
                if !st.tokens.refresh.remove(&rt) {
                    return oauth_error("Cannot decrypt the refresh token");
                }
                st.tokens.used_refresh.insert(rt);
                self.stats.refreshes.fetch_add(1, Ordering::Relaxed);
                Response::json(200, &self.token_pair(&mut st))
            }
            _ => oauth_error("The authorization grant type is not supported"),
        }
    }

    /// Issue a token pair as the authorisation-code exchange would (test set-up).
    pub fn issue_tokens(&self) -> (String, String) {
        let mut st = self.lock();
        let v = self.token_pair(&mut st);
        (
            v["access_token"].as_str().unwrap_or_default().to_owned(),
            v["refresh_token"].as_str().unwrap_or_default().to_owned(),
        )
    }

    fn authorized(&self, req: &Request) -> bool {
        let Some(token) = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
        else {
            return false;
        };
        if self.cfg.long_lived_token.as_deref() == Some(token) {
            return true;
        }
        let st = self.lock();
        st.tokens
            .access
            .get(token)
            .is_some_and(|exp| Instant::now() < *exp)
    }

    fn route(&self, req: &Request) -> Response {
        if req.path == "/oauth2/access_token" && req.method == "POST" {
            return self.oauth(req);
        }
        if !req.path.starts_with("/api/v4/") {
            return problem(404, "Not Found", "Not Found");
        }
        if !self.authorized(req) {
            self.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
            return problem(401, "Unauthorized", "Unauthorized");
        }
        let body = if matches!(req.method.as_str(), "POST" | "PATCH") {
            if !req
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/json"))
            {
                return problem(400, "Bad Request", "Content-Type must be application/json");
            }
            match serde_json::from_slice::<Value>(&req.body) {
                Ok(Value::Array(a)) if !a.is_empty() && a.len() <= 250 => Some(a),
                Ok(Value::Array(_)) => {
                    return problem(400, "Bad Request", "Send from 1 to 250 entities");
                }
                Ok(_) => return problem(400, "Bad Request", "The body must be an array"),
                Err(_) => return problem(400, "Bad Request", "The body is not valid JSON"),
            }
        } else {
            None
        };
        let q = req.query_pairs();
        let path = req.path.trim_end_matches('/');
        match (req.method.as_str(), path, body) {
            ("GET", "/api/v4/account", _) => Response::json(
                200,
                &json!({"id": 31_415_926, "name": "CallHelper test", "subdomain": "callhelper",
                        "current_user_id": 1, "country": "RU", "currency": "RUB"}),
            ),
            ("GET", "/api/v4/contacts/custom_fields", _) => Response::json(
                200,
                &json!({"_total_items": 7, "_page": 1,
                        "_embedded": {"custom_fields": contact_fields()}}),
            ),
            ("GET", "/api/v4/contacts", _) => self.list_contacts(&q),
            ("POST", "/api/v4/contacts", Some(items)) => self.add_contacts(&items),
            ("PATCH", "/api/v4/contacts", Some(items)) => self.update_contacts(&items),
            ("POST", "/api/v4/calls", Some(items)) => self.add_calls(&items),
            ("GET", "/api/v4/contacts/notes", _) => self.list_notes(None, &q),
            ("POST", "/api/v4/contacts/notes", Some(items)) => self.add_notes(&items),
            ("GET", "/api/v4/tasks", _) => self.list_tasks(&q),
            ("POST", "/api/v4/tasks", Some(items)) => self.add_tasks(&items),
            ("GET", p, _) if p.starts_with("/api/v4/contacts/") && p.ends_with("/notes") => {
                let id = p
                    .trim_start_matches("/api/v4/contacts/")
                    .trim_end_matches("/notes");
                match id.parse::<u64>() {
                    Ok(id) => self.list_notes(Some(id), &q),
                    Err(_) => problem(404, "Not Found", "Not Found"),
                }
            }
            _ => problem(404, "Not Found", "Not Found"),
        }
    }

    fn page(q: &[(String, String)]) -> Result<(usize, usize), Response> {
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let page = match get("page") {
            Some(p) => p
                .parse::<usize>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| problem(400, "Bad Request", "page must be a positive number"))?,
            None => 1,
        };
        let limit = match get("limit") {
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=250).contains(l))
                .ok_or_else(|| problem(400, "Bad Request", "limit must be from 1 to 250"))?,
            None => 50,
        };
        Ok((page, limit))
    }

    fn paged(kind: &str, path: &str, all: Vec<Value>, page: usize, limit: usize) -> Response {
        let start = (page - 1) * limit;
        if start >= all.len() {
            return Response::empty(204);
        }
        let more = all.len() > start + limit;
        let items: Vec<Value> = all.into_iter().skip(start).take(limit).collect();
        let mut links = json!({"self": {"href": format!("{path}?page={page}&limit={limit}")}});
        if more {
            links["next"] = json!({"href": format!("{path}?page={}&limit={limit}", page + 1)});
        }
        Response::json(
            200,
            &json!({"_page": page, "_links": links, "_embedded": {kind: items}}),
        )
    }

    fn list_contacts(&self, q: &[(String, String)]) -> Response {
        let (page, limit) = match Self::page(q) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let query = q
            .iter()
            .find(|(k, _)| k == "query")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let st = self.lock();
        let qd = digits(&query);
        let found: Vec<Value> = st
            .contacts
            .iter()
            .filter(|c| {
                if query.is_empty() {
                    return true;
                }
                let in_name = c.name.to_lowercase().contains(&query.to_lowercase());
                let in_fields = c.fields.values().flatten().any(|v| {
                    let s = v["value"].as_str().unwrap_or("");
                    s.contains(&query) || (qd.len() >= 5 && digits(s).contains(&qd))
                });
                in_name || in_fields
            })
            .map(contact_json)
            .collect();
        Self::paged("contacts", "/api/v4/contacts", found, page, limit)
    }

    fn check_custom_fields(
        &self,
        i: usize,
        v: &Value,
        bad: &mut Invalid,
    ) -> BTreeMap<u64, Vec<Value>> {
        let mut out = BTreeMap::new();
        let Some(list) = v.as_array() else {
            bad.push((
                i,
                "InvalidType",
                "custom_fields_values".into(),
                "must be an array".into(),
            ));
            return out;
        };
        let defs = contact_fields();
        let defs = defs.as_array().cloned().unwrap_or_default();
        for (j, f) in list.iter().enumerate() {
            let path = format!("custom_fields_values.{j}");
            let Some(obj) = f.as_object() else {
                bad.push((i, "InvalidType", path, "must be an object".into()));
                continue;
            };
            check_keys(obj, &["field_id", "field_code", "values"], i, bad);
            let def = if let Some(id) = obj.get("field_id") {
                defs.iter().find(|d| d["id"] == *id)
            } else if let Some(code) = obj.get("field_code") {
                defs.iter().find(|d| d["code"] == *code)
            } else {
                None
            };
            let Some(def) = def else {
                bad.push((
                    i,
                    "NotSupportedChoice",
                    format!("{path}.field_id"),
                    "The value you selected is not a valid choice.".into(),
                ));
                continue;
            };
            let Some(values) = obj.get("values").and_then(Value::as_array) else {
                bad.push((
                    i,
                    "NotBlank",
                    format!("{path}.values"),
                    "This value should not be blank.".into(),
                ));
                continue;
            };
            let kind = def["type"].as_str().unwrap_or("");
            let enums: Vec<&Value> = def["enums"]
                .as_array()
                .map(|e| e.iter().collect())
                .unwrap_or_default();
            let mut kept = Vec::new();
            for (k, val) in values.iter().enumerate() {
                let vpath = format!("{path}.values.{k}.value");
                let x = &val["value"];
                let ok = match kind {
                    "text" | "textarea" => x.is_string(),
                    "numeric" => {
                        x.as_f64().is_some() || x.as_str().is_some_and(|s| s.parse::<f64>().is_ok())
                    }
                    "checkbox" => x.is_boolean(),
                    "date" => x.as_i64().is_some(),
                    "select" | "multiselect" => {
                        let by_id = val
                            .get("enum_id")
                            .is_some_and(|e| enums.iter().any(|d| d["id"] == *e));
                        let by_value = x
                            .as_str()
                            .is_some_and(|s| enums.iter().any(|d| d["value"] == s));
                        by_id || by_value
                    }
                    "multitext" => {
                        x.is_string()
                            && val
                                .get("enum_code")
                                .is_none_or(|c| enums.iter().any(|d| d["value"] == *c))
                    }
                    _ => false,
                };
                if !ok {
                    bad.push((
                        i,
                        "NotSupportedChoice",
                        vpath,
                        format!("The value is not valid for a {kind} field."),
                    ));
                } else {
                    kept.push(val.clone());
                }
            }
            if kind != "multiselect" && kind != "multitext" && values.len() > 1 {
                bad.push((
                    i,
                    "InvalidType",
                    format!("{path}.values"),
                    "This field takes one value.".into(),
                ));
            }
            if let Some(id) = def["id"].as_u64() {
                out.insert(id, kept);
            }
        }
        out
    }

    fn add_contacts(&self, items: &[Value]) -> Response {
        let mut bad = Invalid::new();
        let mut new = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let Some(obj) = it.as_object() else {
                bad.push((i, "InvalidType", String::new(), "must be an object".into()));
                continue;
            };
            check_keys(
                obj,
                &[
                    "name",
                    "first_name",
                    "last_name",
                    "responsible_user_id",
                    "custom_fields_values",
                    "request_id",
                    "created_by",
                ],
                i,
                &mut bad,
            );
            if obj.get("name").is_some_and(|n| !n.is_string()) {
                bad.push((i, "InvalidType", "name".into(), "must be a string".into()));
            }
            let fields = obj
                .get("custom_fields_values")
                .map(|v| self.check_custom_fields(i, v, &mut bad))
                .unwrap_or_default();
            let request_id = obj
                .get("request_id")
                .and_then(Value::as_str)
                .map(str::to_owned);
            new.push((
                obj.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                fields,
                request_id,
            ));
        }
        if !bad.is_empty() {
            self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
            return validation_failed(&bad);
        }
        let mut st = self.lock();
        let now = unix_now();
        let mut out = Vec::new();
        for (i, (name, fields, rid)) in new.into_iter().enumerate() {
            st.next_id += 1;
            let id = st.next_id;
            st.contacts.push(Contact {
                id,
                name,
                fields,
                created_at: now,
                updated_at: now,
            });
            out.push(
                json!({"id": id, "request_id": rid.unwrap_or_else(|| i.to_string()),
                            "_links": {"self": {"href": format!("/api/v4/contacts/{id}")}}}),
            );
        }
        Response::json(200, &json!({"_links": {}, "_embedded": {"contacts": out}}))
    }

    fn update_contacts(&self, items: &[Value]) -> Response {
        let mut bad = Invalid::new();
        let mut upd = Vec::new();
        {
            let st = self.lock();
            for (i, it) in items.iter().enumerate() {
                let Some(obj) = it.as_object() else {
                    bad.push((i, "InvalidType", String::new(), "must be an object".into()));
                    continue;
                };
                check_keys(
                    obj,
                    &[
                        "id",
                        "name",
                        "first_name",
                        "last_name",
                        "responsible_user_id",
                        "custom_fields_values",
                        "request_id",
                    ],
                    i,
                    &mut bad,
                );
                let Some(id) = obj.get("id").and_then(Value::as_u64) else {
                    bad.push((
                        i,
                        "NotBlank",
                        "id".into(),
                        "This value should not be blank.".into(),
                    ));
                    continue;
                };
                if !st.contacts.iter().any(|c| c.id == id) {
                    bad.push((i, "NotFound", "id".into(), "Entity not found".into()));
                    continue;
                }
                let fields = obj
                    .get("custom_fields_values")
                    .map(|v| self.check_custom_fields(i, v, &mut bad))
                    .unwrap_or_default();
                upd.push((
                    id,
                    obj.get("name").and_then(Value::as_str).map(str::to_owned),
                    fields,
                    obj.get("request_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                ));
            }
        }
        if !bad.is_empty() {
            self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
            return validation_failed(&bad);
        }
        let mut st = self.lock();
        let now = unix_now();
        let mut out = Vec::new();
        for (i, (id, name, fields, rid)) in upd.into_iter().enumerate() {
            if let Some(c) = st.contacts.iter_mut().find(|c| c.id == id) {
                if let Some(n) = name {
                    c.name = n;
                }
                c.fields.extend(fields);
                c.updated_at = now;
            }
            out.push(json!({"id": id, "updated_at": now, "request_id": rid.unwrap_or_else(|| i.to_string())}));
        }
        Response::json(200, &json!({"_links": {}, "_embedded": {"contacts": out}}))
    }

    fn contact_by_phone(st: &State, phone: &str) -> Option<u64> {
        let d = digits(phone);
        let tail = &d[d.len().saturating_sub(10)..];
        if tail.is_empty() {
            return None;
        }
        st.contacts.iter().find_map(|c| {
            let has = c.fields.get(&100).is_some_and(|vs| {
                vs.iter()
                    .any(|v| digits(v["value"].as_str().unwrap_or("")).ends_with(tail))
            });
            has.then_some(c.id)
        })
    }

    fn add_calls(&self, items: &[Value]) -> Response {
        let mut bad = Invalid::new();
        for (i, it) in items.iter().enumerate() {
            let Some(obj) = it.as_object() else {
                bad.push((i, "InvalidType", String::new(), "must be an object".into()));
                continue;
            };
            check_keys(
                obj,
                &[
                    "direction",
                    "uniq",
                    "duration",
                    "source",
                    "link",
                    "phone",
                    "call_result",
                    "call_status",
                    "responsible_user_id",
                    "created_by",
                    "updated_by",
                    "created_at",
                    "updated_at",
                    "request_id",
                ],
                i,
                &mut bad,
            );
            match obj.get("direction").and_then(Value::as_str) {
                Some("inbound" | "outbound") => {}
                _ => bad.push((
                    i,
                    "NotSupportedChoice",
                    "direction".into(),
                    "direction must be inbound or outbound".into(),
                )),
            }
            if obj.get("duration").and_then(Value::as_u64).is_none() {
                bad.push((
                    i,
                    "NotBlank",
                    "duration".into(),
                    "duration must be a whole number of seconds".into(),
                ));
            }
            if obj
                .get("source")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                bad.push((
                    i,
                    "NotBlank",
                    "source".into(),
                    "This value should not be blank.".into(),
                ));
            }
            if obj
                .get("phone")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                bad.push((
                    i,
                    "NotBlank",
                    "phone".into(),
                    "This value should not be blank.".into(),
                ));
            }
            if let Some(s) = obj.get("call_status") {
                if !s.as_u64().is_some_and(|s| (1..=7).contains(&s)) {
                    bad.push((
                        i,
                        "NotSupportedChoice",
                        "call_status".into(),
                        "call_status must be 1..7".into(),
                    ));
                }
            }
            for k in ["uniq", "link", "call_result"] {
                if obj.get(k).is_some_and(|v| !v.is_string()) {
                    bad.push((i, "InvalidType", k.into(), format!("{k} must be a string")));
                }
            }
            for k in ["responsible_user_id", "created_at", "created_by"] {
                if obj.get(k).is_some_and(|v| v.as_i64().is_none()) {
                    bad.push((i, "InvalidType", k.into(), format!("{k} must be a number")));
                }
            }
        }
        if !bad.is_empty() {
            self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
            return validation_failed(&bad);
        }
        let mut st = self.lock();
        let mut calls = Vec::new();
        let mut errors = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let rid = it["request_id"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| i.to_string());
            let Some(cid) = Self::contact_by_phone(&st, it["phone"].as_str().unwrap_or("")) else {
                errors.push(json!({"request_id": rid, "errors": [
                    {"code": "NotFound", "path": "phone",
                     "detail": "No contact or company has this phone number; the call was not added"}]}));
                continue;
            };
            st.next_id += 1;
            let id = st.next_id;
            let note_type = if it["direction"] == "inbound" {
                "call_in"
            } else {
                "call_out"
            };
            let mut params = json!({});
            for k in [
                "uniq",
                "duration",
                "source",
                "link",
                "phone",
                "call_status",
                "call_result",
            ] {
                if let Some(v) = it.get(k) {
                    params[k] = v.clone();
                }
            }
            st.notes.push(Note {
                id,
                entity_id: cid,
                note_type: note_type.into(),
                params,
                created_at: it["created_at"].as_i64().unwrap_or_else(unix_now),
            });
            calls.push(
                json!({"id": id, "entity_id": cid, "entity_type": "contacts",
                              "account_id": 31_415_926, "request_id": rid}),
            );
        }
        Response::json(
            200,
            &json!({"_total_items": calls.len(), "_embedded": {"calls": calls}, "errors": errors}),
        )
    }

    fn add_notes(&self, items: &[Value]) -> Response {
        let mut bad = Invalid::new();
        {
            let st = self.lock();
            for (i, it) in items.iter().enumerate() {
                let Some(obj) = it.as_object() else {
                    bad.push((i, "InvalidType", String::new(), "must be an object".into()));
                    continue;
                };
                check_keys(
                    obj,
                    &[
                        "entity_id",
                        "note_type",
                        "params",
                        "request_id",
                        "created_by",
                        "is_need_to_trigger_digital_pipeline",
                    ],
                    i,
                    &mut bad,
                );
                match obj.get("entity_id").and_then(Value::as_u64) {
                    Some(id) if st.contacts.iter().any(|c| c.id == id) => {}
                    _ => bad.push((i, "NotFound", "entity_id".into(), "Entity not found".into())),
                }
                match obj.get("note_type").and_then(Value::as_str) {
                    Some("common" | "service_message") => {
                        if obj
                            .get("params")
                            .and_then(|p| p.get("text"))
                            .and_then(Value::as_str)
                            .is_none_or(str::is_empty)
                        {
                            bad.push((
                                i,
                                "NotBlank",
                                "params.text".into(),
                                "This value should not be blank.".into(),
                            ));
                        }
                    }
                    _ => bad.push((
                        i,
                        "NotSupportedChoice",
                        "note_type".into(),
                        "The value you selected is not a valid choice.".into(),
                    )),
                }
            }
        }
        if !bad.is_empty() {
            self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
            return validation_failed(&bad);
        }
        let mut st = self.lock();
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            st.next_id += 1;
            let id = st.next_id;
            let entity_id = it["entity_id"].as_u64().unwrap_or(0);
            st.notes.push(Note {
                id,
                entity_id,
                note_type: it["note_type"].as_str().unwrap_or("common").into(),
                params: it["params"].clone(),
                created_at: unix_now(),
            });
            out.push(json!({"id": id, "entity_id": entity_id,
                            "request_id": it["request_id"].as_str().map(str::to_owned).unwrap_or_else(|| i.to_string())}));
        }
        Response::json(200, &json!({"_links": {}, "_embedded": {"notes": out}}))
    }

    fn filter_ids(q: &[(String, String)], key: &str) -> Option<Vec<u64>> {
        let vals: Vec<u64> = q
            .iter()
            .filter(|(k, _)| {
                k == key || *k == format!("{key}[]") || k.starts_with(&format!("{key}["))
            })
            .filter_map(|(_, v)| v.parse().ok())
            .collect();
        (!vals.is_empty()).then_some(vals)
    }

    fn list_notes(&self, entity: Option<u64>, q: &[(String, String)]) -> Response {
        let (page, limit) = match Self::page(q) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let ids = entity
            .map(|e| vec![e])
            .or_else(|| Self::filter_ids(q, "filter[entity_id]"));
        let types: Vec<&str> = q
            .iter()
            .filter(|(k, _)| k.starts_with("filter[note_type]"))
            .map(|(_, v)| v.as_str())
            .collect();
        let st = self.lock();
        let found: Vec<Value> = st
            .notes
            .iter()
            .filter(|n| ids.as_ref().is_none_or(|ids| ids.contains(&n.entity_id)))
            .filter(|n| types.is_empty() || types.contains(&n.note_type.as_str()))
            .map(note_json)
            .collect();
        Self::paged("notes", "/api/v4/contacts/notes", found, page, limit)
    }

    fn add_tasks(&self, items: &[Value]) -> Response {
        let mut bad = Invalid::new();
        {
            let st = self.lock();
            for (i, it) in items.iter().enumerate() {
                let Some(obj) = it.as_object() else {
                    bad.push((i, "InvalidType", String::new(), "must be an object".into()));
                    continue;
                };
                check_keys(
                    obj,
                    &[
                        "text",
                        "complete_till",
                        "entity_id",
                        "entity_type",
                        "task_type_id",
                        "responsible_user_id",
                        "duration",
                        "request_id",
                        "created_by",
                    ],
                    i,
                    &mut bad,
                );
                if obj
                    .get("text")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    bad.push((
                        i,
                        "NotBlank",
                        "text".into(),
                        "This value should not be blank.".into(),
                    ));
                }
                if obj.get("complete_till").and_then(Value::as_i64).is_none() {
                    bad.push((
                        i,
                        "NotBlank",
                        "complete_till".into(),
                        "complete_till must be a Unix timestamp".into(),
                    ));
                }
                match (
                    obj.get("entity_type").and_then(Value::as_str),
                    obj.get("entity_id").and_then(Value::as_u64),
                ) {
                    (Some("contacts"), Some(id)) if st.contacts.iter().any(|c| c.id == id) => {}
                    (Some("contacts" | "leads" | "companies" | "customers"), Some(_)) => {
                        bad.push((i, "NotFound", "entity_id".into(), "Entity not found".into()))
                    }
                    (None, None) => {}
                    _ => bad.push((
                        i,
                        "NotSupportedChoice",
                        "entity_type".into(),
                        "The value you selected is not a valid choice.".into(),
                    )),
                }
                if obj
                    .get("task_type_id")
                    .is_some_and(|t| !matches!(t.as_u64(), Some(1 | 2)))
                {
                    bad.push((
                        i,
                        "NotSupportedChoice",
                        "task_type_id".into(),
                        "The value you selected is not a valid choice.".into(),
                    ));
                }
            }
        }
        if !bad.is_empty() {
            self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
            return validation_failed(&bad);
        }
        let mut st = self.lock();
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            st.next_id += 1;
            let id = st.next_id;
            st.tasks.push(Task {
                id,
                entity_id: it["entity_id"].as_u64().unwrap_or(0),
                entity_type: it["entity_type"].as_str().unwrap_or("").into(),
                text: it["text"].as_str().unwrap_or("").into(),
                complete_till: it["complete_till"].as_i64().unwrap_or(0),
                task_type_id: it["task_type_id"].as_u64().unwrap_or(1),
                responsible_user_id: it["responsible_user_id"].as_u64().unwrap_or(1),
            });
            out.push(json!({"id": id, "request_id": it["request_id"].as_str().map(str::to_owned).unwrap_or_else(|| i.to_string())}));
        }
        Response::json(200, &json!({"_links": {}, "_embedded": {"tasks": out}}))
    }

    fn list_tasks(&self, q: &[(String, String)]) -> Response {
        let (page, limit) = match Self::page(q) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let ids = Self::filter_ids(q, "filter[entity_id]");
        let etype = q
            .iter()
            .find(|(k, _)| k == "filter[entity_type]")
            .map(|(_, v)| v.as_str());
        let st = self.lock();
        let found: Vec<Value> = st
            .tasks
            .iter()
            .filter(|t| ids.as_ref().is_none_or(|ids| ids.contains(&t.entity_id)))
            .filter(|t| etype.is_none_or(|e| e == t.entity_type))
            .map(task_json)
            .collect();
        Self::paged("tasks", "/api/v4/tasks", found, page, limit)
    }
}

fn contact_json(c: &Contact) -> Value {
    let defs = contact_fields();
    let cf: Vec<Value> = c
        .fields
        .iter()
        .map(|(id, vals)| {
            let def = defs
                .as_array()
                .and_then(|d| d.iter().find(|d| d["id"] == *id))
                .cloned()
                .unwrap_or_default();
            json!({"field_id": id, "field_name": def["name"], "field_code": def["code"],
                   "field_type": def["type"], "values": vals})
        })
        .collect();
    json!({"id": c.id, "name": c.name, "responsible_user_id": 1, "created_at": c.created_at,
           "updated_at": c.updated_at,
           "custom_fields_values": if cf.is_empty() { Value::Null } else { Value::Array(cf) },
           "_links": {"self": {"href": format!("/api/v4/contacts/{}", c.id)}}})
}

fn note_json(n: &Note) -> Value {
    json!({"id": n.id, "entity_id": n.entity_id, "note_type": n.note_type, "params": n.params,
           "created_at": n.created_at, "responsible_user_id": 1})
}

fn task_json(t: &Task) -> Value {
    json!({"id": t.id, "entity_id": t.entity_id, "entity_type": t.entity_type, "text": t.text,
           "complete_till": t.complete_till, "task_type_id": t.task_type_id,
           "responsible_user_id": t.responsible_user_id, "is_completed": false})
}

impl Handler for AmoFake {
    fn handle(&self, req: &Request) -> Reply {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let admitted = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(Instant::now());
        if !admitted {
            self.stats.limit_violations.fetch_add(1, Ordering::Relaxed);
            return Reply::Respond(problem(429, "Too Many Requests", "Too Many Requests"));
        }
        let fault = self.faults.next();
        match fault {
            Some(Fault::RateLimited) => {
                return Reply::Respond(problem(429, "Too Many Requests", "Too Many Requests"));
            }
            Some(Fault::ServerError) => {
                return Reply::Respond(problem(
                    500,
                    "Internal Server Error",
                    "Internal Server Error",
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
                headers: vec![("content-type".into(), "application/hal+json".into())],
                body: b"{\"_embedded\": {\"calls\": [ <html>502 Bad Gateway".to_vec(),
            }),
            _ => Reply::Respond(resp),
        }
    }
}
