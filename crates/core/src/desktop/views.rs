//! What the desktop's interface receives and sends: the transport types of the shell's
//! commands and events. Each derives `JsonSchema`, and the shell generates the interface's
//! TypeScript types from these schemas (`ui/src/lib/bindings.ts`), so the two sides cannot
//! drift apart silently.
//!
//! Personal data (names, numbers) travels here because the agent must see it; none of
//! these types is ever logged (their `Debug` is not used by the log lines of this module).

use callhelper_script::{Diagnostic, Lang, RunRecord, StepView, Text};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Error;

/// An error as the interface receives it: a stable code and the message in both
/// languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ErrorView {
    /// A stable code such as `store.blocked` or `desk.needs_password`.
    pub code: String,
    /// What happened and what to do.
    pub message: Text,
}

impl From<Error> for ErrorView {
    fn from(e: Error) -> ErrorView {
        ErrorView {
            code: e.code.to_owned(),
            message: e.message,
        }
    }
}

/// Where the start-up stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// The workspace is ready.
    Ready,
    /// The database is protected by a passphrase: ask for it (`first`: choose one for a
    /// new installation, because this computer has no keychain).
    Unlock {
        /// A new installation.
        first: bool,
    },
    /// Ask the agent to sign in.
    SignIn,
    /// Start-up failed; the error says why and what to do.
    Failed {
        /// Why.
        error: ErrorView,
    },
}

/// The agent's availability, shown in the tray and sent to incoming-call handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Takes calls.
    #[default]
    Available,
    /// Working on something else; incoming calls still ring.
    Busy,
    /// Incoming calls are declined as busy, without ringing.
    DoNotDisturb,
}

impl AgentStatus {
    /// The status as people read it.
    pub fn label(self) -> Text {
        match self {
            AgentStatus::Available => Text::new("Available", "Доступен"),
            AgentStatus::Busy => Text::new("Busy", "Занят"),
            AgentStatus::DoNotDisturb => Text::new("Do not disturb", "Не беспокоить"),
        }
    }

    /// Every status, in menu order.
    pub const ALL: [AgentStatus; 3] = [
        AgentStatus::Available,
        AgentStatus::Busy,
        AgentStatus::DoNotDisturb,
    ];
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleView {
    /// Agent.
    Agent,
    /// Manager.
    Manager,
    /// Administrator.
    Admin,
    /// Read-only support.
    Support,
}

impl From<callhelper_store::Role> for RoleView {
    fn from(r: callhelper_store::Role) -> RoleView {
        match r {
            callhelper_store::Role::Agent => RoleView::Agent,
            callhelper_store::Role::Manager => RoleView::Manager,
            callhelper_store::Role::Admin => RoleView::Admin,
            callhelper_store::Role::Support => RoleView::Support,
        }
    }
}

/// A password-guarded area of the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// Managers and administrators: blocking people, consent changes, everyone's history.
    Manager,
    /// Administrators: SIP accounts, CRM, licence, retention.
    Admin,
}

/// The signed-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AgentView {
    /// Login.
    pub login: String,
    /// Role.
    pub role: RoleView,
}

/// The licence, as the status line and the settings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LicenceView {
    /// Demo mode: only the demo line can be called.
    pub demo: bool,
    /// Work may go on (a licence is active or in its grace period).
    pub usable: bool,
    /// One paragraph on where the licence stands.
    pub text: Text,
}

/// The demo installation's facts for the newcomer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct DemoView {
    /// The administrator's login of the demo installation.
    pub admin_login: String,
    /// Its password (a demo installation holds sample data only; change it in Settings
    /// before real use).
    pub admin_password: String,
}

/// Global hotkeys (work while another window has the focus).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Hotkeys {
    /// Answer the ringing call.
    pub answer: String,
    /// Hang up the current call.
    pub hang_up: String,
}

impl Default for Hotkeys {
    fn default() -> Hotkeys {
        Hotkeys {
            answer: "Ctrl+Alt+A".into(),
            hang_up: "Ctrl+Alt+H".into(),
        }
    }
}

/// Everything the interface needs at start and after a change of phase.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AppState {
    /// Where the start-up stands.
    pub phase: Phase,
    /// The interface language.
    pub lang: Lang,
    /// Set on a demo installation.
    pub demo: Option<DemoView>,
    /// The signed-in user (phase `ready`).
    pub agent: Option<AgentView>,
    /// The agent's availability.
    pub status: AgentStatus,
    /// The licence.
    pub licence: LicenceView,
    /// The data folder.
    pub data_dir: String,
    /// The scripts folder.
    pub scripts_dir: String,
    /// The global hotkeys.
    pub hotkeys: Hotkeys,
    /// The script chosen for the next call (a file name in the scripts folder).
    pub script: Option<String>,
    /// Calls in progress.
    pub calls: Vec<CallView>,
    /// The script run on screen.
    pub run: Option<RunView>,
    /// Runs that were interrupted (a crash, a closed window) and were resumed or could
    /// not be.
    pub notices: Vec<Text>,
}

/// A contact, as the dialer, the pop-up and the contacts page show it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ContactView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Phone (E.164).
    pub phone: String,
    /// E-mail.
    pub email: String,
    /// Company, when known.
    pub company: Option<String>,
    /// Blocked: no calls, no sync, no export until unblocked.
    pub blocked: bool,
    /// The latest consent record.
    pub consent: Option<ConsentView>,
}

/// A consent record.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ConsentView {
    /// Given or withdrawn.
    pub given: bool,
    /// What for.
    pub purpose: String,
    /// When (ISO 8601, UTC).
    pub at: String,
    /// How it was captured.
    pub method: Text,
}

/// The state of a call as the interface shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallPhase {
    /// Dialling.
    Dialing,
    /// Ringing (either way).
    Ringing,
    /// Ring-back tone or announcement before the answer.
    EarlyMedia,
    /// Talking.
    Connected,
    /// On hold.
    OnHold,
    /// Being transferred.
    Transferring,
    /// Over.
    Ended,
}

/// The live quality of a call, as a badge.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
pub struct QualityView {
    /// Estimated MOS, 1–4.5.
    pub mos: f32,
    /// Jitter, milliseconds.
    pub jitter_ms: f32,
    /// Packet loss, percent.
    pub loss_percent: f32,
    /// Round trip, milliseconds.
    pub rtt_ms: Option<f32>,
    /// `good` (MOS ≥ 4), `fair` (≥ 3.6), `poor`.
    pub grade: Grade,
}

/// A quality grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    /// Good.
    Good,
    /// Fair.
    Fair,
    /// Poor.
    Poor,
}

impl Grade {
    /// The grade of an estimated MOS.
    pub fn of(mos: f32) -> Grade {
        if mos >= 4.0 {
            Grade::Good
        } else if mos >= 3.6 {
            Grade::Fair
        } else {
            Grade::Poor
        }
    }
}

/// One call leg.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct CallView {
    /// The phone's id of the call.
    pub id: u64,
    /// `true` when the client called.
    pub incoming: bool,
    /// The number or address as dialled or received.
    pub number: String,
    /// The contact, when the number is known.
    pub contact: Option<ContactView>,
    /// The state.
    pub phase: CallPhase,
    /// Why it ended (once `ended`).
    pub ended: Option<Text>,
    /// When it began (milliseconds since the epoch).
    pub started_at: i64,
    /// When it was answered.
    pub answered_at: Option<i64>,
    /// Our microphone is muted.
    pub muted: bool,
    /// Being recorded.
    pub recording: bool,
    /// A recording file is set up for this call (the record button can work).
    pub can_record: bool,
    /// The latest quality sample.
    pub quality: Option<QualityView>,
    /// A problem worth showing (no audio, transfer failed...).
    pub warning: Option<Text>,
    /// Through the demo line.
    pub demo: bool,
}

impl CallView {
    /// A call that has just begun: nothing answered, muted, recorded or measured yet.
    pub fn new(id: u64, incoming: bool, number: String, phase: CallPhase) -> Self {
        Self {
            id,
            incoming,
            number,
            contact: None,
            phase,
            ended: None,
            started_at: callhelper_store::time::now().0,
            answered_at: None,
            muted: false,
            recording: false,
            can_record: false,
            quality: None,
            warning: None,
            demo: false,
        }
    }
}

/// One script in the scripts folder.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ScriptEntry {
    /// The file name.
    pub file: String,
    /// The script's id.
    pub id: Option<String>,
    /// The script's name.
    pub name: Option<String>,
    /// The script's version.
    pub version: Option<u32>,
    /// The script can be run (no errors).
    pub ok: bool,
    /// The linter's findings, each as `file:line:column: message`.
    pub problems: Vec<Problem>,
}

/// One linter finding.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Problem {
    /// An error (the script cannot run) or a warning.
    pub error: bool,
    /// `file:line:column: message`.
    pub text: Text,
}

impl Problem {
    /// A finding of the linter in `file`.
    pub fn of(file: &str, d: &Diagnostic) -> Problem {
        let at = format!("{file}:{}:{}", d.line, d.column);
        Problem {
            error: d.severity == callhelper_script::Severity::Error,
            text: Text::new(
                format!("{at}: {}", d.message.en),
                format!("{at}: {}", d.message.ru),
            ),
        }
    }
}

/// An outcome the agent can end a run with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct OutcomeChoice {
    /// Id.
    pub id: String,
    /// Label in the interface language.
    pub label: String,
}

/// One step of the path so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PathStep {
    /// The step's id.
    pub step: String,
    /// Its title.
    pub title: String,
    /// The objection it belongs to, by label.
    pub objection: Option<String>,
    /// The answer chosen there.
    pub answer: Option<String>,
}

/// The script run on screen.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RunView {
    /// The stored run's id.
    pub id: i64,
    /// The call it belongs to.
    pub call: Option<u64>,
    /// The script file.
    pub file: String,
    /// The script's name.
    pub script: String,
    /// The script's version.
    pub version: u32,
    /// The current step.
    pub view: StepView,
    /// The path so far.
    pub path: Vec<PathStep>,
    /// Outcomes to end the run with.
    pub outcomes: Vec<OutcomeChoice>,
    /// Notes written so far.
    pub notes: Vec<String>,
    /// Answers the script did not foresee, written down so far.
    pub unforeseen: Vec<String>,
    /// Once ended: where it stopped and why.
    pub ended: Option<Text>,
    /// The callback agreed, if any.
    pub callback_at: Option<String>,
}

/// Something the agent does in the script panel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunAction {
    /// Choose an answer (or open an objection) by hotkey or id.
    Answer {
        /// `1`…`9`, `F1`…, or an id.
        key: String,
    },
    /// Set a field from typed text (empty clears it).
    Set {
        /// The field.
        field: String,
        /// What was typed.
        input: String,
    },
    /// Continue from a step without answers.
    Continue,
    /// Go back one step.
    Back,
    /// Write down an answer the script does not foresee.
    Unforeseen {
        /// What the client said.
        text: String,
    },
    /// Add a note.
    Note {
        /// The note.
        text: String,
    },
    /// End the run now with an outcome (and a callback time for `callback`).
    End {
        /// The outcome's id.
        outcome: Option<String>,
        /// When to call back (`YYYY-MM-DDTHH:MM`).
        callback_at: Option<String>,
    },
}

/// One line of the history: a call, with the run it carried.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct HistoryEntry {
    /// The stored call's id (absent for a run without a call).
    pub call: Option<i64>,
    /// The client called.
    pub incoming: bool,
    /// The number.
    pub number: String,
    /// The contact's name.
    pub name: Option<String>,
    /// Began (ms since the epoch).
    pub started_at: i64,
    /// Talk time, seconds.
    pub talk_s: Option<i64>,
    /// The call's outcome (`answered`, `busy`, a script outcome...).
    pub outcome: Option<String>,
    /// The run, if a script was followed.
    pub run: Option<RunSummary>,
}

/// A stored run, in short.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RunSummary {
    /// Id.
    pub id: i64,
    /// The script's id and version.
    pub script: String,
    /// Finished or still open.
    pub finished: bool,
    /// The outcome.
    pub outcome: Option<String>,
    /// The step it ended at.
    pub stopped_at: Option<String>,
    /// Why it ended (`terminal`, `remote_hangup`...).
    pub reason: Option<String>,
    /// The record (finished runs).
    pub record: Option<RunRecord>,
}

/// A SIP account in the settings, with its live registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AccountView {
    /// Our name for it.
    pub name: String,
    /// User.
    pub username: String,
    /// Domain.
    pub domain: String,
    /// Registrar (`host[:port]`).
    pub registrar: Option<String>,
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
    /// A password is stored.
    pub has_password: bool,
    /// `none`, `progress`, `ok`, `cleared`, `failed`.
    pub registration: String,
    /// Why registration failed, when it did.
    pub problem: Option<Text>,
}

/// A SIP account as the settings form sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct AccountInput {
    /// Our name for it.
    pub name: String,
    /// User.
    pub username: String,
    /// Domain.
    pub domain: String,
    /// A new password (empty keeps the stored one).
    pub password: String,
    /// Registrar (`host[:port]`), empty for the domain.
    pub registrar: String,
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
}

/// An audio device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct DeviceView {
    /// The engine's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Can record.
    pub capture: bool,
    /// Can play.
    pub playback: bool,
}

/// Ranked device choices: the first present one is used.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct DeviceChoice {
    /// Microphones, best first.
    pub capture: Vec<String>,
    /// Call audio, best first.
    pub playback: Vec<String>,
    /// Ring tone, best first.
    pub ringer: Vec<String>,
}

/// The audio devices and the agent's ranked choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AudioView {
    /// Audio devices present now.
    pub devices: Vec<DeviceView>,
    /// The ranked choices.
    pub choice: DeviceChoice,
}

/// The settings' sound test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SoundTest {
    /// The microphone: its level is shown live.
    Microphone,
    /// The speaker: a test tone plays.
    Speaker,
}

/// The CRM connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct CrmView {
    /// `amocrm`, `bitrix24`, `webhook`, or none.
    pub kind: Option<String>,
    /// Its address.
    pub url: Option<String>,
    /// Results waiting to be sent.
    pub queued: u64,
    /// Sent.
    pub sent: u64,
    /// Given up until "retry now".
    pub failed: u64,
    /// The latest failure, in both languages.
    pub last_error: Option<Text>,
}

/// A CRM connection as the settings form sends it (OAuth is set up with `callhelper crm
/// connect`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct CrmConnectInput {
    /// `amocrm`, `bitrix24` or `webhook`.
    pub kind: String,
    /// amoCRM: the account's address; webhook: where to post; Bitrix24: unused.
    pub url: String,
    /// amoCRM: the long-lived token; Bitrix24: the inbound webhook URL; webhook: the
    /// shared signing secret.
    pub secret: String,
}

/// One script field in the mapping editor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MappedField {
    /// The script field's id.
    pub field: String,
    /// Its label, as the script gives it.
    pub label: String,
    /// The CRM field it goes to, if any.
    pub crm_field: Option<String>,
}

/// A field of the CRM, as the mapping editor offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct CrmFieldView {
    /// The CRM's id of the field.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// Which script field goes to which CRM field, for one script.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct MappingView {
    /// The script's file in the scripts folder.
    pub file: String,
    /// The script's id (mappings are kept by id).
    pub script: String,
    /// The script's fields, each with its CRM field.
    pub fields: Vec<MappedField>,
    /// The CRM's fields to choose from; empty for a webhook, which takes any key.
    pub crm_fields: Vec<CrmFieldView>,
    /// What is wrong with the saved mapping, if anything.
    pub problems: Vec<Text>,
}

/// The settings page.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SettingsView {
    /// SIP accounts.
    pub accounts: Vec<AccountView>,
    /// The CRM.
    pub crm: CrmView,
    /// The licence.
    pub licence: LicenceView,
    /// Records older than this many days are destroyed (none: kept).
    pub retention_days: Option<u32>,
    /// Record calls from the answer.
    pub record_calls: bool,
    /// The interface language.
    pub lang: Lang,
}

/// Something that happened, pushed to the interface.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeskEvent {
    /// A call changed (placed, ringing, answered, held, quality, ended...).
    Call {
        /// The call.
        call: CallView,
    },
    /// A call is ringing for the agent.
    Incoming {
        /// The call, with the contact looked up.
        call: CallView,
    },
    /// The run on screen changed without the agent (a hang-up ended it).
    Run {
        /// The run, or none.
        run: Option<RunView>,
    },
    /// A SIP account's registration changed.
    Registration {
        /// The account.
        account: AccountView,
    },
    /// The agent's status changed (from the tray).
    Status {
        /// The new status.
        status: AgentStatus,
    },
    /// A notice for the agent (a warning of the phone, a problem in the background).
    Notice {
        /// What.
        text: Text,
    },
    /// The sound test started or stopped.
    SoundTest {
        /// Which test.
        test: SoundTest,
        /// Running now.
        running: bool,
        /// The device tested (the system's default when none).
        device: Option<String>,
        /// Why it stopped, once it has.
        ended: Option<Text>,
    },
    /// The microphone's level during the microphone test, about ten times a second.
    SoundLevel {
        /// Root-mean-square level in dBFS (−96 is silence, 0 full scale).
        rms_dbfs: f32,
        /// The loudest sample in dBFS.
        peak_dbfs: f32,
    },
}
