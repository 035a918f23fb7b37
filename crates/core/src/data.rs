//! The collected database as the app uses it: opening it (key from the OS keychain or an
//! administrator's passphrase), signing in, running scripts with every event stored
//! before the caller moves on, resuming runs after a restart, and the personal-data
//! operations (export, import, subject access, change, block, destroy, retention).
//!
//! The store's own API ([`store`], re-exported) is part of this boundary: the command
//! line and the desktop call it directly for the simple operations, with
//! [`Error::from`] turning its errors into `{code, message}`. What needs more than one
//! store call lives here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use callhelper_script::{Context, Program, Run, RunError, RunEvent, Timestamp, text};
pub use callhelper_store as store;
use callhelper_store::contacts::NewContact;
use callhelper_store::runs::{NewRun, RunId, StoredRun};
use callhelper_store::{Passphrase, Pii, Session, Store, StoreError, Unlock};
use serde::Serialize;

use crate::Error;
use crate::paths::DataDir;
use crate::scripts::{self, Action};

/// The environment variable that holds the database passphrase, on installations that
/// use one instead of the OS keychain.
pub const PASSPHRASE_ENV: &str = "CALLHELPER_DB_PASSPHRASE";

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::new(e.code(), e.message())
    }
}

fn run_error(e: RunError) -> Error {
    Error::new("run.refused", e.message())
}

/// How the database key is protected. `Debug` never shows the passphrase.
#[derive(Clone)]
pub enum KeyChoice {
    /// A random key in the OS keychain (the default).
    Keychain,
    /// A passphrase the administrator chose (no keychain on this machine).
    Passphrase(String),
}

impl std::fmt::Debug for KeyChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyChoice::Keychain => "Keychain",
            KeyChoice::Passphrase(_) => "Passphrase(<secret>)",
        })
    }
}

impl KeyChoice {
    /// The passphrase from [`PASSPHRASE_ENV`] when set, else the keychain.
    pub fn from_env() -> KeyChoice {
        match std::env::var(PASSPHRASE_ENV) {
            Ok(p) if !p.is_empty() => KeyChoice::Passphrase(p),
            _ => KeyChoice::Keychain,
        }
    }

    fn unlock(&self) -> Result<Unlock, Error> {
        Ok(match self {
            KeyChoice::Keychain => Unlock::Keychain,
            KeyChoice::Passphrase(p) => Unlock::Passphrase(Passphrase::new(p.clone())?),
        })
    }
}

/// True when the installation's database is protected by a passphrase (so the app asks
/// for it at start) rather than by the OS keychain.
pub fn needs_passphrase(dir: &DataDir) -> Result<bool, Error> {
    let path = db_path(dir)?;
    Ok(matches!(
        callhelper_store::key::read_marker(&path)?,
        Some(callhelper_store::KeyMarker::Passphrase)
    ))
}

/// Where the database of a data folder is (creating the folder, private to the user).
pub fn db_path(dir: &DataDir) -> Result<PathBuf, Error> {
    Ok(callhelper_store::db_path(&dir.part("store")?))
}

/// Open the database of an installation that was set up with [`init`]. Applies the
/// retention period (§2.1.4), as the app does at every start.
pub fn open(dir: &DataDir, key: &KeyChoice) -> Result<Store, Error> {
    let path = db_path(dir)?;
    if !path.exists() {
        return Err(Error::new(
            "data.not_initialised",
            text!("There is no database in {} yet. An administrator creates it with `callhelper data init --admin LOGIN`.", dir.root().display();
                  "В {} ещё нет базы данных. Администратор создаёт её командой `callhelper data init --admin ЛОГИН`.", dir.root().display()),
        ));
    }
    let store = Store::open(&path, &key.unlock()?)?;
    store.apply_retention(store.now())?;
    Ok(store)
}

/// Create the database of a new installation and its first administrator.
pub fn init(
    dir: &DataDir,
    key: &KeyChoice,
    admin: &str,
    password: &str,
) -> Result<(Store, Session), Error> {
    let path = db_path(dir)?;
    if path.exists() {
        return Err(Error::new(
            "data.exists",
            text!("A database already exists at {}; it was left as it is.", path.display();
                  "База данных уже есть в {}; она не изменена.", path.display()),
        ));
    }
    let store = Store::open(&path, &key.unlock()?)?;
    let session = store.create_first_admin(admin, password)?;
    Ok((store, session))
}

/// Sign in.
pub fn login(store: &Store, login: &str, password: &str) -> Result<Session, Error> {
    Ok(store.login(login, password)?)
}

/// Read a date for a filter: `2026-03-31` or `2026-03-31T14:30` (UTC). For the end of a
/// range (`end`), a bare date means the whole day: it is taken up to midnight after it.
pub fn parse_date(input: &str, end: bool) -> Result<Timestamp, Error> {
    let t = callhelper_store::time::parse(input)
        .ok_or_else(|| Error::from(callhelper_store::export::bad_date(input)))?;
    let date_only = !input.contains(['T', ' ', ':']);
    Ok(if end && date_only {
        Timestamp(t.0 + callhelper_store::time::days(1))
    } else {
        t
    })
}

/// Write everything held about one person (§8.1) to `out` as JSON.
pub fn subject_access_file(
    store: &Store,
    s: &Session,
    phone: &str,
    out: &Path,
) -> Result<(), Error> {
    let report = store.subject_access(s, phone)?;
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::from(StoreError::from(e)))?;
    std::fs::write(out, json).map_err(|e| write_failed(out, &e))
}

/// `data.write_failed`: a file the user asked for could not be written.
pub(crate) fn write_failed(path: &Path, e: &std::io::Error) -> Error {
    let shown = path.display();
    Error::new(
        "data.write_failed",
        text!("cannot write {shown}: {e}"; "не удалось записать {shown}: {e}"),
    )
}

/// A script run whose every event is stored before the caller sees its effect.
#[derive(Debug)]
pub struct ScriptRun {
    id: RunId,
    run: Run,
}

impl ScriptRun {
    /// The stored run's id.
    pub fn id(&self) -> RunId {
        self.id
    }

    /// The runner (for views and records; change it only through [`act`]).
    pub fn run(&self) -> &Run {
        &self.run
    }
}

/// Start a run for the person with `phone` (added as a contact when new), by the signed-in
/// agent. Refused for a blocked person. The run's first events are stored before this
/// returns.
pub fn start_run(
    store: &Store,
    s: &Session,
    program: Arc<Program>,
    phone: Option<&str>,
    call: Option<callhelper_store::calls::CallId>,
    at: Timestamp,
) -> Result<ScriptRun, Error> {
    let contact = match phone {
        Some(p) => {
            let id = match store.contact_by_phone(s, p)? {
                Some(c) => c.id,
                None => store.add_contact(
                    s,
                    &NewContact {
                        phone: Pii::new(p.to_owned()),
                        ..Default::default()
                    },
                )?,
            };
            Some(store.contact(s, id)?)
        }
        None => None,
    };
    if contact.as_ref().is_some_and(|c| c.blocked_at.is_some()) {
        return Err(StoreError::Blocked.into());
    }
    let mut agent = std::collections::BTreeMap::new();
    agent.insert("name".to_owned(), s.login().to_owned());
    let context = Context {
        contact: contact
            .as_ref()
            .map(|c| c.script_variables())
            .unwrap_or_default(),
        agent,
    };
    let (run, events) = Run::start(program.clone(), context.clone(), at);
    let id = store.start_run(
        s,
        &NewRun {
            program: &program,
            contact: contact.map(|c| c.id),
            call,
            context: &context,
            events: &events,
        },
    )?;
    let started = ScriptRun { id, run };
    if started.run.is_finished() {
        // A script whose first step is terminal ends at once.
        store.finish_run(s, id, &[], &started.run.record())?;
    }
    Ok(started)
}

/// Apply an agent's action and store the events it caused; only then return them. When
/// storing fails, the run is rebuilt from what is stored, so the screen never shows a
/// step the database does not have.
pub fn act(
    store: &Store,
    s: &Session,
    run: &mut ScriptRun,
    action: &Action,
    at: Timestamp,
) -> Result<Vec<RunEvent>, Error> {
    let events = scripts::apply(&mut run.run, action, at).map_err(run_error)?;
    if events.is_empty() {
        return Ok(events);
    }
    let stored = if run.run.is_finished() {
        store.finish_run(s, run.id, &events, &run.run.record())
    } else {
        store.append_events(s, run.id, &events, Some(&run.run.record().fields))
    };
    if let Err(e) = stored {
        let back = store.run(s, run.id)?;
        run.run = Run::replay(run.run.program().clone(), back.context, &back.events)
            .map_err(run_error)?;
        return Err(e.into());
    }
    Ok(events)
}

/// A run that could not be resumed, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NotResumed {
    /// The run.
    pub run: RunId,
    /// Why (the script is missing, or its version changed).
    pub error: Error,
}

/// Resume the signed-in agent's unfinished runs after a restart: each is rebuilt from
/// its stored events with the script version it followed (`scripts` finds it by id and
/// version). Runs whose script is gone are reported, not dropped.
pub fn resume_runs(
    store: &Store,
    s: &Session,
    scripts: &dyn Fn(&str, u32) -> Option<Arc<Program>>,
) -> Result<(Vec<ScriptRun>, Vec<NotResumed>), Error> {
    let mut resumed = Vec::new();
    let mut failed = Vec::new();
    for StoredRun {
        id,
        script_id,
        script_version,
        context,
        events,
        ..
    } in store.unfinished_runs(s, true)?
    {
        let Some(program) = scripts(&script_id, script_version) else {
            failed.push(NotResumed {
                run: id,
                error: Error::new(
                    "run.script_missing",
                    text!("the script {script_id} version {script_version} of run {} is not available", id.0;
                          "сценарий {script_id} версии {script_version} разговора {} недоступен", id.0),
                ),
            });
            continue;
        };
        match Run::replay(program, context, &events) {
            Ok(run) => resumed.push(ScriptRun { id, run }),
            Err(e) => failed.push(NotResumed {
                run: id,
                error: run_error(e),
            }),
        }
    }
    Ok((resumed, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "format: callhelper-script/1\nid: t\nname: T\nversion: 1\nlocale: en\nstart: a\n\
fields:\n  - { id: note, label: Note, type: text }\nsteps:\n  - id: a\n    say: \"Hi {{contact.name | there}}\"\n    fields: [note]\n    next: b\n  - { id: b, outcome: success }\n";

    #[test]
    fn a_run_with_persistence_resumes_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::at(dir.path());
        let key = KeyChoice::Passphrase("a long test passphrase".into());
        let (store, admin) = init(&data, &key, "admin", "admin-password").unwrap();
        assert_eq!(
            init(&data, &key, "admin", "admin-password")
                .unwrap_err()
                .code,
            "data.exists"
        );
        let loaded = callhelper_script::load_str(SCRIPT, callhelper_script::Dialect::Yaml);
        let program = Arc::new(Program::new(loaded.script.unwrap()).unwrap());
        let mut run = start_run(
            &store,
            &admin,
            program.clone(),
            Some("+7 916 123 45 67"),
            None,
            Timestamp(1),
        )
        .unwrap();
        act(
            &store,
            &admin,
            &mut run,
            &Action::Set {
                field: "note".into(),
                input: "hello".into(),
            },
            Timestamp(2),
        )
        .unwrap();
        let id = run.id();
        drop(store);

        let store = open(&data, &key).unwrap();
        let admin = login(&store, "admin", "admin-password").unwrap();
        let (mut runs, failed) = resume_runs(&store, &admin, &|id, v| {
            (id == "t" && v == 1).then(|| program.clone())
        })
        .unwrap();
        assert!(failed.is_empty());
        assert_eq!(runs.len(), 1);
        let run = &mut runs[0];
        assert_eq!((run.id(), run.run().current().id.as_str()), (id, "a"));
        act(&store, &admin, run, &Action::Continue, Timestamp(3)).unwrap();
        assert!(run.run().is_finished());
        let stored = store.run(&admin, id).unwrap();
        assert_eq!(stored.outcome.as_deref(), Some("success"));
        // A refused action is an error with a code, and nothing is stored.
        let err = act(&store, &admin, run, &Action::Continue, Timestamp(4)).unwrap_err();
        assert_eq!(err.code, "run.refused");
        assert_eq!(
            store.run(&admin, id).unwrap().events.len(),
            stored.events.len()
        );
        // A blocked person gets no new run.
        store.block(&admin, stored.contact.unwrap()).unwrap();
        let e = start_run(
            &store,
            &admin,
            program,
            Some("89161234567"),
            None,
            Timestamp(5),
        )
        .unwrap_err();
        assert_eq!(e.code, "store.blocked");
    }

    #[test]
    fn dates_for_filters() {
        assert_eq!(
            parse_date("2026-03-31", true).unwrap().0 - parse_date("2026-03-31", false).unwrap().0,
            86_400_000
        );
        assert_eq!(
            parse_date("2026-03-31T10:00", true).unwrap(),
            parse_date("2026-03-31 10:00", false).unwrap()
        );
        let e = parse_date("31/03/2026", false).unwrap_err();
        assert_eq!(e.code, "store.invalid");
        assert!(e.message.ru.contains("не дата"));
    }

    #[test]
    fn a_missing_database_says_how_to_create_one() {
        let dir = tempfile::tempdir().unwrap();
        let e = open(&DataDir::at(dir.path()), &KeyChoice::Keychain).unwrap_err();
        assert_eq!(e.code, "data.not_initialised");
        assert!(e.message.en.contains("callhelper data init"));
    }
}
