//! Where CallHelper keeps its data.
//!
//! The data folder is, in order: the `--data-dir` option, the `CALLHELPER_DATA_DIR`
//! environment variable, or the OS's standard place (`$XDG_DATA_HOME/callhelper`, usually
//! `~/.local/share/callhelper` on Linux; `%APPDATA%\CallHelper` on Windows;
//! `~/Library/Application Support/CallHelper` on macOS).

use std::path::{Path, PathBuf};

use callhelper_script::text;

use crate::Error;

/// The environment variable that overrides the data folder.
pub const DATA_DIR_ENV: &str = "CALLHELPER_DATA_DIR";

/// The resolved data folder of one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Resolve the data folder from an explicit choice, the environment, or the OS default.
    pub fn resolve(explicit: Option<&Path>) -> Result<DataDir, Error> {
        let root = match explicit {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
                Some(v) => PathBuf::from(v),
                None => dirs::data_dir()
                    .map(|d| d.join(if cfg!(target_os = "linux") { "callhelper" } else { "CallHelper" }))
                    .ok_or_else(|| {
                        Error::new(
                            "paths.no_data_dir",
                            text!("cannot find the user's data folder; set {DATA_DIR_ENV} or pass --data-dir";
                                  "не удалось найти папку данных пользователя; задайте {DATA_DIR_ENV} или --data-dir"),
                        )
                    })?,
            },
        };
        Ok(DataDir { root })
    }

    /// A data folder at a given path (tests, the demo).
    pub fn at(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A sub-folder for one part of the product (`phone`, `store`, `licence`...), created
    /// on first use with permissions only the user can read (on Unix).
    pub fn part(&self, name: &str) -> Result<PathBuf, Error> {
        let dir = self.root.join(name);
        create_private_dir(&dir)?;
        Ok(dir)
    }
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| {
        let d = dir.display();
        Error::new(
            "paths.create_failed",
            text!("cannot create the folder {d}: {e}"; "не удалось создать папку {d}: {e}"),
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}
