//! Shared test helpers: a store in a temporary folder, users, a small script, whole runs,
//! and a log capture that every test writes into.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use callhelper_script::{Context, Dialect, Program, Run, RunEvent, Timestamp, load_str};
use callhelper_store::contacts::{ContactId, NewContact};
use callhelper_store::runs::{NewRun, RunId};
use callhelper_store::{DbKey, Pii, Role, Session, Store, Unlock};

/// Names, phones and e-mails used by the tests. None may ever reach a log, and the raw
/// database bytes must hold none of them.
pub const PEOPLE: &[(&str, &str, &str)] = &[
    (
        "Зинаида Кувшинникова",
        "+7 916 555-01-23",
        "zinaida.kuv@example.org",
    ),
    (
        "Bartholomew Quilliam",
        "8 (903) 777-44-12",
        "bart.quilliam@example.net",
    ),
    (
        "Ефросинья Тяпкина",
        "+79261119988",
        "efrosinya.t@example.com",
    ),
];

/// The same phones in E.164 and bare-digit forms, for byte searches.
pub fn pii_needles() -> Vec<String> {
    let mut v = Vec::new();
    for (name, _, email) in PEOPLE {
        v.push((*name).to_owned());
        v.push((*email).to_owned());
    }
    v.extend(
        [
            "+79165550123",
            "79165550123",
            "+79037774412",
            "79037774412",
            "+79261119988",
            "79261119988",
        ]
        .map(String::from),
    );
    v.push("Кувшинникова".into());
    v.push("Quilliam".into());
    v
}

pub const SCRIPT: &str = r#"
format: callhelper-script/1
id: survey
name: Survey
version: 1
locale: en
start: greet
fields:
  - { id: budget, label: Budget, type: number, min: 0 }
  - { id: full_name, label: Name, type: text, personal: true }
  - { id: callback_on, label: Call back on, type: date }
steps:
  - id: greet
    say: "Hello, {{contact.name | there}}!"
    answers:
      - { label: Interested, key: "1", next: ask }
      - { label: Later, key: "2", next: when }
      - { label: Refuses, key: "3", next: refused }
  - id: ask
    fields: [full_name, budget]
    next:
      - if: fields.budget >= 100
        goto: won
      - goto: refused
  - id: when
    fields: [callback_on]
    next: later
  - { id: won, outcome: success }
  - { id: refused, outcome: refusal }
  - { id: later, outcome: callback, callback: { at: callback_on } }
"#;

pub fn program() -> Arc<Program> {
    static P: OnceLock<Arc<Program>> = OnceLock::new();
    P.get_or_init(|| {
        let loaded = load_str(SCRIPT, Dialect::Yaml);
        Arc::new(
            Program::new(loaded.script.expect("the test script loads"))
                .expect("the test script lints"),
        )
    })
    .clone()
}

/// Everything logged by any test of this binary.
pub fn logs() -> &'static Mutex<String> {
    static LOGS: OnceLock<Mutex<String>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(String::new()))
}

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let mut l = logs().lock().unwrap_or_else(|p| p.into_inner());
        l.push_str(&format!("{} {}\n", record.level(), record.args()));
    }
    fn flush(&self) {}
}

pub fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = log::set_logger(&Capture);
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// A fixed key, so child processes can open the parent's database.
pub const KEY_HEX: &str = "6f1d0c8a3b2e4f5a697887a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6";

pub fn key() -> Unlock {
    Unlock::Key(DbKey::from_hex(KEY_HEX).unwrap())
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub admin: Session,
}

impl Fixture {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("callhelper.db")
    }

    pub fn user(&self, login: &str, role: Role) -> Session {
        self.store
            .add_user(&self.admin, login, "password-123", role)
            .unwrap();
        if role == Role::Support {
            let id = self.store.user_id(&self.admin, login).unwrap();
            let until = Timestamp(self.store.now().0 + 3_600_000);
            self.store
                .grant_support_access(&self.admin, id, until)
                .unwrap();
        }
        self.store.login(login, "password-123").unwrap()
    }

    /// Import the test people, returning their ids in order.
    pub fn people(&self) -> Vec<ContactId> {
        PEOPLE
            .iter()
            .map(|(name, phone, email)| {
                self.store
                    .add_contact(
                        &self.admin,
                        &NewContact {
                            phone: Pii::new((*phone).into()),
                            name: Pii::new((*name).into()),
                            email: Pii::new((*email).into()),
                            extra: Pii::default(),
                        },
                    )
                    .unwrap()
            })
            .collect()
    }
}

/// How many audit entries of `action` there are.
pub fn audited(f: &Fixture, action: &str) -> usize {
    f.store
        .audit_log(&f.admin, 10_000)
        .unwrap()
        .iter()
        .filter(|e| e.action == action)
        .count()
}

pub fn fixture() -> Fixture {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("callhelper.db"), &key()).unwrap();
    store.set_clock(Arc::new(|| Timestamp(1_770_000_000_000)));
    let admin = store.create_first_admin("admin", "admin-password").unwrap();
    Fixture { dir, store, admin }
}

/// A whole run for a contact: answers "Interested", fills the name and budget, finishes.
pub fn full_run(
    store: &Store,
    s: &Session,
    contact: Option<ContactId>,
    name: &str,
    budget: &str,
    at: i64,
) -> RunId {
    let program = program();
    // The context carries the contact's variables, as the app's does (personal data).
    let context = Context {
        contact: contact
            .map(|c| store.contact(s, c).unwrap().script_variables())
            .unwrap_or_default(),
        agent: Default::default(),
    };
    let (mut run, events) = Run::start(program.clone(), context, Timestamp(at));
    let id = store
        .start_run(
            s,
            &NewRun {
                program: &program,
                contact,
                call: None,
                context: run.context(),
                events: &events,
            },
        )
        .unwrap();
    type Step<'a> = Box<dyn Fn(&mut Run) -> Vec<RunEvent> + 'a>;
    let steps: Vec<Step<'_>> = vec![
        Box::new(|r| {
            r.choose(callhelper_script::AnswerRef::Key("1"), Timestamp(at + 1000))
                .unwrap()
        }),
        Box::new(move |r| {
            r.set_field_input("full_name", name, Timestamp(at + 2000))
                .unwrap()
        }),
        Box::new(move |r| {
            r.set_field_input("budget", budget, Timestamp(at + 3000))
                .unwrap()
        }),
        Box::new(|r| r.proceed(Timestamp(at + 4000)).unwrap()),
    ];
    for step in steps {
        let ev = step(&mut run);
        if run.is_finished() {
            store.finish_run(s, id, &ev, &run.record()).unwrap();
        } else {
            store
                .append_events(s, id, &ev, Some(&run.record().fields))
                .unwrap();
        }
    }
    id
}

/// A whole run (budget 150) by the administrator with the `i`th test person.
pub fn person_run(f: &Fixture, ids: &[ContactId], i: usize, at: i64) -> RunId {
    full_run(&f.store, &f.admin, Some(ids[i]), PEOPLE[i].0, "150", at)
}

/// The text of every part of an XLSX workbook (sheets, shared strings, metadata), read
/// out of its zip container, for "is it in the export" checks.
pub fn xlsx_text(path: &Path) -> String {
    use std::io::Read;
    let mut book = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = String::new();
    for i in 0..book.len() {
        book.by_index(i).unwrap().read_to_string(&mut out).unwrap();
        out.push('\n');
    }
    out
}

/// Every text value in every table, for "can it be found anywhere" checks.
pub fn all_text(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{KEY_HEX}'\""))
        .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = String::new();
    for t in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            for i in 0..n {
                let v: rusqlite::types::Value = r.get(i).unwrap();
                out.push_str(&format!("{v:?}\n"));
            }
        }
    }
    out
}

pub fn assert_absent(haystack: &str, needles: &[String], what: &str) {
    for n in needles {
        assert!(!haystack.contains(n.as_str()), "{what} contains {n:?}");
    }
}
