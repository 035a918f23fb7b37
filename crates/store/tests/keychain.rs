//! The OS keychain, for real: a private D-Bus session with an unlocked GNOME Keyring
//! (Secret Service) around a child process of this test binary. Without a reachable
//! keychain the store says so and points to the passphrase.

use std::process::Command;

use callhelper_store::key::{KeyMarker, read_marker};
use callhelper_store::{Store, StoreError, Unlock};

const ENV: &str = "CALLHELPER_KEYCHAIN_CHILD";

fn child(test: &str, dir: &std::path::Path, wrap_in_keyring: bool) -> std::process::Output {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = if wrap_in_keyring {
        let mut c = Command::new("dbus-run-session");
        c.args(["--", "sh", "-c"])
            .arg(r#"eval "$(printf test-pw | gnome-keyring-daemon --unlock --components=secrets)"; export GNOME_KEYRING_CONTROL; exec "$0" "$@""#)
            .arg(&exe);
        c
    } else {
        let mut c = Command::new(&exe);
        // No session bus and no display: nothing to reach or autolaunch.
        c.env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
            .env_remove("DISPLAY");
        c
    };
    cmd.args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(ENV, dir);
    match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot start the keychain test ({e}); install the test packages with `cargo xtask deps` \
             (dbus, dbus-x11, gnome-keyring)"
        ),
    }
}

#[test]
fn key_lives_in_the_secret_service() {
    let dir = tempfile::tempdir().unwrap();
    let out = child("keychain::keychain_child", dir.path(), true);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("KEYCHAIN OK"),
        "{text}"
    );
}

/// Runs inside the D-Bus session (see above).
#[test]
fn keychain_child() {
    let Some(dir) = std::env::var_os(ENV) else {
        return;
    };
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS")
        .is_none_or(|a| a.to_string_lossy().contains("nonexistent"))
    {
        return; // started by `no_keychain_*` below, not by the test above
    }
    let path = std::path::Path::new(&dir).join("callhelper.db");
    {
        let store = Store::open(&path, &Unlock::Keychain).unwrap();
        store.create_first_admin("admin", "admin-password").unwrap();
    }
    let Some(KeyMarker::Keychain { entry }) = read_marker(&path).unwrap() else {
        panic!("marker")
    };
    let marker = std::fs::read_to_string(callhelper_store::key::marker_path(&path)).unwrap();
    let key = keyring::Entry::new(callhelper_store::key::KEYCHAIN_SERVICE, &entry)
        .unwrap()
        .get_password()
        .unwrap();
    assert_eq!(key.len(), 64, "a 32-byte key in hex");
    assert!(!marker.contains(&key[..16]), "the marker holds no key");
    // Reopens with the key from the keychain.
    let store = Store::open(&path, &Unlock::Keychain).unwrap();
    assert!(store.has_users().unwrap());
    drop(store);
    // A passphrase is refused with a clear word, not "wrong key".
    let pass = callhelper_store::Passphrase::new("some passphrase".into()).unwrap();
    let err = Store::open(&path, &Unlock::Passphrase(pass)).unwrap_err();
    assert!(err.message().en.contains("OS keychain"), "{err:?}");
    // With the key gone from the keychain: a clear error, and the file is untouched.
    let before = std::fs::read(&path).unwrap();
    callhelper_store::key::forget_keychain_key(&path).unwrap();
    let err = Store::open(&path, &Unlock::Keychain).unwrap_err();
    assert!(matches!(err, StoreError::KeyMissing { .. }), "{err:?}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    println!("KEYCHAIN OK");
}

#[test]
fn no_keychain_says_so_and_offers_a_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let out = child("keychain::no_keychain_child", dir.path(), false);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("NO KEYCHAIN OK"),
        "{text}"
    );
}

#[test]
fn no_keychain_child() {
    let Some(dir) = std::env::var_os(ENV) else {
        return;
    };
    if !std::env::var_os("DBUS_SESSION_BUS_ADDRESS")
        .is_some_and(|a| a.to_string_lossy().contains("nonexistent"))
    {
        return;
    }
    let path = std::path::Path::new(&dir).join("callhelper.db");
    let err = Store::open(&path, &Unlock::Keychain).unwrap_err();
    assert!(
        matches!(err, StoreError::KeychainUnavailable { .. }),
        "{err:?}"
    );
    assert!(
        err.message().en.contains("passphrase"),
        "{}",
        err.message().en
    );
    assert!(err.message().ru.contains("пароль"));
    assert!(!path.exists(), "no database was made without a key store");
    println!("NO KEYCHAIN OK");
}
