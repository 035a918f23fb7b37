//! The command list: each command calls the workspace (`callhelper_core::desktop`) at
//! once. The `commands!` macro registers them with Tauri and records their signatures
//! for the generated TypeScript, so the list is written once.

use callhelper_core::Error;
use callhelper_core::data::store::export::{ExportSummary, Filter};
use callhelper_core::desktop::{
    AccountInput, AccountView, AgentStatus, AppState, Area, AudioView, CallView, ContactView,
    CrmConnectInput, DeviceChoice, ErrorView, ExportKind, HistoryEntry, LicenceView, MappedField,
    MappingView, Report, RunAction, RunView, ScriptEntry, SettingsView, SoundTest,
};
use callhelper_core::script::Lang;

use crate::Desk;
use crate::bindings::{Signature, schema};

macro_rules! commands {
    ($(
        $(#[doc = $doc:literal])*
        fn $name:ident($desk:ident $(, $arg:ident : $ty:ty)*) -> $ret:ty $body:block
    )*) => {
        $(
            $(#[doc = $doc])*
            #[tauri::command(async, rename_all = "snake_case")]
            pub fn $name(state: tauri::State<'_, Desk>, $($arg: $ty),*) -> Result<$ret, ErrorView> {
                fn body($desk: &Desk, $($arg: $ty),*) -> Result<$ret, Error> $body
                body(&state, $($arg),*).map_err(ErrorView::from)
            }
        )*

        /// Tauri's handler for every command.
        pub fn handler() -> impl Fn(tauri::ipc::Invoke) -> bool + Send + Sync + 'static {
            tauri::generate_handler![$($name),*]
        }

        /// Every command's signature, for the generated TypeScript.
        pub fn signatures(g: &mut schemars::SchemaGenerator) -> Vec<Signature> {
            vec![$(
                Signature {
                    name: stringify!($name),
                    doc: concat!($($doc, "\n"),*),
                    args: vec![$((stringify!($arg), schema::<$ty>(g))),*],
                    ret: schema::<$ret>(g),
                }
            ),*]
        }
    };
}

fn lang(code: &str) -> Result<Lang, Error> {
    Lang::parse(code).ok_or_else(|| {
        Error::new(
            "desk.unknown_language",
            callhelper_core::script::Text::new(
                "The interface speaks English (en) and Russian (ru).",
                "Интерфейс бывает на английском (en) и русском (ru).",
            ),
        )
    })
}

commands! {
    /// Everything the interface needs now (phase, agent, calls, the run on screen).
    fn app_state(d) -> AppState { Ok(d.ws().app_state()) }

    /// The interface has painted its first screen (cold-start measurement).
    fn ui_ready(d) -> () { d.ready(); Ok(()) }

    /// Give the database passphrase (or choose one on a computer without a keychain).
    fn unlock(d, passphrase: String) -> AppState { d.ws().unlock(&passphrase) }

    /// Sign in.
    fn sign_in(d, login: String, password: String) -> AppState { d.ws().sign_in(&login, &password) }

    /// Sign out.
    fn sign_out(d) -> AppState { Ok(d.ws().sign_out()) }

    /// Give a manager's or administrator's password for a guarded area.
    fn elevate(d, area: Area, login: String, password: String) -> () {
        d.ws().elevate(area, &login, &password)
    }

    /// Leave the guarded areas (forget the password given).
    fn drop_elevation(d) -> () { d.ws().drop_elevation(); Ok(()) }

    /// Change the interface language (`en`, `ru`).
    fn set_lang(d, lang: String) -> AppState {
        let st = d.ws().set_lang(self::lang(&lang)?)?;
        d.refresh_tray();
        Ok(st)
    }

    /// Change the agent's availability.
    fn set_status(d, status: AgentStatus) -> () { d.ws().set_status(status) }

    /// The scripts folder, linted.
    fn scripts(d) -> Vec<ScriptEntry> { d.ws().scripts() }

    /// Choose the script for the next calls.
    fn choose_script(d, file: String) -> () { d.ws().choose_script(&file) }

    /// Start a script on screen for the current call (or without one).
    fn start_run(d, file: String) -> RunView { d.ws().start_run(&file) }

    /// The run on screen.
    fn run(d) -> Option<RunView> { Ok(d.ws().run()) }

    /// Act in the script panel; stored before it returns.
    fn act(d, action: RunAction) -> RunView { d.ws().act(action) }

    /// Take a finished run off the screen.
    fn close_run(d) -> () { d.ws().close_run() }

    /// Place a call (a number, a SIP address, or `demo`), with a script.
    fn dial(d, number: String, script: Option<String>) -> CallView {
        d.ws().dial(&number, script.as_deref())
    }

    /// Answer a ringing call.
    fn answer(d, call: u64) -> () { d.ws().answer(call) }

    /// Turn a ringing call down.
    fn decline(d, call: u64) -> () { d.ws().decline(call) }

    /// Hang up.
    fn hang_up(d, call: u64) -> () { d.ws().hang_up(call) }

    /// Hold or resume.
    fn hold(d, call: u64, on: bool) -> () { d.ws().hold(call, on) }

    /// Mute or unmute the microphone.
    fn mute(d, call: u64, on: bool) -> CallView { d.ws().mute(call, on) }

    /// Send DTMF digits.
    fn dtmf(d, call: u64, digits: String) -> () { d.ws().dtmf(call, &digits) }

    /// Blind transfer to a number or address.
    fn transfer(d, call: u64, to: String) -> () { d.ws().transfer(call, &to) }

    /// Attended transfer: connect the client of `call` to the far end of `to`.
    fn transfer_attended(d, call: u64, to: u64) -> () { d.ws().transfer_attended(call, to) }

    /// Start or stop recording a call.
    fn record(d, call: u64, on: bool) -> () { d.ws().record(call, on) }

    /// Calls and runs, newest first, filtered by a search text.
    fn history(d, query: String) -> Vec<HistoryEntry> { d.ws().history(&query) }

    /// Contacts matching a search text.
    fn contacts(d, query: String) -> Vec<ContactView> { d.ws().contacts(&query) }

    /// Block or unblock a person (manager area).
    fn set_blocked(d, contact: i64, blocked: bool) -> ContactView {
        d.ws().set_blocked(contact, blocked)
    }

    /// Record consent given or withdrawn.
    fn record_consent(d, contact: i64, given: bool, purpose: String) -> ContactView {
        d.ws().record_consent(contact, given, &purpose)
    }

    /// The analytics of finished runs, per script version and step, with the steps'
    /// titles (manager area).
    fn report(d, filter: Filter) -> Report { d.ws().report(filter) }

    /// Where an export goes by default (the Documents folder, today's date).
    fn default_export_path(d, kind: ExportKind) -> String { Ok(d.ws().default_export_path(kind)) }

    /// Write the analytics or the runs a filter selects to a file (manager area).
    fn export_report(d, filter: Filter, kind: ExportKind, path: String) -> ExportSummary {
        d.ws().export_report(filter, kind, &path)
    }

    /// The settings page (admin area).
    fn settings(d) -> SettingsView { d.ws().settings() }

    /// Add or change a SIP account (admin area).
    fn save_account(d, account: AccountInput) -> Vec<AccountView> { d.ws().save_account(account) }

    /// Remove a SIP account (admin area).
    fn remove_account(d, name: String) -> Vec<AccountView> { d.ws().remove_account(&name) }

    /// The audio devices present and the ranked choice.
    fn audio(d) -> AudioView { d.ws().audio() }

    /// Choose audio devices, ranked.
    fn set_devices(d, choice: DeviceChoice) -> () { d.ws().set_devices(choice) }

    /// Start the microphone test (live level events) or the speaker test (a tone) on a
    /// device, or on the one in use when none is given.
    fn start_sound_test(d, test: SoundTest, device: Option<String>) -> () {
        d.ws().start_sound_test(test, device)
    }

    /// Stop the sound test under way.
    fn stop_sound_test(d) -> () { d.ws().stop_sound_test() }

    /// Set the retention period in days (admin area; none keeps records).
    fn set_retention(d, days: Option<u32>) -> () { d.ws().set_retention(days) }

    /// Record calls from the answer, or not (admin area).
    fn set_record_calls(d, on: bool) -> () { d.ws().set_record_calls(on) }

    /// Activate a licence key (admin area).
    fn activate_licence(d, key: String) -> LicenceView { d.ws().activate_licence(&key) }

    /// Free this computer's seat and go back to demo mode (admin area); with `forget`,
    /// even when the licence server cannot be reached.
    fn deactivate_licence(d, forget: bool) -> LicenceView { d.ws().deactivate_licence(forget) }

    /// Send what the CRM has not accepted again now (admin area).
    fn crm_retry(d) -> usize { d.ws().crm_retry() }

    /// Connect a CRM, checked with it before it is saved (admin area).
    fn crm_connect(d, input: CrmConnectInput) -> SettingsView { d.ws().crm_connect(input) }

    /// A script's CRM field mapping (admin area).
    fn crm_mapping(d, file: String) -> MappingView { d.ws().crm_mapping(&file) }

    /// Save a script's CRM field mapping, checked first (admin area).
    fn save_crm_mapping(d, file: String, fields: Vec<MappedField>) -> MappingView {
        d.ws().save_crm_mapping(&file, fields)
    }

    /// Leave demo mode: everyone signs in from now on (admin area).
    fn leave_demo(d) -> AppState { d.ws().leave_demo() }
}
