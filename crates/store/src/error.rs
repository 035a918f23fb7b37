//! What can go wrong with the collected database, with a stable code and a message in
//! English and Russian for each case.
//!
//! Messages never quote personal data: an import error names the line and the column,
//! never the value, so error text is safe to log.

use callhelper_script::{Text, text};

use crate::access::{Permission, Role};

/// An error from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The SQLite library linked into this build does not encrypt (no SQLCipher).
    #[error("this build of SQLite does not encrypt (cipher_version is empty)")]
    NotEncrypting,
    /// The key does not open the database, or the file is damaged.
    #[error("the database cannot be decrypted: wrong key or damaged file")]
    WrongKeyOrDamaged {
        /// The file.
        path: String,
    },
    /// No OS keychain could be reached to read or keep the database key.
    #[error("the OS keychain cannot be reached: {detail}")]
    KeychainUnavailable {
        /// What the keychain library said.
        detail: String,
    },
    /// The database exists but its key is not in the keychain.
    #[error("the database key is missing from the OS keychain")]
    KeyMissing {
        /// The file.
        path: String,
    },
    /// The database was opened with a passphrase but none was given, or the other way round.
    #[error("the database is protected by a passphrase; give it to open the database")]
    PassphraseRequired,
    /// The database was made by a newer CallHelper.
    #[error("the database has schema version {found}; this CallHelper knows up to {known}")]
    TooNew {
        /// The version in the file.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Writing an XLSX file failed.
    #[error("XLSX error: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    /// The role of the signed-in user does not allow the operation.
    #[error("a {role} may not {permission}")]
    Forbidden {
        /// The user's role.
        role: Role,
        /// What was attempted.
        permission: Permission,
    },
    /// The login or password is wrong, or the account is disabled.
    #[error("wrong login or password")]
    BadCredentials,
    /// A support user's time-limited access has run out.
    #[error("the support access has expired")]
    AccessExpired,
    /// The person is blocked: no calls, no sync, no export until unblocked.
    #[error("the person is blocked")]
    Blocked,
    /// No such record.
    #[error("no {what} with id {id}")]
    NotFound {
        /// What kind of record.
        what: &'static str,
        /// Its id.
        id: i64,
    },
    /// No contact with that phone number.
    #[error("no contact with that phone number")]
    NoSuchContact,
    /// A phone number is not valid.
    #[error("not a valid phone number")]
    BadPhone,
    /// Some input is not valid (a setting, a filter, a password).
    #[error("{0}")]
    Invalid(Text),
    /// A run was asked to do something its state forbids (append to a finished run).
    #[error("run {run} is already finished")]
    RunFinished {
        /// The run.
        run: i64,
    },
    /// Stored JSON could not be read back.
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// A stable, machine-readable code (`store.wrong_key`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotEncrypting => "store.not_encrypting",
            StoreError::WrongKeyOrDamaged { .. } => "store.wrong_key",
            StoreError::KeychainUnavailable { .. } => "store.keychain_unavailable",
            StoreError::KeyMissing { .. } => "store.key_missing",
            StoreError::PassphraseRequired => "store.passphrase_required",
            StoreError::TooNew { .. } => "store.too_new",
            StoreError::Io { .. } => "store.io",
            StoreError::Sqlite(e) if damaged(e) => "store.damaged",
            StoreError::Sqlite(_) => "store.sqlite",
            StoreError::Xlsx(_) => "store.xlsx",
            StoreError::Forbidden { .. } => "store.forbidden",
            StoreError::BadCredentials => "store.bad_credentials",
            StoreError::AccessExpired => "store.access_expired",
            StoreError::Blocked => "store.blocked",
            StoreError::NotFound { .. } => "store.not_found",
            StoreError::NoSuchContact => "store.no_such_contact",
            StoreError::BadPhone => "store.bad_phone",
            StoreError::Invalid(_) => "store.invalid",
            StoreError::RunFinished { .. } => "store.run_finished",
            StoreError::Corrupt(_) => "store.corrupt",
        }
    }

    /// What happened and what to do, in English and Russian.
    pub fn message(&self) -> Text {
        match self {
            StoreError::NotEncrypting => Text::new(
                "This build of CallHelper cannot encrypt its database (SQLCipher is missing), so it refuses to store anything. Install an official build.",
                "Эта сборка CallHelper не умеет шифровать базу данных (нет SQLCipher), поэтому ничего не сохраняет. Установите официальную сборку.",
            ),
            StoreError::WrongKeyOrDamaged { path } => text!(
                "The database {path} cannot be decrypted: the key is wrong or the file is damaged. Nothing was changed. Check that this is the right data folder and key (or passphrase), or restore the file from a backup.";
                "Базу данных {path} не удалось расшифровать: ключ неверен или файл повреждён. Ничего не изменено. Проверьте папку данных и ключ (или пароль базы) либо восстановите файл из резервной копии."),
            StoreError::KeychainUnavailable { detail } => text!(
                "The OS keychain cannot be reached ({detail}). The database key is never stored in plain text. Start and unlock the keychain (on Linux: a Secret Service such as GNOME Keyring or KWallet), or let the administrator choose a passphrase for the database instead (`callhelper data init --passphrase`).";
                "Хранилище ключей ОС недоступно ({detail}). Ключ базы данных никогда не хранится открытым текстом. Запустите и разблокируйте хранилище ключей (в Linux — Secret Service, например GNOME Keyring или KWallet) или пусть администратор задаст пароль базы данных (`callhelper data init --passphrase`)."),
            StoreError::KeyMissing { path } => text!(
                "The key of the database {path} is not in the OS keychain (a different user account or a reset keychain?). Nothing was changed. Sign in as the user who created it, or restore the keychain.";
                "Ключа базы данных {path} нет в хранилище ключей ОС (другая учётная запись или сброшенное хранилище?). Ничего не изменено. Войдите под пользователем, создавшим базу, или восстановите хранилище ключей."),
            StoreError::PassphraseRequired => Text::new(
                "The database is protected by a passphrase: enter it (or set CALLHELPER_DB_PASSPHRASE).",
                "База данных защищена паролем: введите его (или задайте CALLHELPER_DB_PASSPHRASE).",
            ),
            StoreError::TooNew { found, known } => text!(
                "The database was written by a newer CallHelper (schema {found}, this one knows up to {known}). Update CallHelper; the file was not changed.";
                "База данных записана более новой версией CallHelper (схема {found}, эта версия знает до {known}). Обновите CallHelper; файл не изменён."),
            StoreError::Io { path, source } => text!(
                "{path}: {source}"; "{path}: {source}"),
            StoreError::Sqlite(e) if damaged(e) => Text::new(
                "The database file is damaged (a page cannot be decrypted or read). Nothing more was written. Run `callhelper data status` to check it, and restore the file from a backup.",
                "Файл базы данных повреждён (страницу не удаётся расшифровать или прочитать). Больше ничего не записано. Проверьте его командой `callhelper data status` и восстановите файл из резервной копии.",
            ),
            StoreError::Sqlite(e) => text!(
                "Database error: {e}. Nothing was half-written; try again, and report it if it repeats.";
                "Ошибка базы данных: {e}. Ничего не записано наполовину; повторите, а если повторится — сообщите нам."),
            StoreError::Xlsx(e) => text!(
                "Cannot write the XLSX file: {e}"; "Не удалось записать файл XLSX: {e}"),
            StoreError::Forbidden { role, permission } => text!(
                "A user with the role «{}» may not {}. Ask an administrator.", role.label().en, permission.label().en;
                "Пользователю с ролью «{}» нельзя {}. Обратитесь к администратору.", role.label().ru, permission.label().ru),
            StoreError::BadCredentials => Text::new(
                "Wrong login or password, or the account is disabled.",
                "Неверный логин или пароль, либо учётная запись отключена.",
            ),
            StoreError::AccessExpired => Text::new(
                "The support access has expired. An administrator can grant it again.",
                "Срок доступа техподдержки истёк. Администратор может выдать его снова.",
            ),
            StoreError::Blocked => Text::new(
                "This person is blocked: their data may not be called, synced or exported until an administrator unblocks them.",
                "Обработка данных этого человека заблокирована: звонки, синхронизация и выгрузка запрещены до разблокировки.",
            ),
            StoreError::NotFound { what, id } => text!(
                "There is no {what} with id {id}."; "Запись «{what}» с номером {id} не найдена."),
            StoreError::NoSuchContact => Text::new(
                "There is no contact with that phone number.",
                "Контакта с таким номером телефона нет.",
            ),
            StoreError::BadPhone => Text::new(
                "That is not a valid phone number: give 10 to 15 digits, with the country code or in the default country's format.",
                "Это не номер телефона: нужно от 10 до 15 цифр, с кодом страны или в формате страны по умолчанию.",
            ),
            StoreError::Invalid(t) => t.clone(),
            StoreError::RunFinished { run } => text!(
                "Run {run} is already finished; nothing more can be added to it.";
                "Разговор {run} уже завершён; добавить в него ничего нельзя."),
            StoreError::Corrupt(detail) => text!(
                "Stored data cannot be read back ({detail}). Report this; nothing was changed.";
                "Сохранённые данные не читаются ({detail}). Сообщите нам; ничего не изменено."),
        }
    }
}

/// SQLite found a damaged page after the database was opened (a page that fails its
/// authentication code under SQLCipher, or a broken b-tree).
fn damaged(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        // serde's message can quote the value (personal data): keep only where it failed.
        StoreError::Corrupt(format!(
            "{:?} error at line {}, column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    }
}

/// Build an [`StoreError::Io`] for a path.
pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}
