//! Users, roles and what each role may do (policy §4.10, §4.11).
//!
//! Access to the data is protected by passwords (§4.10): each user has an argon2id hash.
//! A [`Session`] comes only from [`Store::login`]; every operation checks the session's
//! role against the current state of the user in the database, so a role change, a
//! disabled account or an expired support grant takes effect at once. Support access
//! (§4.11) is read-only ("просмотр ... без права копирования (изменения)"): a support user
//! can view, never change or export, only until the time the administrator granted, and
//! every view is written to the audit log.

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use callhelper_script::{Text, Timestamp, text};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::Store;
use crate::audit::{self, Audit};
use crate::error::{Result, StoreError};

/// A user's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Takes and places calls, runs scripts, fills in fields.
    Agent,
    /// Writes scripts, exports collected data, handles personal-data requests.
    Manager,
    /// Everything, including users, roles and retention.
    Admin,
    /// Temporary, read-only access for the vendor's support (§4.11).
    Support,
}

impl Role {
    /// The role's name in the database and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Manager => "manager",
            Role::Admin => "admin",
            Role::Support => "support",
        }
    }

    /// Read a role name.
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Agent, Role::Manager, Role::Admin, Role::Support]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// The role as people read it.
    pub fn label(self) -> Text {
        match self {
            Role::Agent => Text::new("agent", "оператор"),
            Role::Manager => Text::new("manager", "руководитель"),
            Role::Admin => Text::new("administrator", "администратор"),
            Role::Support => Text::new("support", "техподдержка"),
        }
    }

    /// Whether the role allows `p`.
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Support => p == View,
            Role::Agent => matches!(p, View | Work),
            Role::Manager => !matches!(p, Administer),
            Role::Admin => true,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kinds of operation, checked against the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Permission {
    /// Look at data.
    View,
    /// Day-to-day work: runs, calls, contacts, consent, callbacks.
    Work,
    /// Export data (bulk export, subject access).
    Export,
    /// Import contacts.
    Import,
    /// Personal-data requests: block, unblock, delete/destroy.
    Rights,
    /// Users, roles, settings, retention.
    Administer,
}

impl Permission {
    /// What the permission lets one do, as the end of "may not …".
    pub fn label(self) -> Text {
        match self {
            Permission::View => Text::new("view data", "просматривать данные"),
            Permission::Work => Text::new("change data", "изменять данные"),
            Permission::Export => Text::new("export data", "выгружать данные"),
            Permission::Import => Text::new("import data", "загружать данные"),
            Permission::Rights => Text::new(
                "block, unblock or destroy personal data",
                "блокировать, разблокировать или уничтожать персональные данные",
            ),
            Permission::Administer => Text::new(
                "manage users, roles and settings",
                "управлять пользователями, ролями и настройками",
            ),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label().en)
    }
}

/// A signed-in user. Only [`Store::login`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    user: UserId,
    login: String,
    role: Role,
}

impl Session {
    /// The user.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// The login name.
    pub fn login(&self) -> &str {
        &self.login
    }

    /// The role at sign-in (the store re-checks it on every operation).
    pub fn role(&self) -> Role {
        self.role
    }
}

/// A user as listed for an administrator (no password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    /// Id.
    pub id: UserId,
    /// Login name.
    pub login: String,
    /// Role.
    pub role: Role,
    /// Until when a support user may sign in.
    pub access_until: Option<Timestamp>,
    /// Disabled accounts cannot sign in.
    pub disabled: bool,
}

fn hash_password(password: &str) -> Result<String> {
    if password.chars().count() < 8 {
        return Err(StoreError::Invalid(Text::new(
            "A password must be at least 8 characters long.",
            "Пароль должен быть не короче 8 символов.",
        )));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?
        .to_string())
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A password hash to compare against when the login does not exist, so a wrong login
/// takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

impl Store {
    /// True when the database has no users yet (a new installation).
    pub fn has_users(&self) -> Result<bool> {
        Ok(self
            .db()
            .query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |r| r.get(0))?)
    }

    /// Create the first administrator of a new installation. Refused once any user exists.
    pub fn create_first_admin(&self, login: &str, password: &str) -> Result<Session> {
        let hash = hash_password(password)?;
        let now = self.now();
        let mut db = self.db();
        let tx = db.transaction()?;
        let any: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |r| r.get(0))?;
        if any {
            return Err(StoreError::Invalid(Text::new(
                "The database already has users; an administrator adds new ones.",
                "В базе уже есть пользователи; новых добавляет администратор.",
            )));
        }
        tx.execute(
            "INSERT INTO users (login, role, password_hash, created_at) VALUES (?1, 'admin', ?2, ?3)",
            params![login.trim(), hash, now.0],
        )?;
        let id = UserId(tx.last_insert_rowid());
        audit::write(
            &tx,
            now,
            Some(id),
            Audit::UserCreated {
                user: id,
                role: Role::Admin,
            },
        )?;
        tx.commit()?;
        Ok(Session {
            user: id,
            login: login.trim().to_owned(),
            role: Role::Admin,
        })
    }

    /// Sign in. A disabled account, a wrong password and an expired support grant are
    /// refused; every sign-in and every refusal is audited.
    pub fn login(&self, login: &str, password: &str) -> Result<Session> {
        let now = self.now();
        let db = self.db();
        let row: Option<(i64, String, String, String, Option<i64>, bool)> = db
            .query_row(
                "SELECT id, login, role, password_hash, access_until, disabled FROM users WHERE login = ?1",
                [login.trim()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()?;
        let Some((id, login, role, hash, until, disabled)) = row else {
            let _ = verify_password(password, dummy_hash());
            audit::write(&db, now, None, Audit::LoginFailed)?;
            return Err(StoreError::BadCredentials);
        };
        let id = UserId(id);
        if disabled || !verify_password(password, &hash) {
            audit::write(&db, now, Some(id), Audit::LoginFailed)?;
            return Err(StoreError::BadCredentials);
        }
        let role = Role::parse(&role).ok_or_else(|| StoreError::Corrupt("role".into()))?;
        if role == Role::Support && until.is_none_or(|u| now.0 >= u) {
            audit::write(&db, now, Some(id), Audit::LoginFailed)?;
            return Err(StoreError::AccessExpired);
        }
        audit::write(&db, now, Some(id), Audit::LoggedIn)?;
        Ok(Session {
            user: id,
            login,
            role,
        })
    }

    /// Check that `session` may do `p` now, with the user's current role. A support
    /// user's views are audited (§4.11) under `what`; refusals are audited too.
    pub(crate) fn require(
        &self,
        db: &rusqlite::Connection,
        session: &Session,
        p: Permission,
        what: &'static str,
    ) -> Result<()> {
        let now = self.now();
        let row: Option<(String, Option<i64>, bool)> = db
            .prepare_cached("SELECT role, access_until, disabled FROM users WHERE id = ?1")?
            .query_row([session.user.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((role, until, disabled)) = row else {
            return Err(StoreError::BadCredentials);
        };
        if disabled {
            return Err(StoreError::BadCredentials);
        }
        let role = Role::parse(&role).ok_or_else(|| StoreError::Corrupt("role".into()))?;
        if role == Role::Support && until.is_none_or(|u| now.0 >= u) {
            audit::write(db, now, Some(session.user), Audit::Denied { what })?;
            return Err(StoreError::AccessExpired);
        }
        if !role.allows(p) {
            audit::write(db, now, Some(session.user), Audit::Denied { what })?;
            log::warn!("store: user {} ({role}) refused: {what}", session.user.0);
            return Err(StoreError::Forbidden {
                role,
                permission: p,
            });
        }
        if role == Role::Support {
            audit::write(db, now, Some(session.user), Audit::SupportViewed { what })?;
        }
        Ok(())
    }

    /// Add a user (administrators only). Support users get access with
    /// [`Store::grant_support_access`].
    pub fn add_user(&self, s: &Session, login: &str, password: &str, role: Role) -> Result<UserId> {
        let hash = hash_password(password)?;
        let login = login.trim();
        if login.is_empty() || login.chars().count() > 64 {
            return Err(StoreError::Invalid(Text::new(
                "A login must be 1 to 64 characters long.",
                "Логин должен быть длиной от 1 до 64 символов.",
            )));
        }
        let now = self.now();
        let mut db = self.db();
        self.require(&db, s, Permission::Administer, "add a user")?;
        let tx = db.transaction()?;
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE login = ?1)",
            [login],
            |r| r.get(0),
        )?;
        if taken {
            return Err(StoreError::Invalid(text!(
                "The login «{login}» is taken."; "Логин «{login}» уже занят.")));
        }
        tx.execute(
            "INSERT INTO users (login, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![login, role.as_str(), hash, now.0],
        )?;
        let id = UserId(tx.last_insert_rowid());
        audit::write(
            &tx,
            now,
            Some(s.user),
            Audit::UserCreated { user: id, role },
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Change a user's role (administrators only; audited).
    pub fn set_role(&self, s: &Session, user: UserId, role: Role) -> Result<()> {
        let now = self.now();
        let mut db = self.db();
        self.require(&db, s, Permission::Administer, "change a role")?;
        let tx = db.transaction()?;
        let old: Option<String> = tx
            .query_row("SELECT role FROM users WHERE id = ?1", [user.0], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(old) = old else {
            return Err(StoreError::NotFound {
                what: "user",
                id: user.0,
            });
        };
        if old == "admin" && role != Role::Admin {
            let admins: i64 = tx.query_row(
                "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0",
                [],
                |r| r.get(0),
            )?;
            if admins <= 1 {
                return Err(StoreError::Invalid(Text::new(
                    "This is the last administrator; make another user an administrator first.",
                    "Это последний администратор; сначала назначьте администратором другого пользователя.",
                )));
            }
        }
        tx.execute(
            "UPDATE users SET role = ?2, access_until = NULL WHERE id = ?1",
            params![user.0, role.as_str()],
        )?;
        audit::write(
            &tx,
            now,
            Some(s.user),
            Audit::RoleChanged {
                user,
                from: Role::parse(&old).unwrap_or(Role::Agent),
                to: role,
            },
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Give a support user read-only access until `until` (administrators only; §4.11).
    pub fn grant_support_access(&self, s: &Session, user: UserId, until: Timestamp) -> Result<()> {
        let now = self.now();
        let db = self.db();
        self.require(&db, s, Permission::Administer, "grant support access")?;
        let n = db.execute(
            "UPDATE users SET access_until = ?2 WHERE id = ?1 AND role = 'support'",
            params![user.0, until.0],
        )?;
        if n == 0 {
            return Err(StoreError::Invalid(Text::new(
                "Only a user with the role «support» gets time-limited access.",
                "Временный доступ выдаётся только пользователю с ролью «техподдержка».",
            )));
        }
        audit::write(
            &db,
            now,
            Some(s.user),
            Audit::SupportGranted { user, until },
        )?;
        Ok(())
    }

    /// Disable or enable an account (administrators only; audited).
    pub fn set_disabled(&self, s: &Session, user: UserId, disabled: bool) -> Result<()> {
        let now = self.now();
        let db = self.db();
        self.require(&db, s, Permission::Administer, "disable a user")?;
        if user == s.user && disabled {
            return Err(StoreError::Invalid(Text::new(
                "You cannot disable your own account.",
                "Нельзя отключить собственную учётную запись.",
            )));
        }
        db.execute(
            "UPDATE users SET disabled = ?2 WHERE id = ?1",
            params![user.0, disabled],
        )?;
        audit::write(
            &db,
            now,
            Some(s.user),
            Audit::UserDisabled { user, disabled },
        )?;
        Ok(())
    }

    /// Change one's own password, or (administrators) anyone's.
    pub fn set_password(&self, s: &Session, user: UserId, password: &str) -> Result<()> {
        let hash = hash_password(password)?;
        let now = self.now();
        let db = self.db();
        let p = if user == s.user {
            Permission::View
        } else {
            Permission::Administer
        };
        self.require(&db, s, p, "change a password")?;
        if s.role == Role::Support && user == s.user {
            return Err(StoreError::Forbidden {
                role: Role::Support,
                permission: Permission::Work,
            });
        }
        db.execute(
            "UPDATE users SET password_hash = ?2 WHERE id = ?1",
            params![user.0, hash],
        )?;
        audit::write(&db, now, Some(s.user), Audit::PasswordChanged { user })?;
        Ok(())
    }

    /// All users (administrators only).
    pub fn users(&self, s: &Session) -> Result<Vec<UserInfo>> {
        let db = self.db();
        self.require(&db, s, Permission::Administer, "list users")?;
        let mut stmt =
            db.prepare("SELECT id, login, role, access_until, disabled FROM users ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(UserInfo {
                id: UserId(r.get(0)?),
                login: r.get(1)?,
                role: Role::parse(&r.get::<_, String>(2)?).unwrap_or(Role::Agent),
                access_until: r.get::<_, Option<i64>>(3)?.map(Timestamp),
                disabled: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A user's id by login (administrators only).
    pub fn user_id(&self, s: &Session, login: &str) -> Result<UserId> {
        self.users(s)?
            .into_iter()
            .find(|u| u.login.eq_ignore_ascii_case(login.trim()))
            .map(|u| u.id)
            .ok_or(StoreError::Invalid(text!(
                "There is no user «{login}»."; "Пользователя «{login}» нет.")))
    }
}
