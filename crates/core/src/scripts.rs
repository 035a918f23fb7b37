//! Script files: reading and linting them, opening them for a run, and the actions an
//! agent takes during a run.
//!
//! The desktop and the command line both go through here, so a script is read, checked
//! and stepped the same way everywhere.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use callhelper_script::{
    AnswerRef, Diagnostic, Dialect, EndReason, Outcome, Program, Run, RunError, RunEvent, Script,
    Timestamp, has_errors, syntax, text,
};
use serde::Serialize;

use crate::Error;

/// The result of linting one file.
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    /// The file as given.
    pub file: PathBuf,
    /// What was found, in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// Set when the file could not be read as text at all (missing, binary, too large).
    pub unreadable: Option<Error>,
    /// The script, when it could be read (even with errors).
    #[serde(skip)]
    pub script: Option<Script>,
}

impl LintReport {
    /// True when the report holds at least one error (or the file was unreadable).
    pub fn has_errors(&self) -> bool {
        self.unreadable.is_some() || has_errors(&self.diagnostics)
    }
}

/// Read a file, refusing very large files before reading them.
fn read_script_file(path: &Path) -> Result<Vec<u8>, Error> {
    let shown = path.display();
    let unreadable = |e: std::io::Error| {
        Error::new(
            "script.unreadable",
            text!("cannot read {shown}: {e}"; "не удалось прочитать {shown}: {e}"),
        )
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if meta.is_dir() {
        return Err(Error::new(
            "script.unreadable",
            text!("{shown} is a folder, not a script file"; "{shown} — папка, а не файл сценария"),
        ));
    }
    if meta.len() > syntax::MAX_SOURCE_BYTES as u64 {
        let e = syntax::SyntaxError::TooLarge {
            bytes: meta.len() as usize,
        };
        return Err(Error::new("script.unreadable", e.message()));
    }
    std::fs::read(path).map_err(unreadable)
}

/// Lint one script file: the reader's and the linter's findings.
pub fn lint_file(path: &Path) -> LintReport {
    let bytes = match read_script_file(path) {
        Ok(b) => b,
        Err(e) => {
            return LintReport {
                file: path.to_path_buf(),
                diagnostics: Vec::new(),
                unreadable: Some(e),
                script: None,
            };
        }
    };
    let dialect = Dialect::from_path(&path.to_string_lossy());
    lint_bytes(path, &bytes, dialect)
}

/// Lint script text already in memory (an editor buffer, a file from the CRM).
pub fn lint_bytes(path: &Path, bytes: &[u8], dialect: Dialect) -> LintReport {
    let loaded = callhelper_script::load_bytes(bytes, dialect);
    if let Some(e) = &loaded.unreadable {
        return LintReport {
            file: path.to_path_buf(),
            diagnostics: Vec::new(),
            unreadable: Some(Error::new("script.unreadable", e.message())),
            script: None,
        };
    }
    let (script, diagnostics) = callhelper_script::check(bytes, dialect);
    LintReport {
        file: path.to_path_buf(),
        diagnostics,
        unreadable: None,
        script,
    }
}

/// Open a script for running: read it, lint it, and index it. A script with errors is
/// refused with the first error's position and message.
pub fn open(path: &Path) -> Result<Arc<Program>, Error> {
    let report = lint_file(path);
    if let Some(e) = report.unreadable {
        return Err(e);
    }
    let shown = path.display();
    if let Some(first) = report
        .diagnostics
        .iter()
        .find(|d| d.severity == callhelper_script::Severity::Error)
    {
        let (pos, m) = (first.pos(), &first.message);
        let count = report
            .diagnostics
            .iter()
            .filter(|d| d.severity == callhelper_script::Severity::Error)
            .count();
        return Err(Error::new(
            "script.invalid",
            text!("{shown}:{pos}: {} ({count} error(s) in all; run `callhelper script lint {shown}`)", m.en;
                  "{shown}:{pos}: {} (всего ошибок: {count}; запустите `callhelper script lint {shown}`)", m.ru),
        ));
    }
    let script = report.script.ok_or_else(|| {
        Error::new(
            "script.invalid",
            text!("{shown} holds no script"; "в {shown} нет сценария"),
        )
    })?;
    Program::new(script).map(Arc::new).map_err(|diags| {
        let m = diags
            .first()
            .map(|d| d.message.clone())
            .unwrap_or_else(|| text!("the script has errors"; "в сценарии есть ошибки"));
        Error::new("script.invalid", m)
    })
}

/// One script of a folder, as the desktop's script library lists it.
#[derive(Debug, Clone, Serialize)]
pub struct LibraryEntry {
    /// The file.
    pub file: PathBuf,
    /// The script's id, name and version, when it could be read.
    pub id: Option<String>,
    /// The script's name.
    pub name: Option<String>,
    /// The script's version.
    pub version: Option<u32>,
    /// The linter's findings (errors make the script unavailable to run).
    pub diagnostics: Vec<Diagnostic>,
    /// Set when the file could not be read.
    pub unreadable: Option<Error>,
}

/// Every `.yaml`, `.yml` and `.json` script in a folder (not recursive), linted, sorted
/// by file name. A broken file is listed with its findings rather than failing the list.
pub fn library(dir: &Path) -> Result<Vec<LibraryEntry>, Error> {
    Ok(files(dir)?
        .into_iter()
        .map(|file| {
            let r = lint_file(&file);
            LibraryEntry {
                id: r.script.as_ref().map(|s| s.id.clone()),
                name: r.script.as_ref().map(|s| s.name.clone()),
                version: r.script.as_ref().map(|s| s.version),
                file,
                diagnostics: r.diagnostics,
                unreadable: r.unreadable,
            }
        })
        .collect())
}

/// The `.yaml`, `.yml` and `.json` files of a scripts folder (not recursive), sorted by
/// name.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let shown = dir.display();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::new(
            "script.folder_unreadable",
            text!("cannot read the scripts folder {shown}: {e}"; "не удалось прочитать папку сценариев {shown}: {e}"),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json")
                })
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Something an agent does during a run. The desktop's buttons and the command line's
/// typed tokens both become one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Choose an answer by hotkey or id.
    Answer(String),
    /// Set a field from typed text (empty clears it).
    Set {
        /// The field's id.
        field: String,
        /// What was typed.
        input: String,
    },
    /// Continue from a step without answers.
    Continue,
    /// Go back one step.
    Back,
    /// Open an objection by hotkey or id.
    Objection(String),
    /// Write down an answer the script does not foresee.
    Unforeseen(String),
    /// Add a note.
    Note(String),
    /// End the run now.
    End {
        /// Why.
        reason: EndReason,
        /// With which outcome, if any.
        outcome: Option<String>,
    },
    /// End the run now with a callback agreed (the desktop's outcome panel).
    EndWithCallback {
        /// The outcome (usually `callback`).
        outcome: String,
        /// When to call back (`YYYY-MM-DDTHH:MM` or a date).
        at: String,
    },
}

/// Apply an action to a run at time `at`. An answer token that is an objection's hotkey
/// opens the objection (the linter guarantees answer and objection keys never collide).
pub fn apply(run: &mut Run, action: &Action, at: Timestamp) -> Result<Vec<RunEvent>, RunError> {
    match action {
        Action::Answer(token) => {
            if run.program().is_objection_key(token) {
                run.open_objection(token, at)
            } else {
                run.choose(AnswerRef::Any(token), at)
            }
        }
        Action::Set { field, input } => run.set_field_input(field, input, at),
        Action::Continue => run.proceed(at),
        Action::Back => run.back(at),
        Action::Objection(which) => run.open_objection(which, at),
        Action::Unforeseen(text) => run.unforeseen(text, at),
        Action::Note(text) => Ok(run.note(text, at)),
        Action::End { reason, outcome } => {
            run.end(*reason, outcome.as_deref().map(Outcome::parse), None, at)
        }
        Action::EndWithCallback { outcome, at: when } => run.end(
            EndReason::AgentEnded,
            Some(Outcome::parse(outcome)),
            Some(when.trim().to_owned()),
            at,
        ),
    }
}

/// Parse one typed action (the command line's `--answers` tokens and the lines of its
/// standard input): an answer's hotkey or id; `field=value`; `<` back; `>` continue; an
/// objection's key; `!objection ID`; `!unforeseen TEXT`; `!note TEXT`;
/// `!end [REASON] [OUTCOME]`.
pub fn parse_action(token: &str) -> Result<Action, String> {
    let t = token.trim();
    let (word, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    let rest = rest.trim();
    let reason = |r: &str| match r {
        "remote_hangup" => Ok(EndReason::RemoteHangup),
        "agent_hangup" => Ok(EndReason::AgentHangup),
        "call_failed" => Ok(EndReason::CallFailed),
        "agent_ended" | "" => Ok(EndReason::AgentEnded),
        other => Err(format!(
            "`{other}` is not an end reason (remote_hangup, agent_hangup, call_failed, agent_ended)"
        )),
    };
    Ok(match word {
        "<" | "!back" => Action::Back,
        ">" | "!next" | "!continue" => Action::Continue,
        "!objection" => Action::Objection(rest.to_owned()),
        "!unforeseen" => Action::Unforeseen(rest.to_owned()),
        "!note" => Action::Note(rest.to_owned()),
        "!end" => {
            let (r, outcome) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            Action::End {
                reason: reason(r)?,
                outcome: (!outcome.trim().is_empty()).then(|| outcome.trim().to_owned()),
            }
        }
        w if w.starts_with('!') => return Err(format!("unknown command `{w}`")),
        _ => match t.split_once('=') {
            Some((field, input))
                if !field.is_empty()
                    && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Action::Set {
                    field: field.to_owned(),
                    input: input.to_owned(),
                }
            }
            _ => Action::Answer(t.to_owned()),
        },
    })
}

/// Split a comma-separated list of actions, honouring `\,` as a comma inside one.
pub fn split_actions(list: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                out.last_mut().expect("never empty").push(',');
                chars.next();
            }
            ',' => out.push(String::new()),
            _ => out.last_mut().expect("never empty").push(c),
        }
    }
    out.into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}
