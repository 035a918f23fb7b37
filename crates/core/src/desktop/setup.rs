//! The desktop's own settings file and the first start: with nothing configured, the app
//! sets up a demo installation — a database with a demo agent and administrator, a few
//! sample contacts, and the example scripts — so a newcomer can call the demo line and walk
//! a script in the first minute.
//!
//! ```text
//! <data>/desktop/desktop.json   these settings (language, status, hotkeys, demo logins)
//! <data>/scripts/               the scripts folder (the examples on first start)
//! <data>/recordings/            call recordings
//! ```

use std::path::{Path, PathBuf};

use callhelper_script::{Lang, Text, Timestamp, text};
use callhelper_store::consent::{ConsentMethod, NewConsent};
use callhelper_store::contacts::NewContact;
use callhelper_store::{Pii, Role, Session, Store};
use serde::{Deserialize, Serialize};

use super::views::{AgentStatus, Hotkeys};
use crate::Error;
use crate::paths::DataDir;

/// The settings file in the `desktop/` part of the data folder.
pub const SETTINGS_FILE: &str = "desktop.json";

/// The desktop's settings (`desktop/desktop.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DesktopSettings {
    /// The interface language (`en`, `ru`); the system's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// The agent's availability.
    #[serde(default)]
    pub status: AgentStatus,
    /// Global hotkeys.
    #[serde(default)]
    pub hotkeys: Hotkeys,
    /// The script for the next call (a file name in the scripts folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Record calls from the answer (the agent can pause and resume).
    #[serde(default)]
    pub record_calls: bool,
    /// Set on a demo installation: who signs in automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demo: Option<DemoLogins>,
}

/// The logins of a demo installation. A demo installation holds sample data; an
/// administrator turns demo mode off (Settings) before real use, and from then on every
/// agent signs in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoLogins {
    /// The demo agent, signed in at start.
    pub agent: String,
    /// Its password.
    pub agent_password: String,
    /// The demo administrator.
    pub admin: String,
    /// Its password (shown to the newcomer).
    pub admin_password: String,
    /// The phone of the contact the demo line plays.
    pub line_contact: String,
}

impl std::fmt::Debug for DemoLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoLogins")
            .field("agent", &self.agent)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl DesktopSettings {
    fn path(data: &DataDir) -> Result<PathBuf, Error> {
        Ok(data.part("desktop")?.join(SETTINGS_FILE))
    }

    /// Read the settings; no file means the defaults.
    pub fn load(data: &DataDir) -> Result<DesktopSettings, Error> {
        let path = Self::path(data)?;
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                let p = path.display();
                Error::new(
                    "desk.settings_invalid",
                    text!("{p}: {e}"; "{p}: ошибка в настройках: {e}"),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DesktopSettings::default()),
            Err(e) => Err(write_error(&path, &e)),
        }
    }

    /// Write the settings (atomically: a crash leaves the old file or the new one).
    pub fn save(&self, data: &DataDir) -> Result<(), Error> {
        let path = Self::path(data)?;
        let json = serde_json::to_vec_pretty(self).expect("settings are always JSON");
        write_atomic(&path, &json)
    }

    /// The interface language: the chosen one, else the system's (`LANG`), else English.
    pub fn lang(&self) -> Lang {
        self.lang
            .as_deref()
            .and_then(Lang::parse)
            .or_else(|| {
                ["LC_ALL", "LC_MESSAGES", "LANG"]
                    .iter()
                    .filter_map(|v| std::env::var(v).ok())
                    .find(|v| !v.is_empty())
                    .and_then(|v| Lang::parse(&v))
            })
            .unwrap_or_default()
    }
}

fn write_error(path: &Path, e: &std::io::Error) -> Error {
    let p = path.display();
    Error::new(
        "desk.write_failed",
        text!("cannot write {p}: {e}"; "не удалось записать {p}: {e}"),
    )
}

/// Write a file through a temporary one and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| write_error(path, &e))
}

/// The example scripts, built in so the first start works from the binary alone.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "appointment-booking.en.yaml",
        include_str!("../../../../scripts-examples/appointment-booking.en.yaml"),
    ),
    (
        "appointment-booking.ru.yaml",
        include_str!("../../../../scripts-examples/appointment-booking.ru.yaml"),
    ),
    (
        "b2b-cold-call.en.yaml",
        include_str!("../../../../scripts-examples/b2b-cold-call.en.yaml"),
    ),
    (
        "b2b-cold-call.ru.yaml",
        include_str!("../../../../scripts-examples/b2b-cold-call.ru.yaml"),
    ),
    (
        "customer-survey.en.yaml",
        include_str!("../../../../scripts-examples/customer-survey.en.yaml"),
    ),
    (
        "customer-survey.ru.yaml",
        include_str!("../../../../scripts-examples/customer-survey.ru.yaml"),
    ),
    (
        "inbound-support.en.yaml",
        include_str!("../../../../scripts-examples/inbound-support.en.yaml"),
    ),
    (
        "inbound-support.ru.yaml",
        include_str!("../../../../scripts-examples/inbound-support.ru.yaml"),
    ),
    (
        "payment-reminder.en.yaml",
        include_str!("../../../../scripts-examples/payment-reminder.en.yaml"),
    ),
    (
        "payment-reminder.ru.yaml",
        include_str!("../../../../scripts-examples/payment-reminder.ru.yaml"),
    ),
];

/// The scripts folder; on first use it is created with the example scripts.
pub fn scripts_dir(data: &DataDir) -> Result<PathBuf, Error> {
    let dir = data.root().join("scripts");
    if dir.is_dir() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| write_error(&dir, &e))?;
    for (name, body) in EXAMPLES {
        let path = dir.join(name);
        std::fs::write(&path, body).map_err(|e| write_error(&path, &e))?;
    }
    Ok(dir)
}

/// The default script of a demo installation, in the interface language.
pub fn demo_script(lang: Lang) -> &'static str {
    match lang {
        Lang::Ru => "b2b-cold-call.ru.yaml",
        Lang::En => "b2b-cold-call.en.yaml",
    }
}

/// A sample person of the demo.
struct Sample {
    name: &'static str,
    phone: &'static str,
    email: &'static str,
    extra: &'static [(&'static str, &'static str)],
    consent: Option<bool>,
    blocked: bool,
}

/// The sample contacts. The first is the client the demo line plays.
const SAMPLES: &[Sample] = &[
    Sample {
        name: "Ирина Смирнова",
        phone: "+7 495 000-00-00",
        email: "irina@example.ru",
        extra: &[
            ("company", "ООО «Ромашка»"),
            ("city", "Москва"),
            ("first_name", "Ирина"),
        ],
        consent: Some(true),
        blocked: false,
    },
    Sample {
        name: "Сергей Петров",
        phone: "+7 912 000-11-22",
        email: "",
        extra: &[
            ("first_name", "Сергей"),
            ("contract_no", "ЗМ-2026-0412"),
            ("amount_due", "12 400"),
            ("due_date", "15.11.2026"),
        ],
        consent: Some(true),
        blocked: false,
    },
    Sample {
        name: "Anna Baker",
        phone: "+44 20 7946 0000",
        email: "anna.baker@example.co.uk",
        extra: &[("company", "Baker & Sons Ltd"), ("first_name", "Anna")],
        consent: None,
        blocked: false,
    },
    Sample {
        name: "John Miller",
        phone: "+1 202 555 0143",
        email: "john@example.com",
        extra: &[("company", "Northwind Traders"), ("first_name", "John")],
        consent: Some(false),
        blocked: false,
    },
    Sample {
        name: "Олег Кузнецов",
        phone: "+7 495 000-00-01",
        email: "",
        extra: &[("company", "ИП Кузнецов"), ("first_name", "Олег")],
        consent: Some(false),
        blocked: true,
    },
];

/// A random password for the demo agent (never typed by anyone).
fn random_password() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("demo-{:016x}{:08x}", h.finish(), std::process::id())
}

/// Fill a new database with the demo's users and sample contacts. Returns the logins.
pub fn demo_install(store: &Store, admin: &Session, now: Timestamp) -> Result<DemoLogins, Error> {
    let logins = DemoLogins {
        agent: "agent".into(),
        agent_password: random_password(),
        admin: admin.login().to_owned(),
        admin_password: DEMO_ADMIN_PASSWORD.into(),
        line_contact: SAMPLES[0].phone.into(),
    };
    store.add_user(admin, &logins.agent, &logins.agent_password, Role::Agent)?;
    for s in SAMPLES {
        let id = store.add_contact(
            admin,
            &NewContact {
                phone: Pii::new(s.phone.into()),
                name: Pii::new(s.name.into()),
                email: Pii::new(s.email.into()),
                extra: Pii::new(
                    s.extra
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
            },
        )?;
        if let Some(given) = s.consent {
            store.record_consent(
                admin,
                &NewConsent {
                    contact: id,
                    given,
                    purpose: "calls about our offers (demo)".into(),
                    at: now,
                    method: ConsentMethod::Manual,
                },
            )?;
        }
        if s.blocked {
            store.block(admin, id)?;
        }
    }
    Ok(logins)
}

/// The demo administrator's login and password (shown on the demo banner).
pub const DEMO_ADMIN: &str = "admin";
/// See [`DEMO_ADMIN`].
pub const DEMO_ADMIN_PASSWORD: &str = "callhelper-demo";

/// How consent was captured, for people.
pub fn consent_method(m: &ConsentMethod) -> Text {
    match m {
        ConsentMethod::Script {
            script_id, step, ..
        } => text!(
            "during a call (script {script_id}, step {step})";
            "во время звонка (сценарий {script_id}, шаг {step})"),
        ConsentMethod::Import => Text::new("with an import", "при загрузке"),
        ConsentMethod::Manual => Text::new("entered by hand", "введено вручную"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_missing_file_means_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::at(dir.path());
        assert_eq!(
            DesktopSettings::load(&data).unwrap(),
            DesktopSettings::default()
        );
        let s = DesktopSettings {
            lang: Some("ru".into()),
            status: AgentStatus::DoNotDisturb,
            script: Some("x.yaml".into()),
            ..Default::default()
        };
        s.save(&data).unwrap();
        assert_eq!(DesktopSettings::load(&data).unwrap(), s);
        assert_eq!(s.lang(), Lang::Ru);
        std::fs::write(data.part("desktop").unwrap().join(SETTINGS_FILE), "{oops").unwrap();
        assert_eq!(
            DesktopSettings::load(&data).unwrap_err().code,
            "desk.settings_invalid"
        );
    }

    #[test]
    fn the_scripts_folder_starts_with_the_examples_and_is_then_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::at(dir.path());
        let scripts = scripts_dir(&data).unwrap();
        let lib = crate::scripts::library(&scripts).unwrap();
        assert_eq!(lib.len(), EXAMPLES.len());
        assert!(
            lib.iter()
                .all(|e| !callhelper_script::has_errors(&e.diagnostics))
        );
        std::fs::remove_file(scripts.join(demo_script(Lang::En))).unwrap();
        scripts_dir(&data).unwrap();
        assert!(!scripts.join(demo_script(Lang::En)).exists());
    }
}
