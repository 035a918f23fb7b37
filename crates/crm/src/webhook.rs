//! The generic webhook: each finished run as a signed JSON `POST`, for any CRM.
//!
//! The body is a [`WebhookPayload`] (its JSON Schema: [`json_schema`], published in
//! `crates/crm/docs/webhook-schema.json`; how to receive it: `crates/crm/docs/webhook.md`).
//! Headers: `X-CallHelper-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>"
//! with the shared secret>` and `X-CallHelper-Delivery: <delivery_id>`. A receiver keeps a
//! delivery once by its id: we may send it again when an answer was lost.

use std::collections::BTreeMap;
use std::sync::Arc;

use callhelper_script::{Lang, RunRecord};
use hmac::{Hmac, Mac};
use schemars::JsonSchema;
use serde::Serialize;
use sha2::Sha256;

use crate::adapter::{AccountInfo, Adapter, Checkpoint, settle};
use crate::error::{CrmError, CrmKind};
use crate::http::{Answer, Clock, HttpConfig, HttpStats, Method, Transport};
use crate::job::{CallInfo, Contact, Delivery, Stage};
use crate::mapping::{CrmField, Mappings};
use crate::secret::Secret;

const CRM: CrmKind = CrmKind::Webhook;

/// The schema id in every payload.
pub const SCHEMA_ID: &str = "callhelper-crm-webhook/1";

/// What the webhook posts for one finished run.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(title = "CallHelper CRM webhook payload")]
pub struct WebhookPayload {
    /// Always `callhelper-crm-webhook/1`.
    pub schema: String,
    /// Always `run.finished`.
    pub event: String,
    /// The delivery's id (the run's id); the same in the `X-CallHelper-Delivery` header.
    /// Keep each delivery once by this id: it may arrive more than once.
    pub delivery_id: String,
    /// When this attempt was sent (ISO 8601).
    pub sent_at: String,
    /// The person called.
    pub contact: Contact,
    /// The phone call, when the run had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<CallInfo>,
    /// The script's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script_name: Option<String>,
    /// The finished run: path, answers, fields, outcome, timings.
    pub run: RunRecord,
    /// The collected fields under the names chosen in the field mapping (a field without a
    /// rule keeps its id).
    pub fields: BTreeMap<String, serde_json::Value>,
    /// The transcript as text.
    pub transcript: String,
}

/// The JSON Schema of [`WebhookPayload`].
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<WebhookPayload>();
    serde_json::to_value(schema).unwrap_or_default()
}

/// The signature header's value for `body` at `t` (unix seconds).
pub fn signature(secret: &Secret, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes keys of any length");
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

/// Settings of a webhook.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where to post (`https://...`).
    pub url: String,
    /// The shared secret.
    pub secret: Secret,
    /// The language of the transcript.
    pub lang: Lang,
    /// The agents' UTC offset, in minutes.
    pub utc_offset_min: i32,
    /// Field renames by script id.
    pub mappings: Mappings,
    /// HTTP settings.
    pub http: HttpConfig,
    /// Runs per delivery (each is its own request).
    pub batch: usize,
}

impl WebhookSettings {
    /// Settings with the defaults.
    pub fn new(url: impl Into<String>, secret: Secret) -> WebhookSettings {
        WebhookSettings {
            url: url.into(),
            secret,
            lang: Lang::Ru,
            utc_offset_min: 180,
            mappings: Mappings::new(),
            http: HttpConfig::for_crm(CRM),
            batch: 20,
        }
    }
}

/// The webhook adapter.
#[derive(Debug)]
pub struct Webhook {
    s: WebhookSettings,
    http: Transport,
}

fn is_refused(a: &Answer) -> bool {
    a.status == 429
}

impl Webhook {
    /// An adapter for a receiver.
    pub fn new(s: WebhookSettings, clock: Arc<dyn Clock>, seed: u64) -> Webhook {
        let http = Transport::new(CRM, &s.http, clock, seed);
        Webhook { s, http }
    }

    /// The payload of a delivery.
    pub fn payload(&self, d: &Delivery) -> WebhookPayload {
        let job = &d.job;
        let renames: BTreeMap<&str, &str> = self
            .s
            .mappings
            .get(&job.run.script_id)
            .map(|m| {
                m.rules
                    .iter()
                    .map(|r| (r.field.as_str(), r.crm_field.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        let fields = job
            .run
            .fields
            .iter()
            .map(|(k, v)| {
                let key = renames.get(k.as_str()).copied().unwrap_or(k).to_owned();
                (key, serde_json::to_value(v).unwrap_or_default())
            })
            .collect();
        WebhookPayload {
            schema: SCHEMA_ID.into(),
            event: "run.finished".into(),
            delivery_id: job.run_id.0.clone(),
            sent_at: crate::time::iso8601(self.http.clock().now(), 0),
            contact: job.contact.clone(),
            call: job.call.clone(),
            script_name: job.script_name.clone(),
            run: job.run.clone(),
            fields,
            transcript: crate::transcript::render(job, self.s.lang, self.s.utc_offset_min),
        }
    }

    fn post(&mut self, body: &[u8], delivery: &str) -> Result<Answer, CrmError> {
        let t = self.http.clock().now().0.div_euclid(1000);
        let sig = signature(&self.s.secret, t, body);
        let url = self.s.url.clone();
        self.http.send(
            Method::Post,
            &url,
            &[
                ("content-type", "application/json"),
                ("x-callhelper-signature", &sig),
                ("x-callhelper-delivery", delivery),
            ],
            Some(body),
            &is_refused,
        )
    }
}

impl Adapter for Webhook {
    fn kind(&self) -> CrmKind {
        CRM
    }

    fn batch_size(&self) -> usize {
        self.s.batch.max(1)
    }

    fn deliver(&mut self, items: &mut [Delivery], cp: &mut dyn Checkpoint) -> Result<(), CrmError> {
        for d in items.iter_mut() {
            if !d.open() || d.progress.done(Stage::Post) {
                continue;
            }
            let body = serde_json::to_vec(&self.payload(d)).map_err(|e| CrmError::Malformed {
                crm: CRM,
                detail: e.to_string(),
            })?;
            let id = d.job.run_id.0.clone();
            let a = self.post(&body, &id)?;
            match a.status {
                200..=299 => d.progress.mark_done(Stage::Post, None),
                401 | 403 => {
                    return Err(CrmError::Unauthorized {
                        crm: CRM,
                        message: format!("HTTP {}: {}", a.status, a.snippet()),
                    });
                }
                408 | 425 => {
                    return Err(CrmError::Unreachable {
                        crm: CRM,
                        detail: format!("HTTP {}", a.status),
                    });
                }
                s if s >= 500 => {
                    return Err(CrmError::ServerError {
                        crm: CRM,
                        status: s,
                        message: a.snippet(),
                    });
                }
                s => d.reject(CRM, format!("HTTP {s}: {}", a.snippet())),
            }
        }
        cp.save(items)?;
        settle(CRM, items, |d| d.progress.done(Stage::Post));
        Ok(())
    }

    fn fields(&mut self) -> Result<Vec<CrmField>, CrmError> {
        // A webhook takes any key: nothing to check a mapping against.
        Ok(Vec::new())
    }

    fn check(&mut self) -> Result<AccountInfo, CrmError> {
        let body = serde_json::json!({"schema": SCHEMA_ID, "event": "ping"}).to_string();
        let a = self.post(body.as_bytes(), "ping")?;
        if a.status == 401 || a.status == 403 {
            return Err(CrmError::Unauthorized {
                crm: CRM,
                message: format!("HTTP {}: {}", a.status, a.snippet()),
            });
        }
        if a.status >= 500 {
            return Err(CrmError::ServerError {
                crm: CRM,
                status: a.status,
                message: a.snippet(),
            });
        }
        if a.status == 404 || a.status == 405 {
            let status = a.status;
            return Err(CrmError::Settings {
                message: callhelper_script::text!(
                    "the webhook URL answers HTTP {status}: check the address";
                    "адрес вебхука отвечает HTTP {status}: проверьте адрес"),
            });
        }
        Ok(AccountInfo {
            name: crate::secret::redact_url(&self.s.url),
        })
    }

    fn stats(&self) -> HttpStats {
        self.http.stats()
    }
}
