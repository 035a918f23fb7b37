//! Builders shared by the tests.

use std::sync::Arc;

use callhelper_crm::http::{Clock, SystemClock};
use callhelper_crm::mapping::{FieldMap, FieldRule, Mappings};
use callhelper_crm::{CallInfo, CallResult, Contact, Direction, RunId, SyncJob};
use callhelper_script::{RunRecord, Timestamp};
use serde_json::json;

/// A fixed start: 2024-05-17 11:03 UTC.
pub const T0: i64 = 1_715_943_780_000;

pub fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock::default())
}

/// Run number `n` with phone `phone`: a call, fields `budget`, `interest`, `agreed`, and
/// a callback for every fifth run.
pub fn job(n: usize, phone: &str) -> SyncJob {
    let callback = (n % 5 == 0).then(|| "2024-05-20T10:00".to_owned());
    let record: RunRecord = serde_json::from_value(json!({
        "script_id": "sales",
        "script_version": 3,
        "started_at": T0 + n as i64 * 1000,
        "ended_at": T0 + n as i64 * 1000 + 95_000,
        "duration_ms": 95_000,
        "outcome": if callback.is_some() { "callback" } else { "success" },
        "end_reason": "terminal",
        "ended_at_step": "done",
        "callback_at": callback,
        "path": [
            {"step": "greet", "entered_at": T0, "spent_ms": 5000,
             "answer": {"id": "yes", "label": "Interested", "key": "1"}},
            {"step": "done", "entered_at": T0 + 5000, "spent_ms": 0}
        ],
        "answers": [],
        "fields": {"budget": (n % 7) as f64 * 1000.0, "interest": if n % 2 == 0 { "High" } else { "Low" }, "agreed": n % 3 == 0},
        "tags": [],
        "unforeseen": [],
        "notes": [{"at": T0 + 3000, "text": "asked about delivery"}],
        "time_per_step": {"greet": 5000}
    }))
    .expect("a valid run record");
    SyncJob {
        run_id: RunId(format!("run-{n:05}")),
        person_id: format!("person-{phone}"),
        contact: Contact {
            phone: phone.into(),
            name: Some(format!("Client {phone}")),
        },
        call: Some(CallInfo {
            direction: Direction::Outbound,
            started_at: Timestamp(T0 + n as i64 * 1000),
            duration_s: 95,
            result: CallResult::Answered,
            recording_url: (n % 10 == 3).then(|| format!("https://records.invalid/{n}.mp3")),
        }),
        run: record,
        script_name: Some("Sales".into()),
    }
}

/// The phone of a pool of `size` numbers, in varied formats.
pub fn phone(i: usize) -> String {
    let n = 9_160_000_000u64 + i as u64 * 7919;
    match i % 3 {
        0 => format!("+7{n}"),
        1 => format!(
            "8 ({}) {}-{}",
            &n.to_string()[..3],
            &n.to_string()[3..6],
            &n.to_string()[6..]
        ),
        _ => format!("7{n}"),
    }
}

#[allow(dead_code)]
pub fn last10(p: &str) -> String {
    let d: String = p.chars().filter(char::is_ascii_digit).collect();
    d[d.len() - 10..].to_owned()
}

/// The mapping of the `sales` script to the fake amoCRM's fields.
pub fn amo_mappings() -> Mappings {
    Mappings::from([(
        "sales".to_owned(),
        FieldMap {
            rules: vec![
                FieldRule {
                    field: "budget".into(),
                    crm_field: "200".into(),
                },
                FieldRule {
                    field: "interest".into(),
                    crm_field: "201".into(),
                },
                FieldRule {
                    field: "agreed".into(),
                    crm_field: "204".into(),
                },
            ],
        },
    )])
}

/// The mapping of the `sales` script to the fake Bitrix24's fields.
pub fn bitrix_mappings() -> Mappings {
    Mappings::from([(
        "sales".to_owned(),
        FieldMap {
            rules: vec![
                FieldRule {
                    field: "budget".into(),
                    crm_field: "UF_CRM_BUDGET".into(),
                },
                FieldRule {
                    field: "interest".into(),
                    crm_field: "UF_CRM_INTEREST".into(),
                },
                FieldRule {
                    field: "agreed".into(),
                    crm_field: "UF_CRM_AGREED".into(),
                },
            ],
        },
    )])
}

pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("callhelper-crm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// How many times each marker `[callhelper:run:...]` occurs in `texts`.
pub fn marker_counts<'a>(
    texts: impl Iterator<Item = &'a str>,
) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for t in texts {
        let mut rest = t;
        while let Some(i) = rest.find("[callhelper:run:") {
            let tail = &rest[i + 16..];
            let end = tail.find(']').unwrap_or(tail.len());
            *out.entry(tail[..end].to_owned()).or_insert(0) += 1;
            rest = &tail[end..];
        }
    }
    out
}
