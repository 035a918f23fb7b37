//! The script transcript as plain text: what a CRM note, timeline comment or webhook
//! carries so a person reading the CRM sees how the conversation went.

use std::fmt::Write as _;

use callhelper_script::{Lang, Outcome, RunRecord};

use crate::job::SyncJob;

/// The outcome's name for people (custom outcomes by their id).
pub fn outcome_label(o: Option<&Outcome>, lang: Lang) -> String {
    match o {
        Some(o) => o
            .builtin_label()
            .map(|t| t.get(lang).to_owned())
            .unwrap_or_else(|| o.as_str().to_owned()),
        None => match lang {
            Lang::En => "no outcome".into(),
            Lang::Ru => "без результата".into(),
        },
    }
}

fn mmss(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

/// The transcript of a run, ending with the run's marker line.
pub fn render(job: &SyncJob, lang: Lang, utc_offset_min: i32) -> String {
    let r: &RunRecord = &job.run;
    let ru = lang == Lang::Ru;
    let mut out = String::new();
    let script = job.script_name.as_deref().unwrap_or(&r.script_id);
    let _ = writeln!(
        out,
        "{} «{script}» v{} — {}: {}",
        if ru { "Сценарий" } else { "Script" },
        r.script_version,
        if ru { "результат" } else { "outcome" },
        outcome_label(r.outcome.as_ref(), lang)
    );
    let _ = writeln!(
        out,
        "{} {}, {} {}",
        if ru { "Начало" } else { "Started" },
        crate::time::iso8601(r.started_at, utc_offset_min),
        if ru {
            "длительность"
        } else {
            "duration"
        },
        mmss(r.duration_ms.unwrap_or(0))
    );
    if !r.path.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            if ru {
                "Ход разговора:"
            } else {
                "Conversation:"
            }
        );
        for (i, v) in r.path.iter().enumerate() {
            let answer = v
                .answer
                .as_ref()
                .map(|a| format!(" → {}", a.label))
                .unwrap_or_default();
            let _ = writeln!(out, "{}. {}{answer} ({})", i + 1, v.step, mmss(v.spent_ms));
        }
    }
    if !r.fields.is_empty() {
        let _ = writeln!(out, "{}", if ru { "Поля:" } else { "Fields:" });
        for (k, v) in &r.fields {
            let _ = writeln!(out, "- {k}: {}", v.display(lang));
        }
    }
    if !r.unforeseen.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            if ru {
                "Непредусмотренные ответы:"
            } else {
                "Unforeseen answers:"
            }
        );
        for n in &r.unforeseen {
            let _ = writeln!(out, "- {}", n.text);
        }
    }
    if !r.notes.is_empty() {
        let _ = writeln!(out, "{}", if ru { "Заметки:" } else { "Notes:" });
        for n in &r.notes {
            let _ = writeln!(out, "- {}", n.text);
        }
    }
    if let Some(cb) = &r.callback_at {
        let _ = writeln!(
            out,
            "{}: {cb}",
            if ru {
                "Перезвонить"
            } else {
                "Call back"
            }
        );
    }
    out.push_str(&job.run_id.marker());
    out
}
