//! OAuth tokens and where they are kept.
//!
//! amoCRM and Bitrix24 rotate refresh tokens: each refresh returns a new refresh token and
//! the old one stops working. So the new pair is written to the [`TokenStore`] — atomically
//! — before the new access token is used; a crash after that write loses nothing. (A crash
//! or a lost answer between the CRM's rotation and our write cannot be helped by any
//! client: the CRM then refuses the old token, and the user is asked to reconnect.)

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use callhelper_script::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::CrmError;
use crate::secret::Secret;

/// An access token and the refresh token that renews it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthTokens {
    /// The access token.
    pub access: Secret,
    /// The refresh token.
    pub refresh: Secret,
    /// When the access token expires.
    pub expires_at: Timestamp,
}

impl fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthTokens")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Where a connection's tokens live.
pub trait TokenStore: Send + fmt::Debug {
    /// The current tokens, if connected.
    fn load(&self) -> Result<Option<OAuthTokens>, CrmError>;
    /// Replace the tokens, atomically: after a crash either the old or the new pair is
    /// there, never a mix or nothing.
    fn save(&self, tokens: &OAuthTokens) -> Result<(), CrmError>;
}

/// Tokens in a JSON file readable by the user only, replaced by write-and-rename.
#[derive(Debug, Clone)]
pub struct FileTokenStore {
    path: PathBuf,
}

impl FileTokenStore {
    /// A store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> FileTokenStore {
        FileTokenStore { path: path.into() }
    }
}

fn cred_err(e: impl fmt::Display) -> CrmError {
    CrmError::Credentials {
        detail: e.to_string(),
    }
}

/// Write `bytes` to `path` atomically (a temporary file beside it, synced, then renamed),
/// readable by the user only.
pub fn write_private_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl TokenStore for FileTokenStore {
    fn load(&self) -> Result<Option<OAuthTokens>, CrmError> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(cred_err),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(cred_err(e)),
        }
    }

    fn save(&self, tokens: &OAuthTokens) -> Result<(), CrmError> {
        let bytes = serde_json::to_vec(tokens).map_err(cred_err)?;
        write_private_atomic(&self.path, &bytes).map_err(cred_err)
    }
}

/// Tokens in memory (tests).
#[derive(Debug, Default)]
pub struct MemoryTokenStore(Mutex<Option<OAuthTokens>>);

impl MemoryTokenStore {
    /// A store holding `tokens`.
    pub fn new(tokens: Option<OAuthTokens>) -> MemoryTokenStore {
        MemoryTokenStore(Mutex::new(tokens))
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> Result<Option<OAuthTokens>, CrmError> {
        Ok(self.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn save(&self, tokens: &OAuthTokens) -> Result<(), CrmError> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(tokens.clone());
        Ok(())
    }
}
