//! Bitrix24 (REST), through an inbound webhook URL or OAuth.
//!
//! Every stage of a delivery is one `batch` request of up to 50 commands (one HTTP request
//! for the rate limit): find contacts (`crm.duplicate.findbycomm`), create the missing ones
//! (`crm.contact.add`), write mapped fields (`crm.contact.update`), register each call
//! (`telephony.externalcall.register` — repeated with the same parameters before `finish`
//! it returns the same `CALL_ID`), attach the recording, finish the call (which creates
//! the call activity), add the transcript as a timeline comment and a to-do for a callback.
//! Comments and to-dos carry the run's marker line; a stage that may already have reached
//! the portal is looked up there before it is sent again.

use std::collections::BTreeMap;
use std::sync::Arc;

use callhelper_script::Lang;
use serde_json::{Map, Value, json};

use crate::adapter::{AccountInfo, Adapter, Checkpoint, settle};
use crate::error::{CrmError, CrmKind};
use crate::http::{Answer, Clock, HttpConfig, HttpStats, Method, Transport, encode};
use crate::job::{CallResult, Delivery, Direction, Stage};
use crate::mapping::{Converted, CrmField, CrmFieldKind, Mappings, mapped_values};
use crate::oauth::{OAuthTokens, TokenStore};
use crate::secret::Secret;

const CRM: CrmKind = CrmKind::Bitrix24;

/// How the portal is reached.
#[derive(Debug)]
#[non_exhaustive]
pub enum BitrixAuth {
    /// An inbound webhook: `https://PORTAL/rest/USER/KEY/` (the key is a secret).
    Webhook(Secret),
    /// An OAuth application.
    OAuth {
        /// The portal, `https://PORTAL.bitrix24.ru`.
        portal_url: String,
        /// Where tokens are renewed (`https://oauth.bitrix.info`).
        oauth_url: String,
        /// The application's id.
        client_id: String,
        /// The application's secret.
        client_secret: Secret,
        /// Where the tokens live.
        tokens: Box<dyn TokenStore>,
    },
}

/// Settings of a Bitrix24 connection.
#[derive(Debug, Clone)]
pub struct BitrixSettings {
    /// The portal user calls are registered for (`USER_ID`).
    pub user_id: u64,
    /// The language of comments and to-dos.
    pub lang: Lang,
    /// The agents' UTC offset, in minutes.
    pub utc_offset_min: i32,
    /// Field mappings by script id.
    pub mappings: Mappings,
    /// HTTP settings.
    pub http: HttpConfig,
    /// Runs per delivery (each stage is one `batch` of at most 50 commands).
    pub batch: usize,
}

impl Default for BitrixSettings {
    fn default() -> BitrixSettings {
        BitrixSettings {
            user_id: 1,
            lang: Lang::Ru,
            utc_offset_min: 180,
            mappings: Mappings::new(),
            http: HttpConfig::for_crm(CRM),
            batch: 50,
        }
    }
}

/// The Bitrix24 adapter.
#[derive(Debug)]
pub struct Bitrix {
    s: BitrixSettings,
    auth: BitrixAuth,
    http: Transport,
    fields: Option<Vec<CrmField>>,
    /// Contacts found or made this session, by the phone's last ten digits.
    known: BTreeMap<String, String>,
}

/// A method's own error: (code, description).
type MethodError = (String, String);

/// The answer of a `batch`.
#[derive(Debug, Default)]
struct BatchOut {
    result: Map<String, Value>,
    errors: BTreeMap<String, MethodError>,
    next: BTreeMap<String, u64>,
}

fn is_refused(a: &Answer) -> bool {
    (a.status == 503 && String::from_utf8_lossy(&a.body).contains("QUERY_LIMIT_EXCEEDED"))
        || a.status == 429
}

fn error_of(a: &Answer) -> MethodError {
    match serde_json::from_slice::<Value>(&a.body) {
        Ok(v) => (
            v.get("error")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            v.get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        ),
        Err(_) => (format!("HTTP {}", a.status), a.snippet()),
    }
}

fn describe((code, desc): &MethodError) -> String {
    match (code.is_empty(), desc.is_empty()) {
        (false, false) => format!("{code}: {desc}"),
        (false, true) => code.clone(),
        _ => desc.clone(),
    }
}

/// PHP's `http_build_query` of a JSON value (how `batch` commands carry parameters).
pub fn php_query(v: &Value) -> String {
    fn walk(key: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    let kk = if key.is_empty() {
                        k.clone()
                    } else {
                        format!("{key}[{k}]")
                    };
                    walk(&kk, x, out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(&format!("{key}[{i}]"), x, out);
                }
            }
            Value::String(s) => out.push(format!("{}={}", encode(key), encode(s))),
            Value::Number(n) => out.push(format!("{}={}", encode(key), n)),
            Value::Bool(b) => out.push(format!("{}={}", encode(key), u8::from(*b))),
            Value::Null => {}
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out.join("&")
}

/// `[]` (PHP's empty array) or an object.
fn as_map(v: Option<&Value>) -> Map<String, Value> {
    match v {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    }
}

fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(o) => o.get("id").or_else(|| o.get("ID")).and_then(id_of),
        _ => None,
    }
}

impl Bitrix {
    /// An adapter for a portal.
    pub fn new(s: BitrixSettings, auth: BitrixAuth, clock: Arc<dyn Clock>, seed: u64) -> Bitrix {
        let http = Transport::new(CRM, &s.http, clock, seed);
        Bitrix {
            s,
            auth,
            http,
            fields: None,
            known: BTreeMap::new(),
        }
    }

    fn base(&self) -> String {
        match &self.auth {
            BitrixAuth::Webhook(url) => {
                let u = url.expose();
                if u.ends_with('/') {
                    u.to_owned()
                } else {
                    format!("{u}/")
                }
            }
            BitrixAuth::OAuth { portal_url, .. } => {
                format!("{}/rest/", portal_url.trim_end_matches('/'))
            }
        }
    }

    fn access_token(&mut self, force: bool) -> Result<Option<Secret>, CrmError> {
        let now = self.http.clock().now();
        let BitrixAuth::OAuth {
            oauth_url,
            client_id,
            client_secret,
            tokens,
            ..
        } = &self.auth
        else {
            return Ok(None);
        };
        let Some(current) = tokens.load()? else {
            return Err(CrmError::Unauthorized {
                crm: CRM,
                message: "not connected yet".into(),
            });
        };
        if !force && current.expires_at.0 > now.0 + 60_000 {
            return Ok(Some(current.access));
        }
        let url = format!(
            "{}/oauth/token/?grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
            oauth_url.trim_end_matches('/'),
            encode(client_id),
            encode(client_secret.expose()),
            encode(current.refresh.expose())
        );
        let a = self.http.send(
            Method::Get,
            &url,
            &[("accept", "application/json")],
            None,
            &is_refused,
        )?;
        match a.status {
            200 => {}
            s if s >= 500 => {
                return Err(CrmError::ServerError {
                    crm: CRM,
                    status: s,
                    message: describe(&error_of(&a)),
                });
            }
            _ => {
                return Err(CrmError::Unauthorized {
                    crm: CRM,
                    message: describe(&error_of(&a)),
                });
            }
        }
        let v = a.json(CRM)?;
        let (Some(access), Some(refresh), Some(ttl)) = (
            v.get("access_token").and_then(Value::as_str),
            v.get("refresh_token").and_then(Value::as_str),
            v.get("expires_in").and_then(Value::as_i64),
        ) else {
            return Err(CrmError::Malformed {
                crm: CRM,
                detail: "the token answer lacks access_token, refresh_token or expires_in".into(),
            });
        };
        let fresh = OAuthTokens {
            access: Secret::new(access),
            refresh: Secret::new(refresh),
            expires_at: callhelper_script::Timestamp(now.0 + ttl * 1000),
        };
        // Store the new pair before using it: the old refresh token no longer works.
        if let BitrixAuth::OAuth { tokens, .. } = &self.auth {
            tokens.save(&fresh)?;
        }
        Ok(Some(fresh.access))
    }

    /// Call one method; `Ok(Err(..))` is the method's own refusal.
    fn call(
        &mut self,
        method: &str,
        params: &Value,
    ) -> Result<Result<Value, MethodError>, CrmError> {
        let url = format!("{}{method}.json", self.base());
        let mut refreshed = false;
        loop {
            let mut body = params.clone();
            if let Some(t) = self.access_token(false)? {
                body["auth"] = json!(t.expose());
            }
            let body = body.to_string();
            let a = self.http.send(
                Method::Post,
                &url,
                &[
                    ("content-type", "application/json"),
                    ("accept", "application/json"),
                ],
                Some(body.as_bytes()),
                &is_refused,
            )?;
            match a.status {
                200 => {
                    let v = a.json(CRM)?;
                    return match v.get("result") {
                        Some(r) => {
                            let mut r = r.clone();
                            // Lists carry `total`/`next` beside `result`.
                            if let Some(n) = v.get("next") {
                                r = json!({"items": r, "next": n});
                            }
                            Ok(Ok(r))
                        }
                        None => Err(CrmError::Malformed {
                            crm: CRM,
                            detail: "the answer has no `result`".into(),
                        }),
                    };
                }
                401 => {
                    let e = error_of(&a);
                    if !refreshed
                        && e.0 == "expired_token"
                        && matches!(self.auth, BitrixAuth::OAuth { .. })
                    {
                        refreshed = true;
                        self.access_token(true)?;
                        continue;
                    }
                    return Err(CrmError::Unauthorized {
                        crm: CRM,
                        message: describe(&e),
                    });
                }
                403 => {
                    return Err(CrmError::Unauthorized {
                        crm: CRM,
                        message: describe(&error_of(&a)),
                    });
                }
                s if s >= 500 => {
                    return Err(CrmError::ServerError {
                        crm: CRM,
                        status: s,
                        message: describe(&error_of(&a)),
                    });
                }
                _ => return Ok(Err(error_of(&a))),
            }
        }
    }

    /// Run commands as `batch` requests of at most 50.
    fn batch(&mut self, cmds: &[(String, &str, Value)]) -> Result<BatchOut, CrmError> {
        let mut out = BatchOut::default();
        for chunk in cmds.chunks(50) {
            let cmd: Map<String, Value> = chunk
                .iter()
                .map(|(k, m, p)| (k.clone(), Value::String(format!("{m}?{}", php_query(p)))))
                .collect();
            let r = match self.call("batch", &json!({"halt": 0, "cmd": cmd}))? {
                Ok(r) => r,
                Err(e) => {
                    return Err(CrmError::Rejected {
                        crm: CRM,
                        message: describe(&e),
                    });
                }
            };
            out.result.extend(as_map(r.get("result")));
            for (k, e) in as_map(r.get("result_error")) {
                out.errors.insert(
                    k,
                    (
                        e.get("error")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        e.get("error_description")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    ),
                );
            }
            for (k, n) in as_map(r.get("result_next")) {
                if let Some(n) = n
                    .as_u64()
                    .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
                {
                    out.next.insert(k, n);
                }
            }
            for (k, _, _) in chunk {
                if !out.result.contains_key(k) && !out.errors.contains_key(k) {
                    return Err(CrmError::Malformed {
                        crm: CRM,
                        detail: format!("the batch answer does not mention command {k}"),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Every item of a list method for each key's parameters, following `result_next`.
    fn list_all(
        &mut self,
        method: &str,
        queries: Vec<(String, Value)>,
    ) -> Result<BTreeMap<String, Vec<Value>>, CrmError> {
        let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut pending: Vec<(String, Value, u64)> =
            queries.into_iter().map(|(k, p)| (k, p, 0)).collect();
        for _ in 0..100 {
            if pending.is_empty() {
                break;
            }
            let cmds: Vec<(String, &str, Value)> = pending
                .iter()
                .map(|(k, p, start)| {
                    let mut p = p.clone();
                    p["start"] = json!(start);
                    (k.clone(), method, p)
                })
                .collect();
            let r = self.batch(&cmds)?;
            let mut again = Vec::new();
            for (k, p, _) in pending {
                if let Some(e) = r.errors.get(&k) {
                    return Err(CrmError::Rejected {
                        crm: CRM,
                        message: describe(e),
                    });
                }
                let items = r
                    .result
                    .get(&k)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                out.entry(k.clone()).or_default().extend(items);
                if let Some(n) = r.next.get(&k) {
                    again.push((k, p, *n));
                }
            }
            pending = again;
        }
        Ok(out)
    }

    fn contact_fields(&mut self) -> Result<Vec<CrmField>, CrmError> {
        if let Some(f) = &self.fields {
            return Ok(f.clone());
        }
        let v = match self.call("crm.contact.fields", &json!({}))? {
            Ok(v) => v,
            Err(e) => {
                return Err(CrmError::Rejected {
                    crm: CRM,
                    message: describe(&e),
                });
            }
        };
        let mut fields = Vec::new();
        for (id, f) in as_map(Some(&v)) {
            if f.get("isReadOnly") == Some(&Value::Bool(true)) {
                continue;
            }
            let multiple = f.get("isMultiple") == Some(&Value::Bool(true));
            let kind = match f.get("type").and_then(Value::as_str).unwrap_or("") {
                "string" => CrmFieldKind::Text,
                "double" | "integer" | "money" => CrmFieldKind::Number,
                "date" | "datetime" => CrmFieldKind::Date,
                "boolean" | "char" => CrmFieldKind::Bool,
                "enumeration" if multiple => CrmFieldKind::MultiSelect,
                "enumeration" => CrmFieldKind::Select,
                "crm_multifield" => CrmFieldKind::Contacts,
                other => CrmFieldKind::Other(other.into()),
            };
            let name = f
                .get("listLabel")
                .or_else(|| f.get("formLabel"))
                .or_else(|| f.get("title"))
                .and_then(Value::as_str)
                .unwrap_or(&id)
                .to_owned();
            let options = f
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| Some((id_of(i.get("ID")?)?, i.get("VALUE")?.as_str()?.to_owned())))
                .collect();
            fields.push(CrmField {
                id,
                name,
                kind,
                options,
            });
        }
        self.fields = Some(fields.clone());
        Ok(fields)
    }

    fn stage_contacts(
        &mut self,
        items: &mut [Delivery],
        cp: &mut dyn Checkpoint,
    ) -> Result<(), CrmError> {
        let mut by_phone: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, d) in items.iter_mut().enumerate() {
            if !d.open() || d.progress.contact_id.is_some() {
                continue;
            }
            let last10 = d.job.contact.last10();
            if last10.len() < 5 {
                d.reject(CRM, "the phone number has fewer than five digits");
                continue;
            }
            by_phone.entry(last10).or_default().push(i);
        }
        for (phone, idx) in &by_phone {
            if let Some(id) = self.known.get(phone) {
                for &i in idx {
                    items[i].progress.contact_id = Some(id.clone());
                    items[i]
                        .progress
                        .mark_done(Stage::Contact, Some(id.clone()));
                }
            }
        }
        by_phone.retain(|p, _| !self.known.contains_key(p));
        if by_phone.is_empty() {
            return cp.save(items);
        }
        let phones: Vec<(String, Vec<usize>)> = by_phone.into_iter().collect();
        let cmds: Vec<(String, &str, Value)> = phones
            .iter()
            .enumerate()
            .map(|(k, (_, idx))| {
                let phone = &items[idx[0]].job.contact.phone;
                (
                    format!("f{k}"),
                    "crm.duplicate.findbycomm",
                    json!({"entity_type": "CONTACT", "type": "PHONE", "values": [phone]}),
                )
            })
            .collect();
        let found = self.batch(&cmds)?;
        let mut missing = Vec::new();
        for (k, (_, idx)) in phones.iter().enumerate() {
            let key = format!("f{k}");
            if let Some(e) = found.errors.get(&key) {
                for &i in idx {
                    items[i].reject(CRM, describe(e));
                }
                continue;
            }
            let id = found
                .result
                .get(&key)
                .and_then(|r| r.get("CONTACT"))
                .and_then(Value::as_array)
                .and_then(|ids| {
                    ids.iter()
                        .filter_map(|v| id_of(v)?.parse::<u64>().ok())
                        .min()
                });
            match id {
                Some(id) => {
                    self.known.insert(phones[k].0.clone(), id.to_string());
                    for &i in idx {
                        items[i].progress.contact_id = Some(id.to_string());
                        items[i]
                            .progress
                            .mark_done(Stage::Contact, Some(id.to_string()));
                    }
                }
                None => missing.push(idx.clone()),
            }
        }
        if missing.is_empty() {
            return cp.save(items);
        }
        for idx in &missing {
            for &i in idx {
                items[i].progress.mark_attempted(Stage::Contact);
            }
        }
        cp.save(items)?;
        let cmds: Vec<(String, &str, Value)> = missing
            .iter()
            .enumerate()
            .map(|(k, idx)| {
                let c = &items[idx[0]].job.contact;
                let mut fields = json!({"PHONE": [{"VALUE": c.phone, "VALUE_TYPE": "WORK"}]});
                if let Some(n) = &c.name {
                    fields["NAME"] = json!(n);
                }
                (
                    format!("a{k}"),
                    "crm.contact.add",
                    json!({"fields": fields, "params": {"REGISTER_SONET_EVENT": "N"}}),
                )
            })
            .collect();
        let made = self.batch(&cmds)?;
        let missing_phones: Vec<String> = phones
            .iter()
            .filter(|(_, idx)| missing.contains(idx))
            .map(|(p, _)| p.clone())
            .collect();
        for (k, idx) in missing.iter().enumerate() {
            let key = format!("a{k}");
            if let Some(e) = made.errors.get(&key) {
                for &i in idx {
                    items[i].reject(CRM, describe(e));
                }
            } else if let Some(id) = made.result.get(&key).and_then(id_of) {
                if let Some(p) = missing_phones.get(k) {
                    self.known.insert(p.clone(), id.clone());
                }
                for &i in idx {
                    items[i].progress.contact_id = Some(id.clone());
                    items[i]
                        .progress
                        .mark_done(Stage::Contact, Some(id.clone()));
                }
            }
        }
        cp.save(items)
    }

    fn stage_fields(
        &mut self,
        items: &mut [Delivery],
        cp: &mut dyn Checkpoint,
    ) -> Result<(), CrmError> {
        let wanted: Vec<usize> = (0..items.len())
            .filter(|&i| {
                let d = &items[i];
                d.open()
                    && d.progress.contact_id.is_some()
                    && !d.progress.done(Stage::Fields)
                    && self
                        .s
                        .mappings
                        .get(&d.job.run.script_id)
                        .is_some_and(|m| !m.rules.is_empty())
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let crm_fields = self.contact_fields()?;
        let mut cmds = Vec::new();
        let mut keyed = Vec::new();
        for &i in &wanted {
            let d = &items[i];
            match mapped_values(
                &d.job.run.fields,
                &self.s.mappings[&d.job.run.script_id],
                &crm_fields,
                self.s.utc_offset_min,
            ) {
                Ok(vals) => {
                    let mut fields = Map::new();
                    for (f, v) in vals {
                        fields.insert(f.id.clone(), bitrix_value(&v, self.s.utc_offset_min));
                    }
                    let id = d.progress.contact_id.clone().unwrap_or_default();
                    cmds.push((
                        format!("u{}", keyed.len()),
                        "crm.contact.update",
                        json!({"id": id, "fields": fields}),
                    ));
                    keyed.push(i);
                }
                Err(why) => items[i].outcome = Some(Err(CrmError::Settings { message: why })),
            }
        }
        let r = self.batch(&cmds)?;
        for (k, &i) in keyed.iter().enumerate() {
            match r.errors.get(&format!("u{k}")) {
                Some(e) => items[i].reject(CRM, describe(e)),
                None => items[i].progress.mark_done(Stage::Fields, None),
            }
        }
        cp.save(items)
    }

    fn stage_register(
        &mut self,
        items: &mut [Delivery],
        cp: &mut dyn Checkpoint,
    ) -> Result<(), CrmError> {
        let send: Vec<usize> = (0..items.len())
            .filter(|&i| {
                let d = &items[i];
                d.open()
                    && d.job.call.is_some()
                    && d.progress.contact_id.is_some()
                    && d.progress.call_id.is_none()
            })
            .collect();
        if send.is_empty() {
            return Ok(());
        }
        for &i in &send {
            items[i].progress.mark_attempted(Stage::Call);
        }
        cp.save(items)?;
        let off = self.s.utc_offset_min;
        let cmds: Vec<(String, &str, Value)> = send
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let d = &items[i];
                let call = d.job.call.as_ref().expect("filtered on call");
                (format!("r{k}"), "telephony.externalcall.register", json!({
                    "USER_ID": self.s.user_id,
                    "PHONE_NUMBER": d.job.contact.phone,
                    "TYPE": match call.direction { Direction::Outbound => 1, Direction::Inbound => 2 },
                    "CALL_START_DATE": crate::time::iso8601(call.started_at, off),
                    "CRM_CREATE": 0,
                    "CRM_ENTITY_TYPE": "CONTACT",
                    "CRM_ENTITY_ID": d.progress.contact_id,
                    "SHOW": 0,
                }))
            })
            .collect();
        let r = self.batch(&cmds)?;
        for (k, &i) in send.iter().enumerate() {
            let key = format!("r{k}");
            if let Some(e) = r.errors.get(&key) {
                items[i].progress.stages.remove(&Stage::Call);
                items[i].reject(CRM, describe(e));
            } else if let Some(cid) = r
                .result
                .get(&key)
                .and_then(|v| v.get("CALL_ID"))
                .and_then(Value::as_str)
            {
                items[i].progress.call_id = Some(cid.to_owned());
                items[i]
                    .progress
                    .mark_done(Stage::Call, Some(cid.to_owned()));
            }
        }
        cp.save(items)
    }

    fn stage_recording(
        &mut self,
        items: &mut [Delivery],
        cp: &mut dyn Checkpoint,
    ) -> Result<(), CrmError> {
        let send: Vec<usize> = (0..items.len())
            .filter(|&i| {
                let d = &items[i];
                d.open()
                    && d.progress.call_id.is_some()
                    && d.job
                        .call
                        .as_ref()
                        .is_some_and(|c| c.recording_url.is_some())
                    && !d.progress.done(Stage::Recording)
            })
            .collect();
        if send.is_empty() {
            return Ok(());
        }
        // Attaching under the same file name replaces the file: safe to repeat.
        let cmds: Vec<(String, &str, Value)> = send
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let d = &items[i];
                (
                    format!("m{k}"),
                    "telephony.externalCall.attachRecord",
                    json!({
                        "CALL_ID": d.progress.call_id,
                        "FILENAME": format!("{}.mp3", d.job.run_id),
                        "RECORD_URL": d.job.call.as_ref().and_then(|c| c.recording_url.clone()),
                    }),
                )
            })
            .collect();
        let r = self.batch(&cmds)?;
        for (k, &i) in send.iter().enumerate() {
            match r.errors.get(&format!("m{k}")) {
                Some(e) => items[i].reject(CRM, describe(e)),
                None => items[i].progress.mark_done(Stage::Recording, None),
            }
        }
        cp.save(items)
    }

    fn stage_finish(
        &mut self,
        items: &mut [Delivery],
        cp: &mut dyn Checkpoint,
    ) -> Result<(), CrmError> {
        let send: Vec<usize> = (0..items.len())
            .filter(|&i| {
                items[i].open()
                    && items[i].progress.call_id.is_some()
                    && !items[i].progress.done(Stage::Finish)
            })
            .collect();
        if send.is_empty() {
            return Ok(());
        }
        let unsure: Vec<bool> = send
            .iter()
            .map(|&i| items[i].progress.attempted(Stage::Finish))
            .collect();
        for &i in &send {
            items[i].progress.mark_attempted(Stage::Finish);
        }
        cp.save(items)?;
        let cmds: Vec<(String, &str, Value)> = send
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let d = &items[i];
                let call = d.job.call.as_ref().expect("a registered call");
                let status = match call.result {
                    CallResult::Answered => "200",
                    CallResult::NoAnswer => "304",
                    CallResult::Busy => "486",
                    CallResult::Failed => "603",
                };
                (
                    format!("z{k}"),
                    "telephony.externalcall.finish",
                    json!({
                        "CALL_ID": d.progress.call_id,
                        "USER_ID": self.s.user_id,
                        "DURATION": call.duration_s,
                        "STATUS_CODE": status,
                        "ADD_TO_CHAT": 0,
                    }),
                )
            })
            .collect();
        let r = self.batch(&cmds)?;
        for (k, &i) in send.iter().enumerate() {
            let key = format!("z{k}");
            match r.errors.get(&key) {
                // An earlier attempt finished it: the call is there once.
                Some((code, _)) if code == "NOT_FOUND" && unsure[k] => {
                    items[i].progress.mark_done(Stage::Finish, None)
                }
                Some((code, _)) if code == "NOT_FOUND" => {
                    // The registration is gone: register again next time.
                    let p = &mut items[i].progress;
                    p.call_id = None;
                    p.stages.remove(&Stage::Call);
                    p.stages.remove(&Stage::Recording);
                    p.stages.remove(&Stage::Finish);
                }
                Some(e) => {
                    items[i].progress.stages.remove(&Stage::Finish);
                    items[i].reject(CRM, describe(e));
                }
                None => {
                    let act = r
                        .result
                        .get(&key)
                        .and_then(|v| v.get("CRM_ACTIVITY_ID"))
                        .and_then(id_of);
                    items[i].progress.mark_done(Stage::Finish, act);
                }
            }
        }
        cp.save(items)
    }

    /// Look up, for the `unsure` items, whether an earlier attempt left their marker in
    /// the list method's items (`text_key` holds the text).
    fn reconcile(
        &mut self,
        items: &mut [Delivery],
        unsure: &[usize],
        stage: Stage,
        method: &str,
        filter: impl Fn(&str) -> Value,
        text_key: &str,
    ) -> Result<(), CrmError> {
        if unsure.is_empty() {
            return Ok(());
        }
        let contacts: std::collections::BTreeSet<String> = unsure
            .iter()
            .filter_map(|&i| items[i].progress.contact_id.clone())
            .collect();
        let queries: Vec<(String, Value)> = contacts
            .iter()
            .map(|c| (format!("l{c}"), filter(c)))
            .collect();
        let lists = self.list_all(method, queries)?;
        for &i in unsure {
            let marker = items[i].job.run_id.marker();
            let key = format!(
                "l{}",
                items[i].progress.contact_id.clone().unwrap_or_default()
            );
            if let Some(hit) = lists.get(&key).into_iter().flatten().find(|x| {
                x.get(text_key)
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.contains(&marker))
            }) {
                items[i]
                    .progress
                    .mark_done(stage, id_of(hit.get("ID").unwrap_or(&Value::Null)));
            }
        }
        Ok(())
    }

    fn stage_comments(
        &mut self,
        items: &mut [Delivery],
        cp: &mut dyn Checkpoint,
    ) -> Result<(), CrmError> {
        let todo: Vec<usize> = (0..items.len())
            .filter(|&i| {
                items[i].open()
                    && items[i].progress.contact_id.is_some()
                    && !items[i].progress.done(Stage::Note)
            })
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let unsure: Vec<usize> = todo
            .iter()
            .copied()
            .filter(|&i| items[i].progress.attempted(Stage::Note))
            .collect();
        self.reconcile(
            items,
            &unsure,
            Stage::Note,
            "crm.timeline.comment.list",
            |c| json!({"filter": {"ENTITY_ID": c, "ENTITY_TYPE": "contact"}, "select": ["ID", "COMMENT"]}),
            "COMMENT",
        )?;
        let send: Vec<usize> = todo
            .into_iter()
            .filter(|&i| !items[i].progress.done(Stage::Note))
            .collect();
        if send.is_empty() {
            return cp.save(items);
        }
        for &i in &send {
            items[i].progress.mark_attempted(Stage::Note);
        }
        cp.save(items)?;
        let cmds: Vec<(String, &str, Value)> = send
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let d = &items[i];
                (format!("c{k}"), "crm.timeline.comment.add", json!({"fields": {
                    "ENTITY_ID": d.progress.contact_id,
                    "ENTITY_TYPE": "contact",
                    "COMMENT": crate::transcript::render(&d.job, self.s.lang, self.s.utc_offset_min),
                }}))
            })
            .collect();
        let r = self.batch(&cmds)?;
        for (k, &i) in send.iter().enumerate() {
            let key = format!("c{k}");
            match r.errors.get(&key) {
                Some(e) => {
                    items[i].progress.stages.remove(&Stage::Note);
                    items[i].reject(CRM, describe(e));
                }
                None => items[i]
                    .progress
                    .mark_done(Stage::Note, r.result.get(&key).and_then(id_of)),
            }
        }
        cp.save(items)
    }

    fn stage_todos(
        &mut self,
        items: &mut [Delivery],
        cp: &mut dyn Checkpoint,
    ) -> Result<(), CrmError> {
        let off = self.s.utc_offset_min;
        let todo: Vec<usize> = (0..items.len())
            .filter(|&i| {
                let d = &items[i];
                d.open()
                    && d.progress.contact_id.is_some()
                    && d.job.callback_at(off).is_some()
                    && !d.progress.done(Stage::Task)
            })
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let unsure: Vec<usize> = todo
            .iter()
            .copied()
            .filter(|&i| items[i].progress.attempted(Stage::Task))
            .collect();
        self.reconcile(
            items,
            &unsure,
            Stage::Task,
            "crm.activity.list",
            |c| json!({"filter": {"OWNER_TYPE_ID": 3, "OWNER_ID": c}, "select": ["ID", "DESCRIPTION"]}),
            "DESCRIPTION",
        )?;
        let send: Vec<usize> = todo
            .into_iter()
            .filter(|&i| !items[i].progress.done(Stage::Task))
            .collect();
        if send.is_empty() {
            return cp.save(items);
        }
        for &i in &send {
            items[i].progress.mark_attempted(Stage::Task);
        }
        cp.save(items)?;
        let title = match self.s.lang {
            Lang::Ru => "Перезвонить",
            Lang::En => "Call back",
        };
        let cmds: Vec<(String, &str, Value)> = send
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let d = &items[i];
                let script = d.job.script_name.as_deref().unwrap_or(&d.job.run.script_id);
                (
                    format!("t{k}"),
                    "crm.activity.todo.add",
                    json!({
                        "ownerTypeId": 3,
                        "ownerId": d.progress.contact_id,
                        "deadline": d.job.callback_at(off).map(|t| crate::time::iso8601(t, off)),
                        "title": format!("{title} ({script})"),
                        "description": d.job.run_id.marker(),
                        "responsibleId": self.s.user_id,
                    }),
                )
            })
            .collect();
        let r = self.batch(&cmds)?;
        for (k, &i) in send.iter().enumerate() {
            let key = format!("t{k}");
            match r.errors.get(&key) {
                Some(e) => {
                    items[i].progress.stages.remove(&Stage::Task);
                    items[i].reject(CRM, describe(e));
                }
                None => items[i]
                    .progress
                    .mark_done(Stage::Task, r.result.get(&key).and_then(id_of)),
            }
        }
        cp.save(items)
    }
}

/// A converted value as Bitrix24 takes it.
fn bitrix_value(v: &Converted, off: i32) -> Value {
    match v {
        Converted::Text(s) => json!(s),
        Converted::Number(n) => json!(callhelper_script::format_number(*n)),
        Converted::Bool(b) => json!(if *b { "Y" } else { "N" }),
        Converted::Date(t) => json!(crate::time::date(*t, off)),
        Converted::Option(id) => json!(id),
        Converted::Options(ids) => json!(ids),
    }
}

impl Adapter for Bitrix {
    fn kind(&self) -> CrmKind {
        CRM
    }

    fn batch_size(&self) -> usize {
        self.s.batch.clamp(1, 50)
    }

    fn deliver(&mut self, items: &mut [Delivery], cp: &mut dyn Checkpoint) -> Result<(), CrmError> {
        self.stage_contacts(items, cp)?;
        self.stage_fields(items, cp)?;
        self.stage_register(items, cp)?;
        self.stage_recording(items, cp)?;
        self.stage_finish(items, cp)?;
        self.stage_comments(items, cp)?;
        self.stage_todos(items, cp)?;
        let off = self.s.utc_offset_min;
        let mapped = |d: &Delivery| {
            self.s
                .mappings
                .get(&d.job.run.script_id)
                .is_some_and(|m| !m.rules.is_empty())
        };
        settle(CRM, items, |d| {
            let p = &d.progress;
            let call = d.job.call.as_ref();
            p.done(Stage::Contact)
                && (!mapped(d) || p.done(Stage::Fields))
                && (call.is_none() || (p.done(Stage::Call) && p.done(Stage::Finish)))
                && (call.is_none_or(|c| c.recording_url.is_none()) || p.done(Stage::Recording))
                && p.done(Stage::Note)
                && (d.job.callback_at(off).is_none() || p.done(Stage::Task))
        });
        Ok(())
    }

    fn fields(&mut self) -> Result<Vec<CrmField>, CrmError> {
        self.fields = None;
        self.contact_fields()
    }

    fn check(&mut self) -> Result<AccountInfo, CrmError> {
        match self.call("profile", &json!({}))? {
            Ok(v) => Ok(AccountInfo {
                name: format!(
                    "{} {}",
                    v.get("NAME").and_then(Value::as_str).unwrap_or(""),
                    v.get("LAST_NAME").and_then(Value::as_str).unwrap_or("")
                )
                .trim()
                .to_owned(),
            }),
            Err(e) => Err(CrmError::Rejected {
                crm: CRM,
                message: describe(&e),
            }),
        }
    }

    fn stats(&self) -> HttpStats {
        self.http.stats()
    }
}
