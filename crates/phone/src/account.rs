//! SIP accounts: what the agent's provider or PBX gave them, and how registration went.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::redact::{Secret, scrub};

/// How SIP messages travel to the registrar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP (the default of most providers).
    #[default]
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP (`sips:`), with the server's certificate checked.
    Tls,
}

impl Transport {
    /// The `transport=` URI parameter value.
    pub fn as_param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

fn default_expires() -> u32 {
    600
}

fn yes() -> bool {
    true
}

/// One SIP account. `Debug` masks the user name and display name (they are often a phone
/// number and a person's name) and never shows the password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Our name for it (`"main"`, `"sales-line"`): how commands and events refer to it.
    pub name: String,
    /// The user part of the SIP identity (`alice` in `sip:alice@pbx.example.com`).
    pub username: String,
    /// The SIP domain of the identity.
    pub domain: String,
    /// The digest password.
    #[serde(default)]
    pub password: Secret,
    /// The digest user name, when it differs from `username`.
    #[serde(default)]
    pub auth_username: Option<String>,
    /// The digest realm, when the provider insists on one.
    #[serde(default)]
    pub realm: Option<String>,
    /// Where to send REGISTER and calls (`host[:port]`); the domain when absent.
    #[serde(default)]
    pub registrar: Option<String>,
    /// The transport to the registrar.
    #[serde(default)]
    pub transport: Transport,
    /// The name shown to the people we call.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Requested registration lifetime in seconds; the engine refreshes before it runs out.
    #[serde(default = "default_expires")]
    pub expires: u32,
    /// Whether to register at all (a peer-to-peer line need not).
    #[serde(default = "yes")]
    pub register: bool,
}

impl Account {
    /// The identity as a SIP URI (`sip:alice@pbx.example.com`).
    pub fn identity(&self) -> String {
        let scheme = if self.transport == Transport::Tls {
            "sips"
        } else {
            "sip"
        };
        match &self.display_name {
            Some(n) => format!(
                "\"{}\" <{scheme}:{}@{}>",
                n.replace('"', ""),
                self.username,
                self.domain
            ),
            None => format!("{scheme}:{}@{}", self.username, self.domain),
        }
    }

    /// The registrar/proxy URI with its transport (`sip:pbx.example.com:5060;transport=tcp`).
    pub fn server_uri(&self) -> String {
        let host = self.registrar.as_deref().unwrap_or(&self.domain);
        let scheme = if self.transport == Transport::Tls {
            "sips"
        } else {
            "sip"
        };
        format!("<{scheme}:{host};transport={}>", self.transport.as_param())
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("username", &"***")
            .field("domain", &self.domain)
            .field("password", &self.password)
            .field("auth_username", &self.auth_username.as_ref().map(|_| "***"))
            .field("realm", &self.realm)
            .field("registrar", &self.registrar.as_deref().map(scrub))
            .field("transport", &self.transport)
            .field("display_name", &self.display_name.as_ref().map(|_| "***"))
            .field("expires", &self.expires)
            .field("register", &self.register)
            .finish()
    }
}

/// Where an account's registration stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RegistrationState {
    /// Not registered (never asked, or unregistered on purpose).
    None,
    /// A REGISTER is on its way (first time or a refresh).
    Progress,
    /// Registered; calls to this identity reach us.
    Ok,
    /// Unregistered on request.
    Cleared,
    /// The registrar refused or could not be reached.
    Failed {
        /// Why.
        #[serde(flatten)]
        failure: RegistrationFailure,
    },
}

/// Why a registration failed, in terms the agent can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "failure", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RegistrationFailure {
    /// The registrar kept answering 401/407: the user name or password is wrong.
    BadCredentials,
    /// 403: the registrar knows the account but refuses it (blocked, wrong domain).
    Forbidden,
    /// 404: no such user on this registrar.
    UnknownUser,
    /// No answer in time (wrong address, a firewall, the server down).
    Timeout,
    /// The transport failed (connection refused, TLS handshake or certificate error,
    /// name not resolved).
    Unreachable,
    /// Some other final answer.
    Rejected {
        /// The SIP status code.
        sip_code: u16,
    },
}

/// Notices a registration that stays in progress too long. liblinphone waits out the
/// whole SIP transaction (32 s) before it calls a silent registrar a failure; the agent
/// should hear sooner. Pure: states and times are passed in.
#[derive(Debug, Clone, Default)]
pub struct RegistrationClock {
    since: Option<Instant>,
    reported: bool,
}

impl RegistrationClock {
    /// A new state was reported at `now`.
    pub fn observe(&mut self, state: &RegistrationState, now: Instant) {
        if matches!(state, RegistrationState::Progress) {
            if self.since.is_none() {
                self.since = Some(now);
                self.reported = false;
            }
        } else {
            self.since = None;
        }
    }

    /// Whether the registration has been in progress for `limit` by `now`; says so once
    /// per attempt.
    pub fn overdue(&mut self, now: Instant, limit: Duration) -> bool {
        let late = self
            .since
            .is_some_and(|t| now.saturating_duration_since(t) >= limit);
        if late && !self.reported {
            self.reported = true;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Account {
        serde_json::from_str(
            r#"{"name":"main","username":"+79991234567","domain":"pbx.example.com","password":"s3cret",
                "registrar":"10.0.0.1:5070","transport":"tcp","display_name":"Alice Smith"}"#,
        )
        .unwrap()
    }

    #[test]
    fn defaults_and_uris() {
        let a = alice();
        assert_eq!(a.expires, 600);
        assert!(a.register);
        assert_eq!(
            a.identity(),
            "\"Alice Smith\" <sip:+79991234567@pbx.example.com>"
        );
        assert_eq!(a.server_uri(), "<sip:10.0.0.1:5070;transport=tcp>");
        let tls = Account {
            transport: Transport::Tls,
            registrar: None,
            display_name: None,
            ..a
        };
        assert_eq!(tls.identity(), "sips:+79991234567@pbx.example.com");
        assert_eq!(tls.server_uri(), "<sips:pbx.example.com;transport=tls>");
    }

    #[test]
    fn debug_shows_no_personal_data_or_password() {
        let text = format!("{:?}", alice());
        for secret in ["79991234567", "s3cret", "Alice"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("pbx.example.com"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<Account>(
            r#"{"name":"x","username":"u","domain":"d","pasword":"typo"}"#,
        );
        assert!(err.unwrap_err().to_string().contains("pasword"));
    }

    #[test]
    fn a_registration_stuck_in_progress_is_overdue_once() {
        let t = Instant::now();
        let limit = Duration::from_secs(10);
        let mut c = RegistrationClock::default();
        assert!(!c.overdue(t, limit));
        c.observe(&RegistrationState::Progress, t);
        // A refresh in between does not restart the clock.
        c.observe(&RegistrationState::Progress, t + Duration::from_secs(5));
        assert!(!c.overdue(t + Duration::from_secs(9), limit));
        assert!(c.overdue(t + Duration::from_secs(10), limit));
        assert!(!c.overdue(t + Duration::from_secs(11), limit));
        c.observe(&RegistrationState::Ok, t + Duration::from_secs(12));
        assert!(!c.overdue(t + Duration::from_secs(30), limit));
        c.observe(&RegistrationState::Progress, t + Duration::from_secs(40));
        assert!(c.overdue(t + Duration::from_secs(50), limit));
    }

    #[test]
    fn registration_states_serialise_flat() {
        let s = RegistrationState::Failed {
            failure: RegistrationFailure::Rejected { sip_code: 488 },
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"state":"failed","failure":"rejected","sip_code":488}"#
        );
    }
}
