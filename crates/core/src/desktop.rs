//! The agent's workspace as the desktop app runs it: start-up (the demo installation on a
//! first start, unlocking, signing in), the phone line with its calls, the script run on
//! screen, history, contacts, reports and settings — each an operation the shell's command list
//! calls at once, with events pushed back through one callback.
//!
//! Invariants:
//! - Every action in the script panel is stored (`data::act`) before its result is
//!   returned, so the interface never paints a step the database does not hold.
//! - A call that ends in the middle of a script ends the run at once, stored with the step
//!   it stopped at and why (the client hung up, the agent did, the call failed).
//! - Guarded areas (manager, admin) need a signed-in user of that role: the agent's own
//!   session, or one opened with [`Workspace::elevate`] that lapses after
//!   [`ELEVATION_LASTS`] without use.
//! - Log lines carry ids only: never numbers, names or field values.

mod line;
mod reports;
mod setup;
pub mod views;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use callhelper_phone::{
    AnswerOptions, CallOptions, CallState, Decline, DevicePreferences, Event, RegistrationState,
};
use callhelper_script::{EndReason as RunEnd, Lang, Outcome, Program, Text, Timestamp, text};
use callhelper_store::calls::{CallEnd, Direction, NewCall, Quality as StoredQuality};
use callhelper_store::consent::{ConsentMethod, NewConsent};
use callhelper_store::contacts::{Contact, ContactId};
use callhelper_store::{Pii, Role, Session, Store};

pub use line::PLAY_ENV;
pub use reports::{ExportKind, Report, StepTitles};
pub use setup::{DEMO_ADMIN, DEMO_ADMIN_PASSWORD, DesktopSettings, scripts_dir};
pub use views::*;

use crate::Error;
use crate::data::{self, KeyChoice, ScriptRun};
use crate::paths::DataDir;
use crate::phone::PhoneSettings;
use crate::scripts::{self, Action};
use line::{Line, command_error, user_part};

/// Where events for the interface go.
pub type Emit = Arc<dyn Fn(DeskEvent) + Send + Sync>;

/// How long the microphone test runs unless stopped.
pub const SOUND_TEST_LASTS: Duration = Duration::from_secs(15);
/// How long the speaker test's tone plays.
pub const SPEAKER_TEST_LASTS: Duration = Duration::from_secs(3);

/// How long a password given for a guarded area stays good without use.
pub const ELEVATION_LASTS: Duration = Duration::from_secs(10 * 60);

/// The workspace. Cheap to clone; every clone is the same workspace.
#[derive(Clone)]
pub struct Workspace {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace").finish_non_exhaustive()
    }
}

struct Shared {
    data: DataDir,
    emit: Emit,
    state: Mutex<State>,
}

/// A call the workspace follows.
struct CallInfo {
    view: CallView,
    stored: Option<callhelper_store::calls::CallId>,
}

/// The run on screen.
struct OnScreen {
    run: ScriptRun,
    file: String,
    call: Option<u64>,
}

struct State {
    settings: DesktopSettings,
    phase: Phase,
    store: Option<Arc<Store>>,
    agent: Option<Session>,
    elevated: Option<(Session, Instant)>,
    licence: LicenceView,
    line: Option<Line>,
    calls: BTreeMap<u64, CallInfo>,
    run: Option<OnScreen>,
    programs: BTreeMap<String, (std::time::SystemTime, Arc<Program>)>,
    registrations: BTreeMap<String, (String, Option<Text>)>,
    notices: Vec<Text>,
    scripts: PathBuf,
    /// CRM delivery and licence renewal, once the database is open.
    background: Option<crate::background::Background>,
    /// The click-to-call endpoint, while a CRM is connected.
    dial_endpoint: Option<callhelper_crm::dial::DialEndpoint>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> Timestamp {
    callhelper_store::time::now()
}

fn needs(area: Area) -> Error {
    match area {
        Area::Admin => Error::new(
            "desk.needs_admin",
            Text::new(
                "This needs an administrator: enter an administrator's login and password.",
                "Нужен администратор: введите логин и пароль администратора.",
            ),
        ),
        Area::Manager => Error::new(
            "desk.needs_manager",
            Text::new(
                "This needs a manager: enter a manager's or administrator's login and password.",
                "Нужен руководитель: введите логин и пароль руководителя или администратора.",
            ),
        ),
    }
}

fn not_ready() -> Error {
    Error::new(
        "desk.not_ready",
        Text::new("Sign in first.", "Сначала войдите в программу."),
    )
}

fn no_phone() -> Error {
    Error::new(
        "phone.unavailable",
        Text::new(
            "The phone is not running (see the notice at the top); calls cannot be made.",
            "Телефон не запущен (см. сообщение вверху); звонить нельзя.",
        ),
    )
}

fn no_call(id: u64) -> Error {
    Error::new(
        "phone.no_such_call",
        text!("there is no call {id} any more"; "звонка {id} уже нет"),
    )
}

fn allows(role: Role, area: Area) -> bool {
    match area {
        Area::Admin => role == Role::Admin,
        Area::Manager => matches!(role, Role::Admin | Role::Manager),
    }
}

fn licence_view(data: &DataDir) -> LicenceView {
    match crate::licence::status(data) {
        Ok(s) => LicenceView {
            demo: s.is_demo(),
            usable: s.licensed().is_some(),
            text: crate::licence::describe(&s),
        },
        Err(e) => LicenceView {
            demo: true,
            usable: false,
            text: e.message,
        },
    }
}

impl State {
    fn lang(&self) -> Lang {
        self.settings.lang()
    }

    fn ready(&self) -> Result<(&Arc<Store>, &Session), Error> {
        match (&self.store, &self.agent, &self.phase) {
            (Some(st), Some(s), Phase::Ready) => Ok((st, s)),
            _ => Err(not_ready()),
        }
    }

    /// A session allowed into `area`: the agent's own, or a recent elevated one.
    fn session_for(&mut self, area: Area) -> Result<Session, Error> {
        let (_, agent) = self.ready()?;
        if allows(agent.role(), area) {
            return Ok(agent.clone());
        }
        match &mut self.elevated {
            Some((s, at)) if allows(s.role(), area) && at.elapsed() < ELEVATION_LASTS => {
                *at = Instant::now();
                Ok(s.clone())
            }
            _ => Err(needs(area)),
        }
    }

    fn program(&mut self, file: &str) -> Result<Arc<Program>, Error> {
        if file.contains(['/', '\\']) || file.starts_with('.') {
            return Err(Error::new(
                "script.not_in_folder",
                text!("{file} is not a file of the scripts folder"; "{file} — не файл папки сценариев"),
            ));
        }
        let path = self.scripts.join(file);
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        if let Some((m, p)) = self.programs.get(file)
            && *m == modified
        {
            return Ok(p.clone());
        }
        let p = scripts::open(&path)?;
        self.programs.insert(file.to_owned(), (modified, p.clone()));
        Ok(p)
    }

    fn contact_view(&self, c: &Contact) -> ContactView {
        let consent = self.store.as_ref().and_then(|st| {
            let s = self.agent.as_ref()?;
            let records = st.consents(s, c.id).ok()?;
            records.last().map(|r| ConsentView {
                given: r.given,
                purpose: r.purpose.clone(),
                at: callhelper_store::time::iso(r.at),
                method: setup::consent_method(&r.method),
            })
        });
        ContactView {
            id: c.id.0,
            name: c.name.expose().clone(),
            phone: c.phone.as_str().to_owned(),
            email: c.email.expose().clone(),
            company: c.extra.expose().get("company").cloned(),
            blocked: c.blocked_at.is_some(),
            consent,
        }
    }

    fn lookup(&self, number: &str) -> Option<Contact> {
        let (st, s) = self.ready().ok()?;
        st.contact_by_phone(s, number).ok().flatten()
    }

    fn run_view(&self) -> Option<RunView> {
        let on = self.run.as_ref()?;
        Some(run_view(on, self.lang()))
    }

    fn app_state(&self, data: &DataDir) -> AppState {
        AppState {
            phase: self.phase.clone(),
            lang: self.lang(),
            demo: self.settings.demo.as_ref().map(|d| DemoView {
                admin_login: d.admin.clone(),
                admin_password: d.admin_password.clone(),
            }),
            agent: self.agent.as_ref().map(|s| AgentView {
                login: s.login().to_owned(),
                role: s.role().into(),
            }),
            status: self.settings.status,
            licence: self.licence.clone(),
            data_dir: data.root().display().to_string(),
            scripts_dir: self.scripts.display().to_string(),
            hotkeys: self.settings.hotkeys.clone(),
            script: self.settings.script.clone(),
            calls: self.calls.values().map(|c| c.view.clone()).collect(),
            run: self.run_view(),
            notices: self.notices.clone(),
        }
    }

    fn line(&self) -> Result<&Line, Error> {
        self.line.as_ref().ok_or_else(no_phone)
    }

    /// End the run on screen (if it is still going) with `reason`, storing it.
    fn end_run(&mut self, reason: RunEnd, outcome: Option<String>) -> Result<(), Error> {
        let (store, s) = match self.ready() {
            Ok((st, s)) => (st.clone(), s.clone()),
            Err(e) => return Err(e),
        };
        let Some(on) = self.run.as_mut() else {
            return Ok(());
        };
        if on.run.run().is_finished() {
            return Ok(());
        }
        data::act(
            &store,
            &s,
            &mut on.run,
            &Action::End { reason, outcome },
            now(),
        )?;
        log::info!("desktop: run {} ended ({reason:?})", on.run.id().0);
        Ok(())
    }
}

/// The view of a run on screen.
fn run_view(on: &OnScreen, lang: Lang) -> RunView {
    let run = on.run.run();
    let program = run.program();
    let script = program.script();
    let record = run.record();
    let title = |id: &str, objection: Option<&str>| -> String {
        let steps: &[callhelper_script::Step] = match objection {
            Some(o) => script
                .objections
                .iter()
                .find(|x| x.id == o)
                .map_or(&[], |x| &x.steps),
            None => &script.steps,
        };
        steps
            .iter()
            .find(|s| s.id == id)
            .map_or_else(|| id.to_owned(), |s| s.title().to_owned())
    };
    let path = record
        .path
        .iter()
        .map(|v| PathStep {
            step: v.step.clone(),
            title: title(&v.step, v.objection.as_deref()),
            objection: v.objection.as_ref().and_then(|o| {
                script
                    .objections
                    .iter()
                    .find(|x| &x.id == o)
                    .map(|x| x.label.clone())
            }),
            answer: v.answer.as_ref().map(|a| a.label.clone()),
        })
        .collect();
    let outcomes = Outcome::BUILTIN
        .iter()
        .cloned()
        .chain(script.outcomes.iter().map(|d| Outcome::parse(&d.id)))
        .map(|o| OutcomeChoice {
            id: o.as_str().to_owned(),
            label: program.outcome_label(&o, lang),
        })
        .collect();
    let ended = record.end_reason.map(|reason| {
        let at = record
            .ended_at_step
            .as_deref()
            .map(|s| {
                let objection = record
                    .path
                    .iter()
                    .rev()
                    .find(|v| v.step == s)
                    .and_then(|v| v.objection.clone());
                title(s, objection.as_deref())
            })
            .unwrap_or_default();
        let outcome = record
            .outcome
            .as_ref()
            .map(|o| program.outcome_label(o, lang));
        let (en, ru) = match reason {
            RunEnd::Terminal => ("The script reached its end", "Сценарий дошёл до конца"),
            RunEnd::RemoteHangup => ("The client hung up", "Клиент положил трубку"),
            RunEnd::AgentHangup => ("You hung up", "Вы завершили звонок"),
            RunEnd::CallFailed => ("The call failed", "Звонок не состоялся"),
            RunEnd::AgentEnded => ("You ended the run", "Вы завершили разговор"),
        };
        let o = outcome.map(|o| format!(" — {o}")).unwrap_or_default();
        text!("{en} at «{at}»{o}. Everything is saved."; "{ru} на шаге «{at}»{o}. Всё сохранено.")
    });
    RunView {
        id: on.run.id().0,
        call: on.call,
        file: on.file.clone(),
        script: script.name.clone(),
        version: script.version,
        view: run.view(lang),
        path,
        outcomes,
        notes: record.notes.iter().map(|r| r.text.clone()).collect(),
        unforeseen: record.unforeseen.iter().map(|r| r.text.clone()).collect(),
        ended,
        callback_at: record.callback_at,
    }
}

/// Change the view of a call the workspace knows (an unknown call is left alone) and,
/// when `change` says so, show the new view.
fn update_call(
    st: &mut State,
    call: callhelper_phone::CallId,
    out: &mut Vec<DeskEvent>,
    change: impl FnOnce(&mut CallView) -> bool,
) {
    if let Some(c) = st.calls.get_mut(&call.0) {
        if change(&mut c.view) {
            out.push(DeskEvent::Call {
                call: c.view.clone(),
            });
        }
    }
}

fn phase_of(state: &CallState) -> CallPhase {
    match state {
        CallState::Idle | CallState::Dialing => CallPhase::Dialing,
        CallState::Ringing => CallPhase::Ringing,
        CallState::EarlyMedia => CallPhase::EarlyMedia,
        CallState::Connected => CallPhase::Connected,
        CallState::OnHold(_) => CallPhase::OnHold,
        CallState::Transferring => CallPhase::Transferring,
        CallState::Ended { .. } => CallPhase::Ended,
        _ => CallPhase::Connected,
    }
}

/// The store's outcome word for a call that ended without a script outcome.
fn call_outcome(reason: callhelper_phone::EndReason, answered: bool) -> &'static str {
    use callhelper_phone::EndReason as R;
    match reason {
        R::Busy => "busy",
        R::NoAnswer | R::CancelledRemotely | R::CancelledLocally => "no_answer",
        R::Declined | R::DeclinedLocally => "declined",
        R::Transferred => "transferred",
        _ if answered => "answered",
        _ => "failed",
    }
}

impl Workspace {
    /// Start the workspace on a data folder. Never fails: the state's phase says whether
    /// it is ready, needs a passphrase or a sign-in, or why start-up failed.
    pub fn start(data: DataDir, emit: Emit) -> Workspace {
        Workspace::start_with_key(data, emit, KeyChoice::from_env())
    }

    /// [`Workspace::start`] with the database key chosen by the caller (tests; the
    /// environment's passphrase otherwise).
    pub fn start_with_key(data: DataDir, emit: Emit, key: KeyChoice) -> Workspace {
        let settings = DesktopSettings::load(&data).unwrap_or_else(|e| {
            log::warn!("desktop: settings unreadable ({}), using defaults", e.code);
            DesktopSettings::default()
        });
        let licence = licence_view(&data);
        let ws = Workspace {
            shared: Arc::new(Shared {
                emit,
                state: Mutex::new(State {
                    settings,
                    phase: Phase::SignIn,
                    store: None,
                    agent: None,
                    elevated: None,
                    licence,
                    line: None,
                    calls: BTreeMap::new(),
                    run: None,
                    programs: BTreeMap::new(),
                    registrations: BTreeMap::new(),
                    notices: Vec::new(),
                    scripts: data.root().join("scripts"),
                    background: None,
                    dial_endpoint: None,
                }),
                data,
            }),
        };
        let phase = ws.boot(key);
        lock(&ws.shared.state).phase = phase;
        ws.after_ready();
        ws
    }

    /// The data folder.
    pub fn data(&self) -> &DataDir {
        &self.shared.data
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    fn emit(&self, e: DeskEvent) {
        (self.shared.emit)(e);
    }

    /// Start the background work on the open database: CRM delivery (its problems become
    /// notices) and licence renewal. Called without the state locked: the first report
    /// comes at once.
    fn start_background(&self, store: &Arc<Store>) {
        use crate::background::{Background, Report};
        let emit = self.shared.emit.clone();
        let on_report = Arc::new(move |r: Report| {
            let text = match r {
                Report::CrmProblem { message } => message,
                Report::Crm { failed, .. } if failed > 0 => text!(
                    "{failed} item(s) could not be sent to the CRM and wait for a retry: see Settings → CRM";
                    "Не удалось отправить в CRM записей: {failed}; они ждут повторной отправки (Настройки → CRM)"
                ),
                Report::Licence {
                    problem: Some(p), ..
                } => p,
                Report::RetentionProblem { message } => message,
                Report::Retention {
                    contacts,
                    runs,
                    calls,
                } => text!(
                    "The retention period ran out: destroyed {runs} run(s), {calls} call(s) and {contacts} contact(s)";
                    "Срок хранения истёк: уничтожено сценариев: {runs}, звонков: {calls}, контактов: {contacts}"
                ),
                _ => return,
            };
            emit(DeskEvent::Notice { text });
        });
        let bg = Background::start(
            self.shared.data.clone(),
            store.clone(),
            Default::default(),
            on_report,
        );
        let dial = self.start_click_to_call();
        let mut st = self.state();
        st.background = Some(bg);
        st.dial_endpoint = dial;
    }

    /// With a CRM connected, listen for its click-to-call requests (see
    /// [`crate::crm::dial_endpoint`]): each one dials like the dialer does. A port in
    /// use becomes a notice, not a failure.
    fn start_click_to_call(&self) -> Option<callhelper_crm::dial::DialEndpoint> {
        let data = &self.shared.data;
        let conn = crate::crm::connection(data).ok().flatten()?;
        let weak = Arc::downgrade(&self.shared);
        let on_dial: callhelper_crm::dial::OnDial = Arc::new(move |req| {
            let Some(shared) = weak.upgrade() else {
                return false;
            };
            let ws = Workspace { shared };
            match ws.dial(&req.phone, None) {
                Ok(_) => true,
                Err(e) => {
                    log::warn!("desktop: click-to-call refused ({})", e.code);
                    ws.emit(DeskEvent::Notice { text: e.message });
                    false
                }
            }
        });
        let origins = conn.web_origin().into_iter().collect();
        match crate::crm::dial_endpoint(data, conn.dial_port, origins, on_dial) {
            Ok((endpoint, _token)) => Some(endpoint),
            Err(e) => {
                log::warn!("desktop: click-to-call not available ({})", e.code);
                self.emit(DeskEvent::Notice { text: e.message });
                None
            }
        }
    }

    /// Open (or create) the database and sign in, as far as can be done without asking.
    fn boot(&self, key: KeyChoice) -> Phase {
        let data = &self.shared.data;
        let result = (|| -> Result<Phase, Error> {
            let scripts = scripts_dir(data)?;
            self.state().scripts = scripts;
            let db = data::db_path(data)?;
            if !db.exists() {
                if matches!(key, KeyChoice::Keychain)
                    && callhelper_store::key::keychain_reachable().is_err()
                {
                    return Ok(Phase::Unlock { first: true });
                }
                let (store, admin) = match data::init(data, &key, DEMO_ADMIN, DEMO_ADMIN_PASSWORD) {
                    // Reachable but locked, or the user refused to unlock it: nothing
                    // was written (the key goes in before the file exists), so the
                    // administrator can choose a passphrase instead.
                    Err(e)
                        if e.code == "store.keychain_unavailable"
                            && matches!(key, KeyChoice::Keychain) =>
                    {
                        log::warn!("desktop: the keychain did not take the new key");
                        return Ok(Phase::Unlock { first: true });
                    }
                    r => r?,
                };
                let logins = setup::demo_install(&store, &admin, store.now())?;
                let mut st = self.state();
                st.settings.demo = Some(logins);
                if st.settings.script.is_none() {
                    st.settings.script = Some(setup::demo_script(st.lang()).to_owned());
                }
                st.settings.save(data)?;
                let store = Arc::new(store);
                st.store = Some(store.clone());
                drop(st);
                self.start_background(&store);
                log::info!("desktop: demo installation created");
                return self.auto_sign_in();
            }
            if matches!(key, KeyChoice::Keychain) && data::needs_passphrase(data)? {
                return Ok(Phase::Unlock { first: false });
            }
            let store = Arc::new(data::open(data, &key)?);
            self.state().store = Some(store.clone());
            self.start_background(&store);
            self.auto_sign_in()
        })();
        result.unwrap_or_else(|e| {
            log::error!("desktop: start-up failed ({})", e.code);
            Phase::Failed { error: e.into() }
        })
    }

    fn auto_sign_in(&self) -> Result<Phase, Error> {
        let mut st = self.state();
        let Some(demo) = st.settings.demo.clone() else {
            return Ok(Phase::SignIn);
        };
        let store = st.store.clone().ok_or_else(not_ready)?;
        let s = data::login(&store, &demo.agent, &demo.agent_password)?;
        st.agent = Some(s);
        Ok(Phase::Ready)
    }

    /// Once ready: start the phone and bring back interrupted runs.
    fn after_ready(&self) {
        let mut st = self.state();
        if st.phase != Phase::Ready {
            return;
        }
        st.licence = licence_view(&self.shared.data);
        if st.line.is_none() {
            let (tx, rx) = mpsc::channel();
            match Line::start(&self.shared.data, st.licence.demo, tx) {
                Ok(l) => {
                    st.line = Some(l);
                    let ws = Arc::downgrade(&self.shared);
                    let spawned = std::thread::Builder::new()
                        .name("desk-events".into())
                        .spawn(move || {
                            while let Ok(e) = rx.recv() {
                                let Some(shared) = ws.upgrade() else { return };
                                Workspace { shared }.on_phone_event(e);
                            }
                        });
                    if let Err(e) = spawned {
                        log::error!("desktop: cannot start the event thread: {e}");
                    }
                }
                Err(e) => {
                    log::error!("desktop: phone did not start ({})", e.code);
                    st.notices.push(e.message);
                }
            }
        }
        // Runs interrupted by a crash or a closed window come back on screen.
        let (Some(store), Some(s)) = (st.store.clone(), st.agent.clone()) else {
            return;
        };
        let scripts = st.scripts.clone();
        let library = scripts::library(&scripts).unwrap_or_default();
        let find = |id: &str, version: u32| {
            library
                .iter()
                .find(|e| e.id.as_deref() == Some(id) && e.version == Some(version))
                .and_then(|e| scripts::open(&e.file).ok())
        };
        match data::resume_runs(&store, &s, &find) {
            Ok((resumed, failed)) => {
                for f in failed {
                    st.notices.push(f.error.message);
                }
                let lang = st.lang();
                let n = resumed.len();
                if let Some(run) = resumed.into_iter().last() {
                    let file = library
                        .iter()
                        .find(|e| e.id.as_deref() == Some(&run.run().program().script().id))
                        .and_then(|e| e.file.file_name())
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    st.notices.push(match lang {
                        _ if n > 1 => text!("{n} runs were interrupted; the latest is back on screen, the others stay open in the history.";
                                            "Прервано разговоров: {n}; последний снова на экране, остальные открыты в истории."),
                        _ => Text::new(
                            "The run interrupted last time is back on screen: carry on, or end it with an outcome.",
                            "Прерванный в прошлый раз разговор снова на экране: продолжите его или завершите с итогом.",
                        ),
                    });
                    st.run = Some(OnScreen {
                        run,
                        file,
                        call: None,
                    });
                }
            }
            Err(e) => st.notices.push(e.message),
        }
    }

    /// Everything the interface needs now.
    pub fn app_state(&self) -> AppState {
        self.state().app_state(&self.shared.data)
    }

    /// Give the database passphrase (or choose one for a new installation).
    pub fn unlock(&self, passphrase: &str) -> Result<AppState, Error> {
        if !matches!(self.state().phase, Phase::Unlock { .. }) {
            return Ok(self.app_state());
        }
        let phase = self.boot(KeyChoice::Passphrase(passphrase.to_owned()));
        if let Phase::Failed { error } = &phase {
            if error.code != "data.not_initialised" {
                return Err(Error::new("store.unlock_failed", error.message.clone()));
            }
        }
        self.state().phase = phase;
        self.after_ready();
        Ok(self.app_state())
    }

    /// Sign in with a login and password.
    pub fn sign_in(&self, login: &str, password: &str) -> Result<AppState, Error> {
        {
            let mut st = self.state();
            let store = st.store.clone().ok_or_else(not_ready)?;
            let s = data::login(&store, login, password)?;
            log::info!("desktop: signed in (role {})", s.role());
            st.agent = Some(s);
            st.phase = Phase::Ready;
        }
        self.after_ready();
        Ok(self.app_state())
    }

    /// Sign out (a run on screen stays stored, open, and comes back at the next sign-in).
    pub fn sign_out(&self) -> AppState {
        let mut st = self.state();
        st.agent = None;
        st.elevated = None;
        st.run = None;
        st.phase = Phase::SignIn;
        st.app_state(&self.shared.data)
    }

    /// Give a password for a guarded area; it stays good for [`ELEVATION_LASTS`].
    pub fn elevate(&self, area: Area, login: &str, password: &str) -> Result<(), Error> {
        let mut st = self.state();
        let store = st.ready()?.0.clone();
        let s = data::login(&store, login, password)?;
        if !allows(s.role(), area) {
            return Err(needs(area));
        }
        st.elevated = Some((s, Instant::now()));
        Ok(())
    }

    /// Forget the password given for guarded areas.
    pub fn drop_elevation(&self) {
        self.state().elevated = None;
    }

    /// Change the interface language.
    pub fn set_lang(&self, lang: Lang) -> Result<AppState, Error> {
        let mut st = self.state();
        st.settings.lang = Some(
            match lang {
                Lang::En => "en",
                Lang::Ru => "ru",
            }
            .into(),
        );
        st.settings.save(&self.shared.data)?;
        Ok(st.app_state(&self.shared.data))
    }

    /// Change the agent's availability.
    pub fn set_status(&self, status: AgentStatus) -> Result<(), Error> {
        {
            let mut st = self.state();
            st.settings.status = status;
            st.settings.save(&self.shared.data)?;
        }
        log::info!("desktop: status {status:?}");
        self.emit(DeskEvent::Status { status });
        Ok(())
    }

    /// The agent's availability.
    pub fn status(&self) -> AgentStatus {
        self.state().settings.status
    }

    /// The interface language.
    pub fn lang(&self) -> Lang {
        self.state().lang()
    }

    /// The global hotkeys.
    pub fn hotkeys(&self) -> Hotkeys {
        self.state().settings.hotkeys.clone()
    }

    // ----- scripts -------------------------------------------------------------------

    /// The scripts folder, linted: broken scripts are listed with the linter's messages.
    pub fn scripts(&self) -> Result<Vec<ScriptEntry>, Error> {
        let dir = self.state().scripts.clone();
        Ok(scripts::library(&dir)?
            .into_iter()
            .map(|e| {
                let file = e
                    .file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut problems: Vec<Problem> = e
                    .diagnostics
                    .iter()
                    .map(|d| Problem::of(&file, d))
                    .collect();
                if let Some(u) = &e.unreadable {
                    problems.insert(
                        0,
                        Problem {
                            error: true,
                            text: u.message.clone(),
                        },
                    );
                }
                ScriptEntry {
                    ok: !problems.iter().any(|p| p.error),
                    file,
                    id: e.id,
                    name: e.name,
                    version: e.version,
                    problems,
                }
            })
            .collect())
    }

    /// Choose the script for the next calls.
    pub fn choose_script(&self, file: &str) -> Result<(), Error> {
        let mut st = self.state();
        st.program(file)?;
        st.settings.script = Some(file.to_owned());
        st.settings.save(&self.shared.data)
    }

    /// Start a run of `file` on screen, for the current call (if any). A run still going
    /// on screen is ended first (stored where it stopped).
    pub fn start_run(&self, file: &str) -> Result<RunView, Error> {
        let mut st = self.state();
        let call = st
            .calls
            .values()
            .rev()
            .find(|c| c.view.phase != CallPhase::Ended)
            .map(|c| (c.view.id, c.view.number.clone(), c.stored));
        self.begin_run(&mut st, file, call)?;
        Ok(st.run_view().expect("just started"))
    }

    fn begin_run(
        &self,
        st: &mut State,
        file: &str,
        call: Option<(u64, String, Option<callhelper_store::calls::CallId>)>,
    ) -> Result<(), Error> {
        let program = st.program(file)?;
        st.end_run(RunEnd::AgentEnded, None)?;
        let (store, s) = st.ready().map(|(a, b)| (a.clone(), b.clone()))?;
        let phone = call
            .as_ref()
            .map(|(_, n, _)| n.as_str())
            .filter(|n| store.normalise_phone(n).is_ok());
        let run = data::start_run(
            &store,
            &s,
            program,
            phone,
            call.as_ref().and_then(|c| c.2),
            now(),
        )?;
        log::info!("desktop: run {} started", run.id().0);
        st.run = Some(OnScreen {
            run,
            file: file.to_owned(),
            call: call.map(|c| c.0),
        });
        Ok(())
    }

    /// The run on screen.
    pub fn run(&self) -> Option<RunView> {
        self.state().run_view()
    }

    /// Do something in the script panel. The result is stored before it is returned.
    pub fn act(&self, action: RunAction) -> Result<RunView, Error> {
        let mut st = self.state();
        let (store, s) = st.ready().map(|(a, b)| (a.clone(), b.clone()))?;
        let lang = st.lang();
        let on = st.run.as_mut().ok_or_else(|| {
            Error::new(
                "run.none",
                Text::new(
                    "No script is running: start one first.",
                    "Сценарий не запущен: сначала запустите его.",
                ),
            )
        })?;
        let action = match action {
            RunAction::Answer { key } => Action::Answer(key),
            RunAction::Set { field, input } => Action::Set { field, input },
            RunAction::Continue => Action::Continue,
            RunAction::Back => Action::Back,
            RunAction::Unforeseen { text } => Action::Unforeseen(text),
            RunAction::Note { text } => Action::Note(text),
            RunAction::End {
                outcome,
                callback_at,
            } => match callback_at.filter(|c| !c.trim().is_empty()) {
                Some(at) => Action::EndWithCallback {
                    outcome: outcome.unwrap_or_else(|| "callback".into()),
                    at,
                },
                None => Action::End {
                    reason: RunEnd::AgentEnded,
                    outcome,
                },
            },
        };
        data::act(&store, &s, &mut on.run, &action, now())?;
        Ok(run_view(on, lang))
    }

    /// Take a finished run off the screen.
    pub fn close_run(&self) -> Result<(), Error> {
        let mut st = self.state();
        if st.run.as_ref().is_some_and(|r| !r.run.run().is_finished()) {
            return Err(Error::new(
                "run.open",
                Text::new(
                    "The run is still going: end it with an outcome first.",
                    "Разговор ещё идёт: сначала завершите его с итогом.",
                ),
            ));
        }
        st.run = None;
        Ok(())
    }

    // ----- calls ---------------------------------------------------------------------

    /// Place a call to a number, a SIP address, or `demo` (the demo line), following the
    /// chosen script (or `script`). In demo mode every call goes to the demo line.
    pub fn dial(&self, number: &str, script: Option<&str>) -> Result<CallView, Error> {
        let number = number.trim();
        if number.is_empty() {
            return Err(Error::new(
                "phone.invalid_address",
                Text::new("Type a number to call.", "Наберите номер."),
            ));
        }
        let mut st = self.state();
        let (store, s) = st.ready().map(|(a, b)| (a.clone(), b.clone()))?;
        let demo_mode = st.licence.demo;
        let demo_contact = st.settings.demo.as_ref().map(|d| d.line_contact.clone());
        let wants_demo = number == crate::phone::DEMO;
        let number = if wants_demo {
            demo_contact.unwrap_or_else(|| number.to_owned())
        } else {
            number.to_owned()
        };
        if store.is_blocked(&number)? {
            return Err(callhelper_store::StoreError::Blocked.into());
        }
        let demo = demo_mode || wants_demo;
        let record = st.settings.record_calls.then(|| self.recording_path());
        let to = number.clone();
        let call_record = record.clone();
        let id = st.line()?.run(move |e| -> Result<_, Error> {
            let uri = if demo { e.demo_uri()? } else { to };
            e.phone
                .call(
                    &uri,
                    CallOptions {
                        account: None,
                        record: call_record,
                    },
                )
                .map_err(command_error)
        })??;
        let stored = store.start_call(
            &s,
            &NewCall {
                direction: Direction::Outbound,
                local_number: if demo {
                    "demo".into()
                } else {
                    s.login().to_owned()
                },
                remote_number: Pii::new(number.clone()),
                started_at: now(),
                sip_call_id: None,
            },
        )?;
        let contact = st.lookup(&number).map(|c| st.contact_view(&c));
        let view = CallView {
            contact,
            can_record: record.is_some(),
            demo,
            ..CallView::new(id.0, false, number.clone(), CallPhase::Dialing)
        };
        st.calls.insert(
            id.0,
            CallInfo {
                view: view.clone(),
                stored: Some(stored),
            },
        );
        log::info!("desktop: call {} placed (stored {})", id.0, stored.0);
        // No script given: the chosen one; an empty name: none (a consultation call).
        let file = match script {
            Some("") => None,
            Some(f) => Some(f.to_owned()),
            None => st.settings.script.clone(),
        };
        if let Some(file) = file {
            if let Err(e) = self.begin_run(&mut st, &file, Some((id.0, number, Some(stored)))) {
                st.notices.push(e.message.clone());
                drop(st);
                self.emit(DeskEvent::Notice { text: e.message });
            }
        }
        Ok(view)
    }

    fn recording_path(&self) -> PathBuf {
        let dir = self
            .shared
            .data
            .part("recordings")
            .unwrap_or_else(|_| self.shared.data.root().join("recordings"));
        dir.join(format!(
            "{}.wav",
            callhelper_store::time::iso(now()).replace(':', "-")
        ))
    }

    fn with_call<T: Send + 'static>(
        &self,
        call: u64,
        f: impl FnOnce(
            &callhelper_phone::Phone,
            callhelper_phone::CallId,
        ) -> Result<T, callhelper_phone::PhoneError>
        + Send
        + 'static,
    ) -> Result<T, Error> {
        let st = self.state();
        if !st.calls.contains_key(&call) {
            return Err(no_call(call));
        }
        st.line()?
            .run(move |e| f(&e.phone, callhelper_phone::CallId(call)))?
            .map_err(command_error)
    }

    /// Answer a ringing call, starting the chosen script for it.
    pub fn answer(&self, call: u64) -> Result<(), Error> {
        let record = self
            .state()
            .settings
            .record_calls
            .then(|| self.recording_path());
        self.with_call(call, move |p, id| p.answer(id, AnswerOptions { record }))?;
        let mut st = self.state();
        let info = st
            .calls
            .get(&call)
            .map(|c| (c.view.number.clone(), c.stored));
        let file = st.settings.script.clone();
        if let (Some((number, stored)), Some(file)) = (info, file) {
            if let Err(e) = self.begin_run(&mut st, &file, Some((call, number, stored))) {
                st.notices.push(e.message.clone());
                drop(st);
                self.emit(DeskEvent::Notice { text: e.message });
            }
        }
        Ok(())
    }

    /// Answer the call that rings (the global hotkey).
    pub fn answer_ringing(&self) -> Result<(), Error> {
        let ringing = self
            .state()
            .calls
            .values()
            .find(|c| c.view.incoming && c.view.phase == CallPhase::Ringing)
            .map(|c| c.view.id);
        match ringing {
            Some(id) => self.answer(id),
            None => Ok(()),
        }
    }

    /// Turn a ringing call down.
    pub fn decline(&self, call: u64) -> Result<(), Error> {
        self.with_call(call, |p, id| p.decline(id, Decline::Decline))
    }

    /// Hang up (or cancel) a call.
    pub fn hang_up(&self, call: u64) -> Result<(), Error> {
        self.with_call(call, |p, id| p.hang_up(id))
    }

    /// Hang up the current call (the global hotkey).
    pub fn hang_up_current(&self) -> Result<(), Error> {
        let current = self
            .state()
            .calls
            .values()
            .rev()
            .find(|c| c.view.phase != CallPhase::Ended)
            .map(|c| c.view.id);
        match current {
            Some(id) => self.hang_up(id),
            None => Ok(()),
        }
    }

    /// Put a call on hold or take it off.
    pub fn hold(&self, call: u64, on: bool) -> Result<(), Error> {
        self.with_call(
            call,
            move |p, id| if on { p.hold(id) } else { p.resume(id) },
        )
    }

    /// Mute or unmute our microphone.
    pub fn mute(&self, call: u64, on: bool) -> Result<CallView, Error> {
        self.with_call(call, move |p, id| p.set_muted(id, on))?;
        let mut st = self.state();
        let c = st.calls.get_mut(&call).ok_or_else(|| no_call(call))?;
        c.view.muted = on;
        let v = c.view.clone();
        drop(st);
        self.emit(DeskEvent::Call { call: v.clone() });
        Ok(v)
    }

    /// Send DTMF digits.
    pub fn dtmf(&self, call: u64, digits: &str) -> Result<(), Error> {
        let d = digits.to_owned();
        self.with_call(call, move |p, id| p.send_dtmf(id, &d, None))
    }

    /// Blind transfer: the client is sent to `to`; our leg ends when it gets there.
    pub fn transfer(&self, call: u64, to: &str) -> Result<(), Error> {
        let to = to.trim().to_owned();
        self.with_call(call, move |p, id| p.transfer(id, &to))
    }

    /// Attended transfer: connect the client of `call` to the far end of `to` (a call
    /// the agent placed to the colleague, with `call` on hold meanwhile).
    pub fn transfer_attended(&self, call: u64, to: u64) -> Result<(), Error> {
        if !self.state().calls.contains_key(&to) {
            return Err(no_call(to));
        }
        self.with_call(call, move |p, id| {
            p.transfer_attended(id, callhelper_phone::CallId(to))
        })
    }

    /// Record a call, or stop recording it.
    pub fn record(&self, call: u64, on: bool) -> Result<(), Error> {
        let can = self
            .state()
            .calls
            .get(&call)
            .is_some_and(|c| c.view.can_record);
        if !can {
            return Err(Error::new(
                "phone.recording_off",
                Text::new(
                    "Call recording is off in the settings (an administrator turns it on).",
                    "Запись звонков выключена в настройках (её включает администратор).",
                ),
            ));
        }
        self.with_call(call, move |p, id| {
            p.execute(if on {
                callhelper_phone::Command::StartRecording(id)
            } else {
                callhelper_phone::Command::StopRecording(id)
            })
            .map(|_| ())
        })
    }

    /// Open a `tel:`, `sip:` or `callto:` link: dial it with the chosen script.
    pub fn open_link(&self, url: &str) -> Result<CallView, Error> {
        let number = parse_link(url).ok_or_else(|| {
            Error::new(
                "phone.invalid_link",
                Text::new(
                    "The link is not a tel:, sip: or callto: address.",
                    "Ссылка — не адрес tel:, sip: или callto:.",
                ),
            )
        })?;
        self.dial(&number, None)
    }

    fn on_phone_event(&self, e: Event) {
        let mut out = Vec::new();
        {
            let mut st = self.state();
            self.handle(&mut st, e, &mut out);
        }
        for e in out {
            self.emit(e);
        }
    }

    fn handle(&self, st: &mut State, e: Event, out: &mut Vec<DeskEvent>) {
        match e {
            Event::Registration { account, state, .. } => {
                let explained = crate::phone::explain(&Event::Registration {
                    account: account.clone(),
                    state: state.clone(),
                    sip_code: None,
                });
                let name = match &state {
                    RegistrationState::None => "none",
                    RegistrationState::Progress => "progress",
                    RegistrationState::Ok => "ok",
                    RegistrationState::Cleared => "cleared",
                    RegistrationState::Failed { .. } => "failed",
                    _ => "none",
                };
                let problem = matches!(state, RegistrationState::Failed { .. })
                    .then_some(explained)
                    .flatten();
                st.registrations
                    .insert(account.clone(), (name.into(), problem));
                if let Some(v) = self
                    .account_views(st)
                    .into_iter()
                    .find(|a| a.name == account)
                {
                    out.push(DeskEvent::Registration { account: v });
                }
            }
            Event::Incoming { call, from, .. } => {
                let number = user_part(from.as_str()).to_owned();
                let contact = st.lookup(&number);
                let blocked = contact.as_ref().is_some_and(|c| c.blocked_at.is_some());
                let dnd = st.settings.status == AgentStatus::DoNotDisturb;
                if blocked || dnd {
                    log::info!(
                        "desktop: incoming call {} declined ({})",
                        call.0,
                        if blocked {
                            "blocked person"
                        } else {
                            "do not disturb"
                        }
                    );
                    if let Ok(line) = st.line() {
                        let _ = line.run(move |e| e.phone.decline(call, Decline::Busy));
                    }
                    return;
                }
                let stored = st.ready().ok().and_then(|(store, s)| {
                    store
                        .start_call(
                            s,
                            &NewCall {
                                direction: Direction::Inbound,
                                local_number: s.login().to_owned(),
                                remote_number: Pii::new(number.clone()),
                                started_at: now(),
                                sip_call_id: None,
                            },
                        )
                        .ok()
                });
                let view = CallView {
                    contact: contact.map(|c| st.contact_view(&c)),
                    can_record: st.settings.record_calls,
                    ..CallView::new(call.0, true, number, CallPhase::Ringing)
                };
                log::info!("desktop: incoming call {}", call.0);
                st.calls.insert(
                    call.0,
                    CallInfo {
                        view: view.clone(),
                        stored,
                    },
                );
                out.push(DeskEvent::Incoming { call: view });
            }
            // Calls we place are known already; a transfer can make the engine place one.
            Event::Outgoing { call, to } => {
                if let std::collections::btree_map::Entry::Vacant(slot) = st.calls.entry(call.0) {
                    let number = user_part(to.as_str()).to_owned();
                    let view = CallView::new(call.0, false, number, CallPhase::Dialing);
                    slot.insert(CallInfo {
                        view: view.clone(),
                        stored: None,
                    });
                    out.push(DeskEvent::Call { call: view });
                }
            }
            Event::CallState { call, state } => update_call(st, call, out, |v| {
                v.phase = phase_of(&state);
                if matches!(state, CallState::Connected) && v.answered_at.is_none() {
                    v.answered_at = Some(now().0);
                }
                // The end is shown once the call is stored, by `CallEnded`.
                v.phase != CallPhase::Ended
            }),
            Event::Quality { call, quality } => update_call(st, call, out, |v| {
                v.quality = Some(QualityView {
                    mos: quality.mos,
                    jitter_ms: quality.jitter_ms,
                    loss_percent: quality.loss_percent,
                    rtt_ms: quality.rtt_ms,
                    grade: Grade::of(quality.mos),
                });
                true
            }),
            Event::Recording { call, active, .. } => update_call(st, call, out, |v| {
                v.recording = active;
                true
            }),
            Event::Transfer { call, progress } => update_call(st, call, out, |v| {
                use callhelper_phone::TransferProgress as P;
                v.warning = Some(match progress {
                    P::Failed => Text::new(
                        "The transfer did not happen; the call carries on.",
                        "Перевод не удался; звонок продолжается.",
                    ),
                    P::Succeeded => Text::new("Transferred.", "Переведён."),
                    _ => Text::new("Transferring…", "Перевод…"),
                });
                true
            }),
            ref ev @ Event::Media { call, .. } => {
                let text = crate::phone::explain(ev);
                update_call(st, call, out, |v| {
                    v.warning = text;
                    true
                });
            }
            Event::CallEnded { call, summary } => {
                let text = crate::phone::explain(&Event::CallEnded {
                    call,
                    summary: summary.clone(),
                });
                let reason = summary.reason;
                let run_end = match reason {
                    callhelper_phone::EndReason::HungUpRemotely => RunEnd::RemoteHangup,
                    callhelper_phone::EndReason::HungUpLocally
                    | callhelper_phone::EndReason::CancelledLocally
                    | callhelper_phone::EndReason::Transferred => RunEnd::AgentHangup,
                    _ => RunEnd::CallFailed,
                };
                let no_answer = matches!(
                    reason,
                    callhelper_phone::EndReason::NoAnswer | callhelper_phone::EndReason::Busy
                ) && !summary.answered;
                // The run of this call ends where it stopped, stored before anything shows.
                let run_of_call = st.run.as_ref().is_some_and(|r| r.call == Some(call.0));
                if run_of_call {
                    let outcome = no_answer.then(|| "no_answer".to_owned());
                    if let Err(e) = st.end_run(run_end, outcome) {
                        log::error!("desktop: run not ended ({})", e.code);
                        st.notices.push(e.message);
                    }
                    out.push(DeskEvent::Run { run: st.run_view() });
                }
                let run_outcome = st
                    .run
                    .as_ref()
                    .filter(|r| r.call == Some(call.0))
                    .and_then(|r| r.run.run().record().outcome)
                    .map(|o| o.as_str().to_owned());
                let Some(mut c) = st.calls.remove(&call.0) else {
                    return;
                };
                c.view.phase = CallPhase::Ended;
                c.view.ended = text.or_else(|| {
                    Some(if summary.answered {
                        Text::new("Call ended", "Звонок завершён")
                    } else {
                        Text::new("Call not connected", "Звонок не состоялся")
                    })
                });
                c.view.recording = false;
                if let (Some(id), Ok((store, s))) = (c.stored, st.ready()) {
                    let q = summary.quality;
                    let end =
                        CallEnd {
                            answered_at: c.view.answered_at.map(Timestamp),
                            ended_at: now(),
                            recording_path: summary
                                .recording
                                .as_ref()
                                .map(|p| Pii::new(p.display().to_string())),
                            quality: StoredQuality {
                                jitter_ms: (q.samples > 0).then_some(f64::from(q.jitter_ms_avg)),
                                loss_pct: (q.samples > 0).then_some(f64::from(q.loss_percent)),
                                rtt_ms: q.rtt_ms_avg.map(f64::from),
                                mos: (q.samples > 0).then_some(f64::from(q.mos_avg)),
                            },
                            outcome: Some(run_outcome.unwrap_or_else(|| {
                                call_outcome(reason, summary.answered).to_owned()
                            })),
                        };
                    if let Err(e) = store.finish_call(s, id, &end) {
                        log::error!("desktop: call {} not stored ({})", id.0, e.code());
                    }
                }
                log::info!("desktop: call {} ended", call.0);
                out.push(DeskEvent::Call { call: c.view });
            }
            Event::SoundCheck {
                kind,
                device,
                running,
                end,
            } => out.push(DeskEvent::SoundTest {
                test: match kind {
                    callhelper_phone::SoundCheckKind::Microphone => SoundTest::Microphone,
                    _ => SoundTest::Speaker,
                },
                running,
                device,
                ended: end.map(|e| match e {
                    callhelper_phone::SoundCheckEnd::Stopped => Text::new("Stopped", "Остановлено"),
                    callhelper_phone::SoundCheckEnd::TimeLimit => {
                        Text::new("Finished", "Завершено")
                    }
                    _ => Text::new(
                        "The device stopped delivering sound",
                        "Устройство перестало передавать звук",
                    ),
                }),
            }),
            Event::SoundLevel { level } => out.push(DeskEvent::SoundLevel {
                rms_dbfs: level.rms_dbfs,
                peak_dbfs: level.peak_dbfs,
            }),
            ref ev @ (Event::Warning { .. } | Event::Device(_) | Event::Network { .. }) => {
                if let Some(text) = crate::phone::explain(ev) {
                    out.push(DeskEvent::Notice { text });
                }
            }
            _ => {}
        }
    }

    // ----- history and contacts --------------------------------------------------------

    /// Calls (newest first) with the runs they carried, filtered by `query` (a name, a
    /// number, an outcome or a script).
    pub fn history(&self, query: &str) -> Result<Vec<HistoryEntry>, Error> {
        let st = self.state();
        let (store, s) = st.ready()?;
        let q = query.trim().to_lowercase();
        let calls = store.recent_calls(s, 500)?;
        let mut runs_by_contact: BTreeMap<i64, Vec<callhelper_store::runs::StoredRun>> =
            BTreeMap::new();
        let mut names: BTreeMap<i64, String> = BTreeMap::new();
        let mut out = Vec::new();
        for c in calls {
            let (name, run) = match c.contact {
                Some(cid) => {
                    if let std::collections::btree_map::Entry::Vacant(v) = names.entry(cid.0) {
                        v.insert(
                            store
                                .contact(s, cid)
                                .map(|x| x.name.expose().clone())
                                .unwrap_or_default(),
                        );
                    }
                    let runs = match runs_by_contact.entry(cid.0) {
                        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            v.insert(store.runs_of_contact(s, cid).unwrap_or_default())
                        }
                    };
                    let run = runs
                        .iter()
                        .rev()
                        .find(|r| r.call == Some(c.id))
                        .map(summary);
                    (Some(names[&cid.0].clone()).filter(|n| !n.is_empty()), run)
                }
                None => (None, None),
            };
            let entry = HistoryEntry {
                call: Some(c.id.0),
                incoming: c.direction == Direction::Inbound,
                number: c.remote_number.expose().clone(),
                name,
                started_at: c.started_at.0,
                talk_s: match (c.answered_at, c.ended_at) {
                    (Some(a), Some(e)) => Some((e.0 - a.0).max(0) / 1000),
                    _ => None,
                },
                outcome: c.outcome.clone(),
                run,
            };
            if q.is_empty() || matches_query(&entry, &q) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// Contacts whose name, number or e-mail contains `query`.
    pub fn contacts(&self, query: &str) -> Result<Vec<ContactView>, Error> {
        let st = self.state();
        let (store, s) = st.ready()?;
        let found = store.search_contacts(s, query, 200)?;
        Ok(found.iter().map(|c| st.contact_view(c)).collect())
    }

    /// Block a person (no calls, no sync, no export) or unblock them. Managers only.
    pub fn set_blocked(&self, contact: i64, blocked: bool) -> Result<ContactView, Error> {
        let mut st = self.state();
        let s = st.session_for(Area::Manager)?;
        let store = st.ready()?.0.clone();
        if blocked {
            store.block(&s, ContactId(contact))?;
        } else {
            store.unblock(&s, ContactId(contact))?;
        }
        log::info!("desktop: contact {contact} blocked={blocked}");
        let c = store.contact(&s, ContactId(contact))?;
        Ok(st.contact_view(&c))
    }

    /// Record consent given or withdrawn, entered by the agent.
    pub fn record_consent(
        &self,
        contact: i64,
        given: bool,
        purpose: &str,
    ) -> Result<ContactView, Error> {
        let st = self.state();
        let (store, s) = st.ready()?;
        let method = match &st.run {
            Some(on) if on.run.run().context().contact.contains_key("phone") => {
                let r = on.run.run();
                ConsentMethod::Script {
                    script_id: r.program().script().id.clone(),
                    script_version: r.program().script().version,
                    step: r.current().id.clone(),
                    run: Some(on.run.id()),
                }
            }
            _ => ConsentMethod::Manual,
        };
        store.record_consent(
            s,
            &NewConsent {
                contact: ContactId(contact),
                given,
                purpose: purpose.to_owned(),
                at: now(),
                method,
            },
        )?;
        let c = store.contact(s, ContactId(contact))?;
        Ok(st.contact_view(&c))
    }

    // ----- settings ----------------------------------------------------------------------

    fn account_views(&self, st: &State) -> Vec<AccountView> {
        let settings = PhoneSettings::load(&self.shared.data).unwrap_or_default();
        settings
            .accounts
            .iter()
            .map(|a| {
                let (reg, problem) = st
                    .registrations
                    .get(&a.name)
                    .cloned()
                    .unwrap_or_else(|| ("none".into(), None));
                AccountView {
                    name: a.name.clone(),
                    username: a.username.clone(),
                    domain: a.domain.clone(),
                    registrar: a.registrar.clone(),
                    transport: line::transport_name(a.transport).into(),
                    has_password: !a.password.expose().is_empty(),
                    registration: reg,
                    problem,
                }
            })
            .collect()
    }

    /// The settings page (administrators; the agent's own preferences are in it too).
    pub fn settings(&self) -> Result<SettingsView, Error> {
        let mut st = self.state();
        let admin = st.session_for(Area::Admin)?;
        let store = st.ready()?.0.clone();
        let crm = match crate::crm::status(&self.shared.data, &store, &admin, 1) {
            Ok(c) => {
                let conn = crate::crm::connection(&self.shared.data).ok().flatten();
                CrmView {
                    kind: c.crm.map(|k| k.id().to_owned()),
                    url: conn.map(|c| c.url),
                    queued: c.queued,
                    sent: c.sent,
                    failed: c.failed,
                    last_error: c.items.first().and_then(|i| i.last_error.clone()),
                }
            }
            Err(e) => CrmView {
                kind: None,
                url: None,
                queued: 0,
                sent: 0,
                failed: 0,
                last_error: Some(e.message),
            },
        };
        st.licence = licence_view(&self.shared.data);
        Ok(SettingsView {
            accounts: self.account_views(&st),
            crm,
            licence: st.licence.clone(),
            retention_days: store.retention_days()?,
            record_calls: st.settings.record_calls,
            lang: st.lang(),
        })
    }

    /// Add or change a SIP account (administrators). Takes effect at once.
    pub fn save_account(&self, input: AccountInput) -> Result<Vec<AccountView>, Error> {
        let mut st = self.state();
        st.session_for(Area::Admin)?;
        let name = input.name.trim().to_owned();
        if name.is_empty() || input.username.trim().is_empty() || input.domain.trim().is_empty() {
            return Err(Error::new(
                "phone.invalid_account",
                Text::new(
                    "An account needs a name, a user and a domain.",
                    "Учётной записи нужны название, пользователь и домен.",
                ),
            ));
        }
        let mut doc = self.phone_json()?;
        let accounts = doc
            .as_object_mut()
            .expect("phone.json is an object")
            .entry("accounts")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        let list = accounts.as_array_mut().ok_or_else(bad_phone_json)?;
        let old = list
            .iter()
            .position(|a| a.get("name").and_then(|n| n.as_str()) == Some(&name));
        let mut entry = old
            .map(|i| list[i].clone())
            .unwrap_or_else(|| serde_json::json!({}));
        let obj = entry.as_object_mut().ok_or_else(bad_phone_json)?;
        obj.insert("name".into(), name.clone().into());
        obj.insert("username".into(), input.username.trim().into());
        obj.insert("domain".into(), input.domain.trim().into());
        if !input.password.is_empty() {
            obj.insert("password".into(), input.password.clone().into());
        }
        if input.registrar.trim().is_empty() {
            obj.remove("registrar");
        } else {
            obj.insert("registrar".into(), input.registrar.trim().into());
        }
        obj.insert("transport".into(), input.transport.trim().into());
        match old {
            Some(i) => list[i] = entry,
            None => list.push(entry),
        }
        let settings = self.write_phone_json(&doc)?;
        let account = settings.account(&name)?.clone();
        if let Ok(line) = st.line() {
            if !st.licence.demo {
                let n = name.clone();
                line.run(move |e| {
                    let _ = e.phone.remove_account(&n);
                    e.phone.add_account(account)
                })?
                .map_err(command_error)?;
            }
        }
        st.registrations.remove(&name);
        log::info!("desktop: SIP account saved");
        Ok(self.account_views(&st))
    }

    /// Remove a SIP account (administrators).
    pub fn remove_account(&self, name: &str) -> Result<Vec<AccountView>, Error> {
        let mut st = self.state();
        st.session_for(Area::Admin)?;
        let mut doc = self.phone_json()?;
        if let Some(list) = doc.get_mut("accounts").and_then(|a| a.as_array_mut()) {
            list.retain(|a| a.get("name").and_then(|n| n.as_str()) != Some(name));
        }
        self.write_phone_json(&doc)?;
        if let Ok(line) = st.line() {
            let n = name.to_owned();
            let _ = line.run(move |e| e.phone.remove_account(&n));
        }
        st.registrations.remove(name);
        Ok(self.account_views(&st))
    }

    fn phone_json(&self) -> Result<serde_json::Value, Error> {
        let path = self
            .shared
            .data
            .part("phone")?
            .join(crate::phone::SETTINGS_FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|_| bad_phone_json()),
            Err(_) => Ok(serde_json::json!({})),
        }
    }

    fn write_phone_json(&self, doc: &serde_json::Value) -> Result<PhoneSettings, Error> {
        let path = self
            .shared
            .data
            .part("phone")?
            .join(crate::phone::SETTINGS_FILE);
        let text = serde_json::to_string_pretty(doc).expect("JSON");
        // Checked with the phone's own reader before it replaces the file.
        let settings = PhoneSettings::parse(&text, &path)?;
        setup::write_atomic(&path, text.as_bytes())?;
        Ok(settings)
    }

    /// The audio devices present and the agent's ranked choice. Any signed-in user.
    pub fn audio(&self) -> Result<AudioView, Error> {
        let st = self.state();
        st.ready()?;
        let phone = PhoneSettings::load(&self.shared.data)?;
        let devices = match st.line() {
            Ok(l) => l
                .run(|e| e.phone.devices())?
                .map_err(command_error)?
                .into_iter()
                .map(|d| DeviceView {
                    id: d.id,
                    name: d.name,
                    capture: d.can_capture,
                    playback: d.can_play,
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        Ok(AudioView {
            devices,
            choice: DeviceChoice {
                capture: phone.devices.capture.clone(),
                playback: phone.devices.playback.clone(),
                ringer: phone.devices.ringer.clone(),
            },
        })
    }

    /// Choose audio devices (ranked); takes effect at once. Any signed-in user.
    pub fn set_devices(&self, choice: DeviceChoice) -> Result<(), Error> {
        let st = self.state();
        st.ready()?;
        let mut doc = self.phone_json()?;
        doc.as_object_mut().ok_or_else(bad_phone_json)?.insert(
            "devices".into(),
            serde_json::to_value(&choice).expect("JSON"),
        );
        self.write_phone_json(&doc)?;
        if let Ok(line) = st.line() {
            let prefs = DevicePreferences {
                capture: choice.capture,
                playback: choice.playback,
                ringer: choice.ringer,
            };
            line.run(move |e| e.phone.set_device_preferences(prefs))?
                .map_err(command_error)?;
        }
        Ok(())
    }

    /// Start the microphone test (its level arrives as [`DeskEvent::SoundLevel`]) or the
    /// speaker test (a tone) on `device`, or on the device in use when `None`; either
    /// stops by itself after [`SOUND_TEST_LASTS`] or with [`Workspace::stop_sound_test`].
    /// Refused during a call. Any signed-in user.
    pub fn start_sound_test(&self, test: SoundTest, device: Option<String>) -> Result<(), Error> {
        let st = self.state();
        st.ready()?;
        if !st.calls.is_empty() {
            return Err(Error::new(
                "desk.sound_test_in_call",
                Text::new(
                    "The sound test is not available during a call.",
                    "Проверка звука недоступна во время звонка.",
                ),
            ));
        }
        let check = callhelper_phone::SoundCheck {
            kind: match test {
                SoundTest::Microphone => callhelper_phone::SoundCheckKind::Microphone,
                SoundTest::Speaker => callhelper_phone::SoundCheckKind::Speaker,
            },
            device: device.filter(|d| !d.trim().is_empty()),
            limit: match test {
                SoundTest::Microphone => SOUND_TEST_LASTS,
                SoundTest::Speaker => SPEAKER_TEST_LASTS,
            },
        };
        st.line()?
            .run(move |e| e.phone.start_sound_check(check))?
            .map_err(command_error)
    }

    /// Stop the sound test under way, if any. Any signed-in user.
    pub fn stop_sound_test(&self) -> Result<(), Error> {
        let st = self.state();
        st.ready()?;
        match st.line() {
            Ok(line) => line
                .run(|e| e.phone.stop_sound_check())?
                .map_err(command_error),
            Err(_) => Ok(()),
        }
    }

    /// Set the retention period in days (`None` or 0: keep). Administrators.
    pub fn set_retention(&self, days: Option<u32>) -> Result<(), Error> {
        let mut st = self.state();
        let s = st.session_for(Area::Admin)?;
        let store = st.ready()?.0.clone();
        store.set_setting(&s, "retention_days", &days.unwrap_or(0).to_string())?;
        Ok(())
    }

    /// Record calls from the answer, or not. Administrators.
    pub fn set_record_calls(&self, on: bool) -> Result<(), Error> {
        let mut st = self.state();
        st.session_for(Area::Admin)?;
        st.settings.record_calls = on;
        st.settings.save(&self.shared.data)
    }

    /// Activate a licence key (administrators). The phone restarts to leave demo mode.
    pub fn activate_licence(&self, key: &str) -> Result<LicenceView, Error> {
        self.change_licence(|data| crate::licence::activate(data, key, None).map(drop))
    }

    /// Change the licence as an administrator, then show where it stands.
    fn change_licence(
        &self,
        change: impl FnOnce(&DataDir) -> Result<(), Error>,
    ) -> Result<LicenceView, Error> {
        let mut st = self.state();
        st.session_for(Area::Admin)?;
        change(&self.shared.data)?;
        st.licence = licence_view(&self.shared.data);
        Ok(st.licence.clone())
    }

    /// Free this computer's seat and go back to demo mode (administrators). With
    /// `forget`, an unreachable licence server does not stop it: the seat then frees
    /// itself when its lease ends.
    pub fn deactivate_licence(&self, forget: bool) -> Result<LicenceView, Error> {
        self.change_licence(|data| crate::licence::deactivate(data, None, forget).map(drop))
    }

    /// Connect a CRM (administrators): checked with the CRM before it is saved. The
    /// mappings of an earlier connection to the same CRM are kept; delivery and
    /// click-to-call switch to it at once.
    pub fn crm_connect(&self, input: CrmConnectInput) -> Result<SettingsView, Error> {
        let data = &self.shared.data;
        let lang = {
            let mut st = self.state();
            st.session_for(Area::Admin)?;
            st.lang()
        };
        let kind = match input.kind.as_str() {
            "amocrm" => crate::crm::CrmKind::AmoCrm,
            "bitrix24" => crate::crm::CrmKind::Bitrix24,
            "webhook" => crate::crm::CrmKind::Webhook,
            other => {
                return Err(Error::new(
                    "crm.settings",
                    text!("unknown CRM {other:?}: choose amoCRM, Bitrix24 or a webhook";
                          "неизвестная CRM {other:?}: выберите amoCRM, Битрикс24 или вебхук"),
                ));
            }
        };
        let mut conn = crate::crm::Connection::new(kind, input.url.trim());
        if let Some(old) = crate::crm::connection(data)?.filter(|o| o.crm == kind) {
            conn.mappings = old.mappings;
            conn.dial_port = old.dial_port;
        }
        conn.lang = match lang {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
        .to_owned();
        // The CRM is asked without the workspace locked: the rest of the app goes on.
        crate::crm::connect(
            data,
            &conn,
            crate::crm::Secret::new(input.secret.trim()),
            None,
        )?;
        {
            let mut st = self.state();
            // Free the click-to-call port before listening again.
            st.dial_endpoint = None;
            if let Some(bg) = &st.background {
                bg.nudge();
            }
        }
        let dial = self.start_click_to_call();
        self.state().dial_endpoint = dial;
        self.settings()
    }

    /// What the mapping editor works on: the script in `file` and the CRM connection
    /// (administrators).
    fn mapping_parts(&self, file: &str) -> Result<(Arc<Program>, crate::crm::Connection), Error> {
        let program = {
            let mut st = self.state();
            st.session_for(Area::Admin)?;
            st.program(file)?
        };
        Ok((program, crate::crm::require_connection(&self.shared.data)?))
    }

    /// The CRM mapping of the script in `file` (administrators).
    pub fn crm_mapping(&self, file: &str) -> Result<MappingView, Error> {
        let (program, conn) = self.mapping_parts(file)?;
        let data = &self.shared.data;
        let script = program.script();
        let rules = conn
            .mappings
            .get(&script.id)
            .map(|m| m.rules.clone())
            .unwrap_or_default();
        let crm_fields = crate::crm::crm_fields(data)?
            .into_iter()
            .map(|f| CrmFieldView {
                id: f.id,
                name: f.name,
            })
            .collect();
        Ok(MappingView {
            file: file.to_owned(),
            script: script.id.clone(),
            fields: script
                .fields
                .iter()
                .map(|f| MappedField {
                    field: f.id.clone(),
                    label: f.label.clone(),
                    crm_field: rules
                        .iter()
                        .find(|r| r.field == f.id)
                        .map(|r| r.crm_field.clone()),
                })
                .collect(),
            crm_fields,
            problems: crate::crm::check_mapping(data, script)?,
        })
    }

    /// Save the CRM mapping of the script in `file` (administrators). It is checked
    /// against the script and the CRM's field list first, and refused with every problem
    /// named when it does not fit.
    pub fn save_crm_mapping(
        &self,
        file: &str,
        fields: Vec<MappedField>,
    ) -> Result<MappingView, Error> {
        let (program, mut conn) = self.mapping_parts(file)?;
        let data = &self.shared.data;
        let script = program.script();
        let rules: Vec<crate::crm::FieldRule> = fields
            .into_iter()
            .filter_map(|f| {
                let crm_field = f.crm_field?.trim().to_owned();
                (!crm_field.is_empty()).then_some(crate::crm::FieldRule {
                    field: f.field,
                    crm_field,
                })
            })
            .collect();
        let map = crate::crm::FieldMap { rules };
        let problems = crate::crm::check_field_map(data, &conn, script, &map)?;
        if !problems.is_empty() {
            let en: Vec<&str> = problems.iter().map(|p| p.en.as_str()).collect();
            let ru: Vec<&str> = problems.iter().map(|p| p.ru.as_str()).collect();
            return Err(Error::new(
                "crm.mapping",
                text!("the mapping was not saved: {}", en.join("; "); "соответствие полей не сохранено: {}", ru.join("; ")),
            ));
        }
        conn.mappings.insert(script.id.clone(), map);
        crate::crm::save_connection(data, &conn)?;
        self.crm_mapping(file)
    }

    /// Send everything the CRM has not accepted again now. Administrators.
    pub fn crm_retry(&self) -> Result<usize, Error> {
        let mut st = self.state();
        let s = st.session_for(Area::Admin)?;
        let store = st.ready()?.0.clone();
        let n = crate::crm::retry(&store, &s, None)?;
        if let Some(bg) = &st.background {
            bg.nudge();
        }
        Ok(n)
    }

    /// Leave demo mode: from now on everyone signs in (administrators).
    pub fn leave_demo(&self) -> Result<AppState, Error> {
        let mut st = self.state();
        st.session_for(Area::Admin)?;
        st.settings.demo = None;
        st.settings.save(&self.shared.data)?;
        st.agent = None;
        st.elevated = None;
        st.phase = Phase::SignIn;
        Ok(st.app_state(&self.shared.data))
    }
}

fn bad_phone_json() -> Error {
    Error::new(
        "phone.settings_invalid",
        Text::new(
            "phone/phone.json is not a JSON object; fix or remove it",
            "phone/phone.json — не объект JSON; исправьте или удалите его",
        ),
    )
}

fn summary(r: &callhelper_store::runs::StoredRun) -> RunSummary {
    RunSummary {
        id: r.id.0,
        script: format!("{} v{}", r.script_id, r.script_version),
        finished: r.state == callhelper_store::runs::RunState::Finished,
        outcome: r.outcome.clone(),
        stopped_at: r.record.as_ref().and_then(|x| x.ended_at_step.clone()),
        reason: r
            .record
            .as_ref()
            .and_then(|x| x.end_reason)
            .and_then(|e| serde_json::to_value(e).ok())
            .and_then(|v| v.as_str().map(str::to_owned)),
        record: r.record.clone(),
    }
}

fn matches_query(e: &HistoryEntry, q: &str) -> bool {
    let has = |s: &str| s.to_lowercase().contains(q);
    has(&e.number)
        || e.name.as_deref().is_some_and(has)
        || e.outcome.as_deref().is_some_and(has)
        || e.run
            .as_ref()
            .is_some_and(|r| has(&r.script) || r.outcome.as_deref().is_some_and(has))
}

/// The number or address in a `tel:`, `sip:`, `sips:` or `callto:` link.
pub fn parse_link(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once(':')?;
    let rest = rest.trim_start_matches("//");
    let rest = percent_decode(rest.split(['?', '#']).next().unwrap_or(""));
    let rest = rest.trim();
    if rest.is_empty() {
        return None;
    }
    match scheme.to_ascii_lowercase().as_str() {
        "tel" | "callto" => Some(rest.split(';').next().unwrap_or("").to_owned()),
        "sip" | "sips" => Some(format!("{}:{rest}", scheme.to_ascii_lowercase())),
        _ => None,
    }
    .filter(|n| !n.is_empty())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links() {
        assert_eq!(
            parse_link("tel:+7-495-000-00-00").as_deref(),
            Some("+7-495-000-00-00")
        );
        assert_eq!(
            parse_link("tel:+74950000000;ext=12").as_deref(),
            Some("+74950000000")
        );
        assert_eq!(
            parse_link("callto://+74950000000").as_deref(),
            Some("+74950000000")
        );
        assert_eq!(parse_link("callto:%2B7%20495").as_deref(), Some("+7 495"));
        assert_eq!(
            parse_link("sip:1001@pbx.example.com").as_deref(),
            Some("sip:1001@pbx.example.com")
        );
        assert_eq!(parse_link("http://example.com"), None);
        assert_eq!(parse_link("tel:"), None);
    }

    pub(super) fn workspace() -> (tempfile::TempDir, Workspace, Arc<Mutex<Vec<DeskEvent>>>) {
        workspace_in(tempfile::tempdir().unwrap())
    }

    fn workspace_in(
        dir: tempfile::TempDir,
    ) -> (tempfile::TempDir, Workspace, Arc<Mutex<Vec<DeskEvent>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let ws = Workspace::start_with_key(
            DataDir::at(dir.path()),
            Arc::new(move |e| sink.lock().unwrap().push(e)),
            KeyChoice::Passphrase("a long test passphrase".into()),
        );
        (dir, ws, events)
    }

    /// POST a click-to-call request; returns the HTTP status.
    fn click_to_call(port: u16, token: Option<&str>, phone: &str) -> u16 {
        use std::io::{Read, Write};
        let body = format!("{{\"phone\":\"{phone}\",\"crm\":\"amocrm\"}}");
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "POST /dial HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {answer:?}"))
    }

    #[test]
    fn a_crm_card_dials_through_click_to_call() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::at(dir.path());
        let _crm = crate::crm::tests::connect_webhook(&data);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut conn = crate::crm::connection(&data).unwrap().unwrap();
        conn.dial_port = Some(port);
        crate::crm::save_connection(&data, &conn).unwrap();
        let token = crate::crm::dial_token(&data).unwrap();
        let (_dir, ws, _) = workspace_in(dir);
        assert_eq!(ws.app_state().phase, Phase::Ready);

        assert_eq!(click_to_call(port, None, "+74951234567"), 401);
        assert_eq!(click_to_call(port, Some("wrong"), "+74951234567"), 401);
        assert!(ws.app_state().calls.is_empty());
        assert_eq!(
            click_to_call(port, Some(token.expose()), "+74951234567"),
            202
        );
        // In demo mode the call goes to the demo line.
        let calls = ws.app_state().calls;
        assert_eq!(calls.len(), 1, "{calls:?}");
        ws.hang_up(calls[0].id).unwrap();
    }

    #[test]
    fn administrators_connect_a_crm_map_fields_and_manage_the_licence() {
        use callhelper_crm_fakes::{WebhookConfig, WebhookServer};
        let (_dir, ws, _) = workspace();
        let server = WebhookServer::start(WebhookConfig::default()).unwrap();
        let input = CrmConnectInput {
            kind: "webhook".into(),
            url: server.url(),
            secret: WebhookConfig::default().secret,
        };
        // Agents cannot; the administrator's password opens the area.
        assert_eq!(
            ws.crm_connect(input.clone()).unwrap_err().code,
            "desk.needs_admin"
        );
        ws.elevate(Area::Admin, DEMO_ADMIN, DEMO_ADMIN_PASSWORD)
            .unwrap();
        let wrong = CrmConnectInput {
            secret: "not the secret".into(),
            ..input.clone()
        };
        assert!(ws.crm_connect(wrong).is_err(), "checked before it is saved");
        assert_eq!(ws.settings().unwrap().crm.kind, None);
        let settings = ws.crm_connect(input).unwrap();
        assert_eq!(settings.crm.kind.as_deref(), Some("webhook"));

        let file = "b2b-cold-call.en.yaml";
        let map = ws.crm_mapping(file).unwrap();
        assert!(map.crm_fields.is_empty(), "a webhook takes any key");
        assert!(map.fields.iter().all(|f| f.crm_field.is_none()));
        let mut fields = map.fields.clone();
        fields[0].crm_field = Some("lead_name".into());
        let saved = ws.save_crm_mapping(file, fields.clone()).unwrap();
        assert_eq!(saved.fields[0].crm_field.as_deref(), Some("lead_name"));
        assert!(saved.problems.is_empty(), "{:?}", saved.problems);
        // A field the script does not have is refused, and the saved mapping stays.
        fields.push(MappedField {
            field: "no_such_field".into(),
            label: String::new(),
            crm_field: Some("x".into()),
        });
        let e = ws.save_crm_mapping(file, fields).unwrap_err();
        assert!(e.message.en.contains("no_such_field"), "{:?}", e.message);
        let kept = ws.crm_mapping(file).unwrap();
        assert_eq!(kept.fields[0].crm_field.as_deref(), Some("lead_name"));

        // No licence here: deactivating says so, and demo mode stays.
        match ws.deactivate_licence(true) {
            Ok(view) => assert!(view.demo),
            Err(e) => assert!(!e.message.en.is_empty()),
        }
        assert!(ws.app_state().licence.demo);
    }

    #[test]
    fn the_sound_test_names_a_device_that_is_not_there_and_stops_quietly() {
        let (_dir, ws, _) = workspace();
        let e = ws
            .start_sound_test(SoundTest::Microphone, Some("no such microphone".into()))
            .unwrap_err();
        assert_eq!(e.code, "phone.no_such_device", "{:?}", e.message);
        assert!(e.message.ru.contains("no such microphone"));
        ws.stop_sound_test().unwrap();
    }

    #[test]
    fn first_start_is_a_ready_demo_with_scripts_contacts_and_guarded_areas() {
        let (_dir, ws, _) = workspace();
        let st = ws.app_state();
        assert_eq!(st.phase, Phase::Ready, "{:?}", st.phase);
        assert_eq!(st.agent.as_ref().unwrap().role, RoleView::Agent);
        assert!(st.demo.is_some());
        assert!(st.licence.demo);
        let scripts = ws.scripts().unwrap();
        assert_eq!(scripts.len(), 10);
        assert!(scripts.iter().all(|s| s.ok));
        let found = ws.contacts("Смирнова").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].company.as_deref(), Some("ООО «Ромашка»"));
        assert!(found[0].consent.as_ref().unwrap().given);
        let blocked = ws.contacts("Кузнецов").unwrap();
        assert!(blocked[0].blocked);
        // An agent cannot unblock; an administrator's password opens the area.
        let e = ws.set_blocked(blocked[0].id, false).unwrap_err();
        assert_eq!(e.code, "desk.needs_manager");
        assert_eq!(ws.settings().unwrap_err().code, "desk.needs_admin");
        assert!(
            ws.elevate(Area::Admin, DEMO_ADMIN, "wrong password")
                .is_err()
        );
        ws.elevate(Area::Admin, DEMO_ADMIN, DEMO_ADMIN_PASSWORD)
            .unwrap();
        assert!(!ws.set_blocked(blocked[0].id, false).unwrap().blocked);
        let settings = ws.settings().unwrap();
        assert!(settings.accounts.is_empty());
        assert!(settings.licence.demo);
    }

    #[test]
    fn a_run_on_screen_is_stored_before_each_step_shows_and_ends_where_it_stopped() {
        let (dir, ws, _) = workspace();
        ws.choose_script("b2b-cold-call.en.yaml").unwrap();
        let run = ws.start_run("b2b-cold-call.en.yaml").unwrap();
        assert_eq!(run.view.step, "intro");
        assert_eq!(run.view.answers[0].key, "1");
        let run = ws.act(RunAction::Answer { key: "1".into() }).unwrap();
        assert_eq!(run.view.step, "lpr_intro");
        assert_eq!(run.path.len(), 2);
        assert_eq!(
            run.path[0].answer.as_deref(),
            Some("Put through / speaking to them")
        );
        let e = ws
            .act(RunAction::Set {
                field: "lpr_name".into(),
                input: "x".repeat(500),
            })
            .unwrap_err();
        assert_eq!(e.code, "run.refused");
        let run = ws.act(RunAction::Back).unwrap();
        assert_eq!(run.view.step, "intro");
        let run = ws
            .act(RunAction::End {
                outcome: Some("callback".into()),
                callback_at: Some("2030-01-02T10:00".into()),
            })
            .unwrap();
        assert!(run.view.finished.is_some());
        assert_eq!(run.callback_at.as_deref(), Some("2030-01-02T10:00"));
        assert!(run.ended.unwrap().en.contains("«Greeting»"));
        // What the screen showed is what the database holds.
        let id = callhelper_store::runs::RunId(run.id);
        drop(ws);
        let data = DataDir::at(dir.path());
        let store = data::open(
            &data,
            &KeyChoice::Passphrase("a long test passphrase".into()),
        )
        .unwrap();
        let admin = data::login(&store, DEMO_ADMIN, DEMO_ADMIN_PASSWORD).unwrap();
        let stored = store.run(&admin, id).unwrap();
        assert_eq!(stored.outcome.as_deref(), Some("callback"));
        assert_eq!(store.pending_callbacks(&admin).unwrap().len(), 1);
    }

    #[test]
    fn a_broken_script_is_listed_with_the_linters_message() {
        let (dir, ws, _) = workspace();
        std::fs::write(
            dir.path().join("scripts/broken.yaml"),
            "format: callhelper-script/1\nid: b\nname: B\nversion: 1\nlocale: en\nstart: a\nsteps:\n  - id: a\n    say: hi\n    next: nowhere\n",
        )
        .unwrap();
        let broken = ws
            .scripts()
            .unwrap()
            .into_iter()
            .find(|s| s.file == "broken.yaml")
            .unwrap();
        assert!(!broken.ok);
        assert!(
            broken
                .problems
                .iter()
                .any(|p| p.error && p.text.en == "broken.yaml:10:11: there is no step `nowhere`"),
            "{:?}",
            broken.problems
        );
        assert_eq!(
            ws.start_run("broken.yaml").unwrap_err().code,
            "script.invalid"
        );
        assert_eq!(
            ws.start_run("../x.yaml").unwrap_err().code,
            "script.not_in_folder"
        );
    }

    #[test]
    fn restarting_brings_an_interrupted_run_back() {
        let (dir, ws, _) = workspace();
        ws.start_run("b2b-cold-call.en.yaml").unwrap();
        ws.act(RunAction::Answer { key: "1".into() }).unwrap();
        drop(ws);
        let ws = Workspace::start_with_key(
            DataDir::at(dir.path()),
            Arc::new(|_| {}),
            KeyChoice::Passphrase("a long test passphrase".into()),
        );
        let st = ws.app_state();
        let run = st.run.expect("resumed");
        assert_eq!(run.view.step, "lpr_intro");
        assert_eq!(run.file, "b2b-cold-call.en.yaml");
        assert_eq!(st.notices.len(), 1);
    }
}
