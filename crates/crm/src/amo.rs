//! amoCRM (API v4).
//!
//! One delivery of a batch of runs goes in stages, each one request for the whole batch
//! where the API takes arrays: find each contact by the last ten digits of the phone
//! (`GET /api/v4/contacts?query=`), create the missing ones (`POST /api/v4/contacts`),
//! write mapped fields (`PATCH /api/v4/contacts`), log the calls (`POST /api/v4/calls`
//! with our run id as `uniq`), add the transcript as a note (`POST
//! /api/v4/contacts/notes`) and a task for a callback (`POST /api/v4/tasks`). Notes and
//! tasks carry the run's marker line, and calls their `uniq`, so a stage that may already
//! have reached amoCRM is looked up there before it is sent again.
//!
//! Auth: a long-lived token, or OAuth 2.0 whose refresh token rotates on every use (see
//! [`crate::oauth`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use callhelper_script::Lang;
use serde_json::{Value, json};

use crate::adapter::{AccountInfo, Adapter, Checkpoint, settle};
use crate::error::{CrmError, CrmKind};
use crate::http::{Answer, Clock, HttpConfig, HttpStats, Method, Transport, encode};
use crate::job::{CallResult, Delivery, Direction, Stage};
use crate::mapping::{Converted, CrmField, CrmFieldKind, Mappings, mapped_values};
use crate::oauth::{OAuthTokens, TokenStore};
use crate::secret::Secret;

const CRM: CrmKind = CrmKind::AmoCrm;

/// How amoCRM is reached.
#[derive(Debug)]
#[non_exhaustive]
pub enum AmoAuth {
    /// A long-lived token.
    LongLived(Secret),
    /// An OAuth integration.
    OAuth {
        /// The integration's id.
        client_id: String,
        /// The integration's secret.
        client_secret: Secret,
        /// The integration's redirect URI.
        redirect_uri: String,
        /// Where the tokens live.
        tokens: Box<dyn TokenStore>,
    },
}

/// Settings of an amoCRM connection.
#[derive(Debug, Clone)]
pub struct AmoSettings {
    /// The account's address, `https://SUBDOMAIN.amocrm.ru`.
    pub base_url: String,
    /// The calls' `source`.
    pub source: String,
    /// The user calls and tasks are assigned to.
    pub responsible_user_id: Option<u64>,
    /// The language of notes and tasks.
    pub lang: Lang,
    /// The agents' UTC offset, in minutes (for dates without one).
    pub utc_offset_min: i32,
    /// Field mappings by script id.
    pub mappings: Mappings,
    /// HTTP settings.
    pub http: HttpConfig,
    /// Runs per delivery (amoCRM takes up to 250 entities a request; 50 is its advice).
    pub batch: usize,
}

impl AmoSettings {
    /// Settings with the defaults for an account.
    pub fn new(base_url: impl Into<String>) -> AmoSettings {
        AmoSettings {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            source: "CallHelper".into(),
            responsible_user_id: None,
            lang: Lang::Ru,
            utc_offset_min: 180,
            mappings: Mappings::new(),
            http: HttpConfig::for_crm(CRM),
            batch: 50,
        }
    }
}

/// The amoCRM adapter.
#[derive(Debug)]
pub struct Amo {
    s: AmoSettings,
    auth: AmoAuth,
    http: Transport,
    fields: Option<Vec<CrmField>>,
    /// Contacts found or made this session, by the phone's last ten digits.
    known: BTreeMap<String, String>,
}

fn is_refused(a: &Answer) -> bool {
    a.status == 429
}

/// amoCRM's words from an error answer (`detail`, `hint`, validation errors).
fn problem_text(a: &Answer) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(&a.body) else {
        return format!("HTTP {}: {}", a.status, a.snippet());
    };
    let mut parts = Vec::new();
    for k in ["title", "detail", "hint"] {
        if let Some(s) = v.get(k).and_then(Value::as_str) {
            if !parts.iter().any(|p: &String| p == s) {
                parts.push(s.to_owned());
            }
        }
    }
    for e in validation_errors(&v).into_values().flatten() {
        parts.push(e);
    }
    if parts.is_empty() {
        format!("HTTP {}", a.status)
    } else {
        parts.join("; ")
    }
}

/// `validation-errors` (or per-item `errors`) by `request_id`: "path: detail" texts.
fn validation_errors(v: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in ["validation-errors", "errors"] {
        for item in v.get(key).and_then(Value::as_array).into_iter().flatten() {
            let rid = item
                .get("request_id")
                .map(|r| {
                    r.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| r.to_string())
                })
                .unwrap_or_default();
            let texts = out.entry(rid).or_default();
            for e in item
                .get("errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let path = e.get("path").and_then(Value::as_str).unwrap_or("");
                let detail = e.get("detail").and_then(Value::as_str).unwrap_or("invalid");
                texts.push(if path.is_empty() {
                    detail.to_owned()
                } else {
                    format!("{path}: {detail}")
                });
            }
            if let Some(d) = item.get("detail").and_then(Value::as_str) {
                texts.push(d.to_owned());
            }
        }
    }
    out
}

fn embedded(v: &Value, kind: &str) -> Vec<Value> {
    v.get("_embedded")
        .and_then(|e| e.get(kind))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn rid(v: &Value) -> String {
    v.get("request_id")
        .map(|r| {
            r.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| r.to_string())
        })
        .unwrap_or_default()
}

fn id_text(v: &Value) -> Option<String> {
    v.get("id").and_then(Value::as_u64).map(|i| i.to_string())
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// amoCRM's `call_status`: 4 a conversation took place, 2 call back later, 3 the person
/// was not there, 5 wrong number, 6 could not get through, 7 busy.
fn call_status(d: &Delivery) -> u8 {
    use callhelper_script::Outcome;
    let Some(call) = &d.job.call else { return 4 };
    match call.result {
        CallResult::Busy => 7,
        CallResult::NoAnswer | CallResult::Failed => 6,
        CallResult::Answered => match d.job.run.outcome {
            Some(Outcome::WrongNumber) => 5,
            Some(Outcome::Callback) => 2,
            Some(Outcome::NoDecisionMaker) => 3,
            _ => 4,
        },
    }
}

impl Amo {
    /// An adapter for an account.
    pub fn new(s: AmoSettings, auth: AmoAuth, clock: Arc<dyn Clock>, seed: u64) -> Amo {
        let http = Transport::new(CRM, &s.http, clock, seed);
        Amo {
            s,
            auth,
            http,
            fields: None,
            known: BTreeMap::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.s.base_url)
    }

    /// The access token, refreshed when it is about to expire.
    fn token(&mut self, force_refresh: bool) -> Result<Secret, CrmError> {
        let now = self.http.clock().now();
        let (client_id, client_secret, redirect_uri, store) = match &self.auth {
            AmoAuth::LongLived(t) => return Ok(t.clone()),
            AmoAuth::OAuth {
                client_id,
                client_secret,
                redirect_uri,
                tokens,
            } => (
                client_id.clone(),
                client_secret.clone(),
                redirect_uri.clone(),
                tokens,
            ),
        };
        let Some(current) = store.load()? else {
            return Err(CrmError::Unauthorized {
                crm: CRM,
                message: "not connected yet".into(),
            });
        };
        if !force_refresh && current.expires_at.0 > now.0 + 60_000 {
            return Ok(current.access);
        }
        let body = json!({
            "client_id": client_id,
            "client_secret": client_secret.expose(),
            "grant_type": "refresh_token",
            "refresh_token": current.refresh.expose(),
            "redirect_uri": redirect_uri,
        })
        .to_string();
        let url = self.url("/oauth2/access_token");
        let a = self.http.send(
            Method::Post,
            &url,
            &[("content-type", "application/json")],
            Some(body.as_bytes()),
            &is_refused,
        )?;
        let fresh = self.read_tokens(&a)?;
        // Store the new pair before using it: the old refresh token no longer works.
        let AmoAuth::OAuth { tokens, .. } = &self.auth else {
            unreachable!("checked above")
        };
        tokens.save(&fresh)?;
        Ok(fresh.access)
    }

    fn read_tokens(&self, a: &Answer) -> Result<OAuthTokens, CrmError> {
        match a.status {
            200 => {}
            400 | 401 | 403 => {
                return Err(CrmError::Unauthorized {
                    crm: CRM,
                    message: problem_text(a),
                });
            }
            s if s >= 500 => {
                return Err(CrmError::ServerError {
                    crm: CRM,
                    status: s,
                    message: problem_text(a),
                });
            }
            s => {
                return Err(CrmError::Malformed {
                    crm: CRM,
                    detail: format!("HTTP {s} from the token endpoint"),
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
        Ok(OAuthTokens {
            access: Secret::new(access),
            refresh: Secret::new(refresh),
            expires_at: callhelper_script::Timestamp(self.http.clock().now().0 + ttl * 1000),
        })
    }

    /// Exchange an authorisation code for tokens and store them (connecting).
    pub fn authorize(&mut self, code: &Secret) -> Result<(), CrmError> {
        let AmoAuth::OAuth {
            client_id,
            client_secret,
            redirect_uri,
            ..
        } = &self.auth
        else {
            return Ok(());
        };
        let body = json!({"client_id": client_id, "client_secret": client_secret.expose(),
                          "grant_type": "authorization_code", "code": code.expose(),
                          "redirect_uri": redirect_uri})
        .to_string();
        let url = self.url("/oauth2/access_token");
        let a = self.http.send(
            Method::Post,
            &url,
            &[("content-type", "application/json")],
            Some(body.as_bytes()),
            &is_refused,
        )?;
        let fresh = self.read_tokens(&a)?;
        if let AmoAuth::OAuth { tokens, .. } = &self.auth {
            tokens.save(&fresh)?;
        }
        Ok(())
    }

    /// One API request. `200`, `204` and `400` come back as answers (the caller reads
    /// validation errors); a `401` refreshes the token once; others become errors.
    fn api(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, CrmError> {
        let url = self.url(path);
        let body = body.map(Value::to_string);
        let mut refreshed = false;
        loop {
            let token = self.token(false)?;
            let auth = format!("Bearer {}", token.expose());
            let mut headers = vec![
                ("authorization", auth.as_str()),
                ("accept", "application/json"),
            ];
            if body.is_some() {
                headers.push(("content-type", "application/json"));
            }
            let a = self.http.send(
                method,
                &url,
                &headers,
                body.as_deref().map(str::as_bytes),
                &is_refused,
            )?;
            match a.status {
                200 | 204 | 400 => return Ok(a),
                401 if !refreshed && matches!(self.auth, AmoAuth::OAuth { .. }) => {
                    refreshed = true;
                    self.token(true)?;
                }
                401..=403 => {
                    return Err(CrmError::Unauthorized {
                        crm: CRM,
                        message: problem_text(&a),
                    });
                }
                s if s >= 500 => {
                    return Err(CrmError::ServerError {
                        crm: CRM,
                        status: s,
                        message: problem_text(&a),
                    });
                }
                _ => {
                    return Err(CrmError::Rejected {
                        crm: CRM,
                        message: problem_text(&a),
                    });
                }
            }
        }
    }

    /// Every item of a paged list (`_embedded.<kind>`), following pages until `204` or no
    /// `next` link.
    fn list_all(&mut self, path: &str, kind: &str) -> Result<Vec<Value>, CrmError> {
        let mut out = Vec::new();
        for page in 1..=200 {
            let sep = if path.contains('?') { '&' } else { '?' };
            let a = self.api(
                Method::Get,
                &format!("{path}{sep}limit=250&page={page}"),
                None,
            )?;
            if a.status == 204 {
                break;
            }
            if a.status != 200 {
                return Err(CrmError::Rejected {
                    crm: CRM,
                    message: problem_text(&a),
                });
            }
            let v = a.json(CRM)?;
            out.extend(embedded(&v, kind));
            if v.pointer("/_links/next").is_none() {
                break;
            }
        }
        Ok(out)
    }

    fn find_contact(&mut self, last10: &str) -> Result<Option<String>, CrmError> {
        let a = self.api(
            Method::Get,
            &format!("/api/v4/contacts?query={}&limit=50", encode(last10)),
            None,
        )?;
        match a.status {
            204 => return Ok(None),
            200 => {}
            _ => {
                return Err(CrmError::Rejected {
                    crm: CRM,
                    message: problem_text(&a),
                });
            }
        }
        let v = a.json(CRM)?;
        // Full-text search finds more than phones: keep contacts whose phone really ends
        // with these digits, and take the oldest.
        let found = embedded(&v, "contacts")
            .into_iter()
            .filter(|c| {
                c.get("custom_fields_values")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|f| f.get("field_code").and_then(Value::as_str) == Some("PHONE"))
                    .flat_map(|f| {
                        f.get("values")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default()
                    })
                    .any(|val| {
                        digits(val.get("value").and_then(Value::as_str).unwrap_or(""))
                            .ends_with(last10)
                    })
            })
            .filter_map(|c| c.get("id").and_then(Value::as_u64))
            .min();
        Ok(found.map(|i| i.to_string()))
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
        let mut missing = Vec::new();
        for (phone, idx) in &by_phone {
            let known = self.known.get(phone).cloned();
            let found = match known {
                Some(id) => Some(id),
                None => self.find_contact(phone)?,
            };
            if let Some(id) = &found {
                self.known.insert(phone.clone(), id.clone());
            }
            match found {
                Some(id) => {
                    for &i in idx {
                        items[i].progress.contact_id = Some(id.clone());
                        items[i]
                            .progress
                            .mark_done(Stage::Contact, Some(id.clone()));
                    }
                }
                None => missing.push((phone.clone(), idx.clone())),
            }
        }
        if missing.is_empty() {
            return cp.save(items);
        }
        for (_, idx) in &missing {
            for &i in idx {
                items[i].progress.mark_attempted(Stage::Contact);
            }
        }
        cp.save(items)?;
        let body: Vec<Value> = missing
            .iter()
            .enumerate()
            .map(|(k, (_, idx))| {
                let c = &items[idx[0]].job.contact;
                let mut o = json!({
                    "custom_fields_values": [{"field_code": "PHONE",
                        "values": [{"value": c.phone, "enum_code": "WORK"}]}],
                    "request_id": k.to_string(),
                });
                if let Some(n) = &c.name {
                    o["name"] = json!(n);
                }
                if let Some(u) = self.s.responsible_user_id {
                    o["responsible_user_id"] = json!(u);
                }
                o
            })
            .collect();
        let a = self.api(Method::Post, "/api/v4/contacts", Some(&Value::Array(body)))?;
        if a.status == 400 {
            let errs = validation_errors(&a.json(CRM)?);
            for (k, (_, idx)) in missing.iter().enumerate() {
                let msg = errs.get(&k.to_string()).map(|e| e.join("; "));
                for &i in idx {
                    items[i].reject(CRM, msg.clone().unwrap_or_else(|| problem_text(&a)));
                }
            }
            return cp.save(items);
        }
        let v = a.json(CRM)?;
        for c in embedded(&v, "contacts") {
            let (Ok(k), Some(id)) = (rid(&c).parse::<usize>(), id_text(&c)) else {
                continue;
            };
            if let Some((phone, idx)) = missing.get(k) {
                self.known.insert(phone.clone(), id.clone());
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

    fn contact_fields(&mut self) -> Result<Vec<CrmField>, CrmError> {
        if let Some(f) = &self.fields {
            return Ok(f.clone());
        }
        let list = self.list_all("/api/v4/contacts/custom_fields", "custom_fields")?;
        let fields: Vec<CrmField> = list
            .iter()
            .filter_map(|f| {
                let id = f.get("id")?.as_u64()?.to_string();
                let kind = match f.get("type")?.as_str()? {
                    "text" | "textarea" | "url" | "streetaddress" => CrmFieldKind::Text,
                    "numeric" => CrmFieldKind::Number,
                    "date" | "date_time" | "birthday" => CrmFieldKind::Date,
                    "checkbox" => CrmFieldKind::Bool,
                    "select" | "radiobutton" => CrmFieldKind::Select,
                    "multiselect" => CrmFieldKind::MultiSelect,
                    "multitext" => CrmFieldKind::Contacts,
                    other => CrmFieldKind::Other(other.into()),
                };
                let options = f
                    .get("enums")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| {
                        Some((
                            e.get("id")?.as_u64()?.to_string(),
                            e.get("value")?.as_str()?.to_owned(),
                        ))
                    })
                    .collect();
                Some(CrmField {
                    id,
                    name: f
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    kind,
                    options,
                })
            })
            .collect();
        self.fields = Some(fields.clone());
        Ok(fields)
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
        // contact id → field id → values; later runs win.
        let mut per_contact: BTreeMap<String, BTreeMap<String, Vec<Value>>> = BTreeMap::new();
        let mut members: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for &i in &wanted {
            let d = &items[i];
            let map = &self.s.mappings[&d.job.run.script_id];
            match mapped_values(&d.job.run.fields, map, &crm_fields, self.s.utc_offset_min) {
                Ok(vals) => {
                    let cid = d.progress.contact_id.clone().unwrap_or_default();
                    let entry = per_contact.entry(cid.clone()).or_default();
                    for (f, v) in vals {
                        entry.insert(f.id.clone(), amo_values(&v));
                    }
                    members.entry(cid).or_default().push(i);
                }
                Err(why) => {
                    items[i].outcome = Some(Err(CrmError::Settings { message: why }));
                }
            }
        }
        let contacts: Vec<String> = per_contact.keys().cloned().collect();
        let body: Vec<Value> = contacts
            .iter()
            .enumerate()
            .map(|(k, cid)| {
                let cf: Vec<Value> = per_contact[cid]
                    .iter()
                    .map(|(fid, vals)| json!({"field_id": fid.parse::<u64>().unwrap_or(0), "values": vals}))
                    .collect();
                json!({"id": cid.parse::<u64>().unwrap_or(0), "custom_fields_values": cf,
                       "request_id": k.to_string()})
            })
            .collect();
        if body.is_empty() {
            return cp.save(items);
        }
        let a = self.api(Method::Patch, "/api/v4/contacts", Some(&Value::Array(body)))?;
        if a.status == 400 {
            let errs = validation_errors(&a.json(CRM)?);
            for (k, cid) in contacts.iter().enumerate() {
                let msg = errs
                    .get(&k.to_string())
                    .map(|e| e.join("; "))
                    .unwrap_or_else(|| problem_text(&a));
                for &i in &members[cid] {
                    items[i].reject(CRM, msg.clone());
                }
            }
            return cp.save(items);
        }
        a.json(CRM)?;
        for idx in members.values() {
            for &i in idx {
                items[i].progress.mark_done(Stage::Fields, None);
            }
        }
        cp.save(items)
    }

    /// Notes of the contacts of `idx` of the given types.
    fn notes_of(
        &mut self,
        items: &[Delivery],
        idx: &[usize],
        types: &[&str],
    ) -> Result<Vec<Value>, CrmError> {
        let ids: BTreeSet<String> = idx
            .iter()
            .filter_map(|&i| items[i].progress.contact_id.clone())
            .collect();
        let mut out = Vec::new();
        let ids: Vec<String> = ids.into_iter().collect();
        for chunk in ids.chunks(50) {
            let mut q: Vec<String> = chunk
                .iter()
                .map(|id| format!("{}={id}", encode("filter[entity_id][]")))
                .collect();
            q.extend(
                types
                    .iter()
                    .map(|t| format!("{}={t}", encode("filter[note_type][]"))),
            );
            out.extend(self.list_all(&format!("/api/v4/contacts/notes?{}", q.join("&")), "notes")?);
        }
        Ok(out)
    }

    fn stage_calls(
        &mut self,
        items: &mut [Delivery],
        cp: &mut dyn Checkpoint,
    ) -> Result<(), CrmError> {
        let todo: Vec<usize> = (0..items.len())
            .filter(|&i| {
                let d = &items[i];
                d.open()
                    && d.job.call.is_some()
                    && d.progress.contact_id.is_some()
                    && !d.progress.done(Stage::Call)
            })
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let unsure: Vec<usize> = todo
            .iter()
            .copied()
            .filter(|&i| items[i].progress.attempted(Stage::Call))
            .collect();
        if !unsure.is_empty() {
            let notes = self.notes_of(items, &unsure, &["call_in", "call_out"])?;
            let seen: BTreeMap<String, String> = notes
                .iter()
                .filter_map(|n| {
                    Some((
                        n.pointer("/params/uniq")?.as_str()?.to_owned(),
                        id_text(n).unwrap_or_default(),
                    ))
                })
                .collect();
            for &i in &unsure {
                if let Some(id) = seen.get(&items[i].job.run_id.0) {
                    items[i].progress.mark_done(Stage::Call, Some(id.clone()));
                }
            }
        }
        let send: Vec<usize> = todo
            .into_iter()
            .filter(|&i| !items[i].progress.done(Stage::Call))
            .collect();
        if send.is_empty() {
            return cp.save(items);
        }
        for &i in &send {
            items[i].progress.mark_attempted(Stage::Call);
        }
        cp.save(items)?;
        let body: Vec<Value> = send
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let d = &items[i];
                let call = d.job.call.as_ref().expect("filtered on call");
                let mut o = json!({
                    "direction": match call.direction { Direction::Outbound => "outbound", Direction::Inbound => "inbound" },
                    "uniq": d.job.run_id.0,
                    "duration": call.duration_s,
                    "source": self.s.source,
                    "phone": d.job.contact.phone,
                    "call_status": call_status(d),
                    "call_result": crate::transcript::outcome_label(d.job.run.outcome.as_ref(), self.s.lang),
                    "created_at": call.started_at.0.div_euclid(1000),
                    "request_id": k.to_string(),
                });
                if let Some(link) = &call.recording_url {
                    o["link"] = json!(link);
                }
                if let Some(u) = self.s.responsible_user_id {
                    o["responsible_user_id"] = json!(u);
                }
                o
            })
            .collect();
        let a = self.api(Method::Post, "/api/v4/calls", Some(&Value::Array(body)))?;
        let v = a.json(CRM)?;
        if a.status == 400 {
            // The whole request was refused: nothing was added.
            let errs = validation_errors(&v);
            for (k, &i) in send.iter().enumerate() {
                let msg = errs
                    .get(&k.to_string())
                    .map(|e| e.join("; "))
                    .unwrap_or_else(|| problem_text(&a));
                items[i].progress.stages.remove(&Stage::Call);
                items[i].reject(CRM, msg);
            }
            return cp.save(items);
        }
        for c in embedded(&v, "calls") {
            if let Some(&i) = rid(&c).parse::<usize>().ok().and_then(|k| send.get(k)) {
                items[i].progress.mark_done(Stage::Call, id_text(&c));
            }
        }
        for (r, msgs) in validation_errors(&v) {
            if let Some(&i) = r.parse::<usize>().ok().and_then(|k| send.get(k)) {
                items[i].progress.stages.remove(&Stage::Call);
                items[i].reject(CRM, msgs.join("; "));
            }
        }
        cp.save(items)
    }

    fn stage_notes(
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
        if !unsure.is_empty() {
            let notes = self.notes_of(items, &unsure, &["common"])?;
            for &i in &unsure {
                let marker = items[i].job.run_id.marker();
                if let Some(n) = notes.iter().find(|n| {
                    n.pointer("/params/text")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.contains(&marker))
                }) {
                    items[i].progress.mark_done(Stage::Note, id_text(n));
                }
            }
        }
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
        let body: Vec<Value> = send
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let d = &items[i];
                json!({
                    "entity_id": d.progress.contact_id.as_deref().and_then(|c| c.parse::<u64>().ok()),
                    "note_type": "common",
                    "params": {"text": crate::transcript::render(&d.job, self.s.lang, self.s.utc_offset_min)},
                    "request_id": k.to_string(),
                })
            })
            .collect();
        let a = self.api(
            Method::Post,
            "/api/v4/contacts/notes",
            Some(&Value::Array(body)),
        )?;
        let v = a.json(CRM)?;
        if a.status == 400 {
            let errs = validation_errors(&v);
            for (k, &i) in send.iter().enumerate() {
                items[i].progress.stages.remove(&Stage::Note);
                items[i].reject(
                    CRM,
                    errs.get(&k.to_string())
                        .map(|e| e.join("; "))
                        .unwrap_or_else(|| problem_text(&a)),
                );
            }
            return cp.save(items);
        }
        for n in embedded(&v, "notes") {
            if let Some(&i) = rid(&n).parse::<usize>().ok().and_then(|k| send.get(k)) {
                items[i].progress.mark_done(Stage::Note, id_text(&n));
            }
        }
        cp.save(items)
    }

    fn stage_tasks(
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
        if !unsure.is_empty() {
            let ids: BTreeSet<String> = unsure
                .iter()
                .filter_map(|&i| items[i].progress.contact_id.clone())
                .collect();
            let mut tasks = Vec::new();
            for chunk in ids.into_iter().collect::<Vec<_>>().chunks(50) {
                let mut q = vec![format!("{}=contacts", encode("filter[entity_type]"))];
                q.extend(
                    chunk
                        .iter()
                        .map(|id| format!("{}={id}", encode("filter[entity_id][]"))),
                );
                tasks.extend(self.list_all(&format!("/api/v4/tasks?{}", q.join("&")), "tasks")?);
            }
            for &i in &unsure {
                let marker = items[i].job.run_id.marker();
                if let Some(t) = tasks.iter().find(|t| {
                    t.get("text")
                        .and_then(Value::as_str)
                        .is_some_and(|x| x.contains(&marker))
                }) {
                    items[i].progress.mark_done(Stage::Task, id_text(t));
                }
            }
        }
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
        let lang = self.s.lang;
        let body: Vec<Value> = send
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let d = &items[i];
                let title = match lang {
                    Lang::Ru => "Перезвонить",
                    Lang::En => "Call back",
                };
                let script = d.job.script_name.as_deref().unwrap_or(&d.job.run.script_id);
                let mut o = json!({
                    "text": format!("{title} ({script})\n{}", d.job.run_id.marker()),
                    "complete_till": d.job.callback_at(off).map(|t| t.0.div_euclid(1000)),
                    "entity_id": d.progress.contact_id.as_deref().and_then(|c| c.parse::<u64>().ok()),
                    "entity_type": "contacts",
                    "task_type_id": 1,
                    "request_id": k.to_string(),
                });
                if let Some(u) = self.s.responsible_user_id {
                    o["responsible_user_id"] = json!(u);
                }
                o
            })
            .collect();
        let a = self.api(Method::Post, "/api/v4/tasks", Some(&Value::Array(body)))?;
        let v = a.json(CRM)?;
        if a.status == 400 {
            let errs = validation_errors(&v);
            for (k, &i) in send.iter().enumerate() {
                items[i].progress.stages.remove(&Stage::Task);
                items[i].reject(
                    CRM,
                    errs.get(&k.to_string())
                        .map(|e| e.join("; "))
                        .unwrap_or_else(|| problem_text(&a)),
                );
            }
            return cp.save(items);
        }
        for t in embedded(&v, "tasks") {
            if let Some(&i) = rid(&t).parse::<usize>().ok().and_then(|k| send.get(k)) {
                items[i].progress.mark_done(Stage::Task, id_text(&t));
            }
        }
        cp.save(items)
    }
}

/// A converted value as amoCRM's `values` array.
fn amo_values(v: &Converted) -> Vec<Value> {
    match v {
        Converted::Text(s) => vec![json!({"value": s})],
        Converted::Number(n) => vec![json!({"value": callhelper_script::format_number(*n)})],
        Converted::Bool(b) => vec![json!({"value": b})],
        Converted::Date(t) => vec![json!({"value": t.0.div_euclid(1000)})],
        Converted::Option(id) => vec![json!({"enum_id": id.parse::<u64>().unwrap_or(0)})],
        Converted::Options(ids) => ids
            .iter()
            .map(|id| json!({"enum_id": id.parse::<u64>().unwrap_or(0)}))
            .collect(),
    }
}

impl Adapter for Amo {
    fn kind(&self) -> CrmKind {
        CRM
    }

    fn batch_size(&self) -> usize {
        self.s.batch.clamp(1, 250)
    }

    fn deliver(&mut self, items: &mut [Delivery], cp: &mut dyn Checkpoint) -> Result<(), CrmError> {
        self.stage_contacts(items, cp)?;
        self.stage_fields(items, cp)?;
        self.stage_calls(items, cp)?;
        self.stage_notes(items, cp)?;
        self.stage_tasks(items, cp)?;
        let off = self.s.utc_offset_min;
        let mapped = |d: &Delivery| {
            self.s
                .mappings
                .get(&d.job.run.script_id)
                .is_some_and(|m| !m.rules.is_empty())
        };
        settle(CRM, items, |d| {
            let p = &d.progress;
            p.done(Stage::Contact)
                && (!mapped(d) || p.done(Stage::Fields))
                && (d.job.call.is_none() || p.done(Stage::Call))
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
        let a = self.api(Method::Get, "/api/v4/account", None)?;
        if a.status != 200 {
            return Err(CrmError::Rejected {
                crm: CRM,
                message: problem_text(&a),
            });
        }
        let v = a.json(CRM)?;
        Ok(AccountInfo {
            name: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("amoCRM")
                .to_owned(),
        })
    }

    fn stats(&self) -> HttpStats {
        self.http.stats()
    }
}
