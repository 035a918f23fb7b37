//! The vendor's signing key on disk: 64 hex characters (the Ed25519 seed) and a newline,
//! in a file only its owner can read.

use std::io::Write;
use std::path::Path;

use callhelper_licence::SecretKey;

/// Create a new signing key at `path`; refuses to overwrite an existing file.
pub fn create(path: &Path) -> Result<SecretKey, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let key = SecretKey::from_seed(&seed);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        format!(
            "cannot create {}: {e} (an existing key is never overwritten)",
            path.display()
        )
    })?;
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    f.write_all(format!("{hex}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(key)
}

/// Load the signing key from `path`.
pub fn load(path: &Path) -> Result<SecretKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the signing key {}: {e}", path.display()))?;
    let hex = text.trim();
    let bad = || {
        format!(
            "{} is not a signing key (64 hex characters expected)",
            path.display()
        )
    };
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(SecretKey::from_seed(&seed))
}

/// 16 random bytes for a licence id.
pub fn random_id() -> Result<[u8; 16], String> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(id)
}
