//! What can go wrong talking to a CRM, with a message a person can act on.

use callhelper_script::{Text, text};
use serde::{Deserialize, Serialize};

use crate::pace::FailureClass;

/// Which CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CrmKind {
    /// amoCRM (API v4).
    AmoCrm,
    /// Bitrix24 (REST).
    Bitrix24,
    /// Our signed JSON webhook.
    Webhook,
}

impl CrmKind {
    /// Its name for people.
    pub fn name(self) -> &'static str {
        match self {
            CrmKind::AmoCrm => "amoCRM",
            CrmKind::Bitrix24 => "Bitrix24",
            CrmKind::Webhook => "webhook",
        }
    }

    /// The id used in settings and on the command line.
    pub fn id(self) -> &'static str {
        match self {
            CrmKind::AmoCrm => "amocrm",
            CrmKind::Bitrix24 => "bitrix24",
            CrmKind::Webhook => "webhook",
        }
    }

    /// Read an id.
    pub fn parse(s: &str) -> Option<CrmKind> {
        match s.to_ascii_lowercase().as_str() {
            "amocrm" | "amo" | "kommo" => Some(CrmKind::AmoCrm),
            "bitrix24" | "bitrix" | "b24" => Some(CrmKind::Bitrix24),
            "webhook" => Some(CrmKind::Webhook),
            _ => None,
        }
    }
}

impl std::fmt::Display for CrmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An error from a CRM adapter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CrmError {
    /// The CRM could not be reached, or the connection broke or timed out.
    #[error("{crm} is unreachable: {detail}")]
    Unreachable {
        /// Which CRM.
        crm: CrmKind,
        /// What the network said.
        detail: String,
    },
    /// The CRM kept answering "too many requests".
    #[error("{crm} keeps refusing: too many requests")]
    RateLimited {
        /// Which CRM.
        crm: CrmKind,
    },
    /// The CRM failed on its side (HTTP 5xx).
    #[error("{crm} failed (HTTP {status}): {message}")]
    ServerError {
        /// Which CRM.
        crm: CrmKind,
        /// The HTTP status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The CRM's answer could not be read.
    #[error("{crm} sent an answer that cannot be read: {detail}")]
    Malformed {
        /// Which CRM.
        crm: CrmKind,
        /// What was wrong with it.
        detail: String,
    },
    /// The CRM refused our credentials (a wrong key, a revoked or already used token).
    #[error("{crm} refused the credentials: {message}")]
    Unauthorized {
        /// Which CRM.
        crm: CrmKind,
        /// What it said.
        message: String,
    },
    /// The CRM refused the data (a field it does not know, a value it does not accept).
    #[error("{crm} refused the data: {message}")]
    Rejected {
        /// Which CRM.
        crm: CrmKind,
        /// What it said.
        message: String,
    },
    /// Our settings are wrong (a field mapping, a URL).
    #[error("CRM settings: {}", message.en)]
    Settings {
        /// What is wrong and what to do.
        message: Text,
    },
    /// Credentials could not be stored or read.
    #[error("cannot store the CRM credentials: {detail}")]
    Credentials {
        /// What went wrong.
        detail: String,
    },
    /// The outbox could not be read or written.
    #[error("the CRM outbox failed: {detail}")]
    Outbox {
        /// What went wrong.
        detail: String,
    },
}

impl CrmError {
    /// A stable code such as `crm.unreachable`.
    pub fn code(&self) -> &'static str {
        match self {
            CrmError::Unreachable { .. } => "crm.unreachable",
            CrmError::RateLimited { .. } => "crm.rate_limited",
            CrmError::ServerError { .. } => "crm.server_error",
            CrmError::Malformed { .. } => "crm.malformed_answer",
            CrmError::Unauthorized { .. } => "crm.unauthorized",
            CrmError::Rejected { .. } => "crm.rejected",
            CrmError::Settings { .. } => "crm.settings",
            CrmError::Credentials { .. } => "crm.credentials",
            CrmError::Outbox { .. } => "crm.outbox",
        }
    }

    /// How the outbox schedules the next attempt.
    pub fn class(&self) -> FailureClass {
        match self {
            CrmError::Unreachable { .. }
            | CrmError::ServerError { .. }
            | CrmError::Malformed { .. }
            | CrmError::Outbox { .. } => FailureClass::Transient,
            CrmError::RateLimited { .. } => FailureClass::RateLimited,
            CrmError::Unauthorized { .. }
            | CrmError::Rejected { .. }
            | CrmError::Settings { .. }
            | CrmError::Credentials { .. } => FailureClass::NeedsUser,
        }
    }

    /// What happened and what to do, in English and Russian. The CRM's own words are
    /// quoted as they came.
    pub fn message(&self) -> Text {
        match self {
            CrmError::Unreachable { crm, detail } => {
                let crm = crm.name();
                text!("{crm} cannot be reached ({detail}). The work stays queued and is sent when the connection is back; check the network or the CRM address.";
                      "{crm} недоступна ({detail}). Данные остаются в очереди и будут отправлены, когда связь восстановится; проверьте сеть или адрес CRM.")
            }
            CrmError::RateLimited { crm } => {
                let crm = crm.name();
                text!("{crm} asks to slow down (too many requests). The work stays queued and is sent shortly.";
                      "{crm} просит снизить частоту запросов. Данные остаются в очереди и скоро будут отправлены.")
            }
            CrmError::ServerError {
                crm,
                status,
                message,
            } => {
                let crm = crm.name();
                text!("{crm} failed on its side (HTTP {status}: {message}). The work stays queued and is tried again.";
                      "Ошибка на стороне {crm} (HTTP {status}: {message}). Данные остаются в очереди, попытка будет повторена.")
            }
            CrmError::Malformed { crm, detail } => {
                let crm = crm.name();
                text!("{crm} sent an answer that cannot be read ({detail}). The work stays queued and is checked and tried again.";
                      "{crm} прислала ответ, который не удалось прочитать ({detail}). Данные остаются в очереди; отправка будет проверена и повторена.")
            }
            CrmError::Unauthorized { crm, message } => {
                let crm = crm.name();
                text!("{crm} refused the connection's credentials ({message}). Reconnect {crm} in Settings → CRM; the queued work is sent after that.";
                      "{crm} отклонила данные для входа ({message}). Подключите {crm} заново в Настройки → CRM; очередь будет отправлена после этого.")
            }
            CrmError::Rejected { crm, message } => {
                let crm = crm.name();
                text!("{crm} refused the data: {message}. Check the field mapping in Settings → CRM, then press \"Retry now\".";
                      "{crm} не приняла данные: {message}. Проверьте сопоставление полей в Настройки → CRM и нажмите «Повторить сейчас».")
            }
            CrmError::Settings { message } => message.clone(),
            CrmError::Credentials { detail } => text!(
                "The CRM credentials cannot be stored or read ({detail}). Check the disk and the data folder's permissions, then reconnect the CRM.";
                "Не удалось сохранить или прочитать данные для входа в CRM ({detail}). Проверьте диск и права на папку данных, затем подключите CRM заново."
            ),
            CrmError::Outbox { detail } => text!(
                "The CRM queue cannot be read or written ({detail}). Nothing is lost; sending resumes when the database is available.";
                "Не удалось прочитать или записать очередь CRM ({detail}). Ничего не потеряно; отправка продолжится, когда база данных станет доступна."
            ),
        }
    }
}

/// What is kept about a failure in the outbox and shown to the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureNote {
    /// The error's code.
    pub code: String,
    /// The message in English.
    pub en: String,
    /// The message in Russian.
    pub ru: String,
    /// How it is scheduled.
    pub class: FailureClass,
}

impl From<&CrmError> for FailureNote {
    fn from(e: &CrmError) -> FailureNote {
        let m = e.message();
        FailureNote {
            code: e.code().into(),
            en: m.en,
            ru: m.ru,
            class: e.class(),
        }
    }
}

impl FailureNote {
    /// The message.
    pub fn text(&self) -> Text {
        Text::new(self.en.clone(), self.ru.clone())
    }
}
