//! The licence as a user and a vendor meet it: the real licence server process on
//! 127.0.0.1, its admin command line, and the `callhelper licence` commands of the app.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::{Scratch, binary};

/// The vendor's side: a signing key and a database in `dir`.
fn admin(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary("callhelper-licence-server"))
        .current_dir(dir)
        .env_remove("CALLHELPER_LICENCE_KEY")
        .env("CALLHELPER_LICENCE_DB", "licence-server.sqlite3")
        .args(args)
        .output()
        .expect("the licence server's admin command runs")
}

fn admin_ok(dir: &Path, args: &[&str]) -> String {
    let out = admin(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

/// The server process, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut child = Command::new(binary("callhelper-licence-server"))
            .current_dir(dir)
            .env_remove("CALLHELPER_LICENCE_KEY")
            .env("CALLHELPER_LICENCE_DB", "licence-server.sqlite3")
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the licence server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server says where it listens");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The app on one computer: `callhelper licence|phone …` with its own data folder, trusting
/// the vendor's public key (debug builds take it from the environment).
struct App {
    data: PathBuf,
    vendor_key: String,
}

impl App {
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        self.callhelper("licence", args)
    }

    fn phone(&self, args: &[&str]) -> (Option<i32>, String, String) {
        self.callhelper("phone", args)
    }

    fn callhelper(&self, group: &str, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(binary("callhelper"))
            .arg(group)
            .args(args)
            .env("CALLHELPER_DATA_DIR", &self.data)
            .env("CALLHELPER_LICENCE_DEV_PUBLIC_KEY", &self.vendor_key)
            .env_remove("CALLHELPER_LICENCE_SERVER")
            .env("LANG", "en_GB.UTF-8")
            .env_remove("CALLHELPER_LANG")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .output()
            .expect("callhelper runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn status_json(&self) -> serde_json::Value {
        let (_, out, err) = self.run(&["status", "--offline", "--json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"))
    }
}

#[test]
fn a_key_is_issued_activated_used_and_deactivated_through_the_command_lines() {
    let vendor = Scratch::new("licence-vendor");
    let public = admin_ok(&vendor.0, &["keygen"]);
    let key = admin_ok(
        &vendor.0,
        &[
            "issue",
            "--customer",
            "ACME",
            "--seats",
            "1",
            "--days",
            "30",
            "--feature",
            "crm",
        ],
    );
    assert!(key.starts_with("CHK1-"), "{key}");
    let server = Server::start(&vendor.0);
    let computer = Scratch::new("licence-app");
    let app = App {
        data: computer.0.clone(),
        vendor_key: public.clone(),
    };

    // Nothing activated: demo mode, exit 2, and the reason in words.
    let (code, out, _) = app.run(&["status", "--offline"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("Demo mode"), "{out}");

    // A key with one character changed is refused before the server is asked.
    let mut bad = key.clone().into_bytes();
    let i = bad.len() / 2;
    bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    let (code, out, err) = app.run(&["activate", &bad, "--server", &server.url]);
    assert_eq!(code, Some(1), "{out} {err}");
    assert!(err.contains("licence key"), "{err}");
    assert_eq!(app.status_json()["state"], "demo");

    // The real key activates; the server records one activation.
    let (code, out, err) = app.run(&["activate", &key, "--server", &server.url]);
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(out.contains("ACME"), "{out}");
    let st = app.status_json();
    assert_eq!(st["state"], "active", "{st}");
    assert_eq!(st["seat"], 1, "{st}");
    let id = st["licence"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a licence id in {st}"))
        .to_owned();
    let activations = admin_ok(&vendor.0, &["activations", &id, "--json"]);
    assert_eq!(activations.lines().count(), 1, "{activations}");
    assert!(activations.contains("\"state\":\"live\""), "{activations}");

    // Online status renews quietly (the address was remembered at activation).
    let (code, out, err) = app.run(&["status"]);
    assert_eq!(code, Some(0), "{out} {err}");

    // Licensed, the phone leaves demo mode: a real address is dialled (nothing listens
    // on the discard port, so TCP is refused at once) and accounts are looked up.
    let (code, out, err) = app.phone(&["call", "sip:nobody@127.0.0.1:9;transport=tcp"]);
    assert_eq!(code, Some(2), "{out} {err}");
    assert!(out.contains("\"outcome\":\"failed\""), "{out}");
    assert!(err.contains("could not be reached"), "{err}");
    let (code, out, err) = app.phone(&["register", "--account", "office"]);
    assert_eq!(code, Some(1), "{out} {err}");
    assert!(
        err.contains("\"office\"") && err.contains("no SIP accounts are set up"),
        "{err}"
    );

    // Deactivation frees the seat and returns the computer to demo mode.
    let (code, out, err) = app.run(&["deactivate"]);
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(out.contains("seat is free"), "{out}");
    assert_eq!(app.status_json()["state"], "demo");
    let activations = admin_ok(&vendor.0, &["activations", &id, "--json"]);
    assert!(!activations.contains("\"state\":\"live\""), "{activations}");

    // Back in demo mode the phone refuses real addresses again.
    let (code, _, err) = app.phone(&["call", "sip:nobody@127.0.0.1:9;transport=tcp"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Demo mode"), "{err}");

    // With the server gone, activation says it cannot reach it, and nothing changes.
    let url = server.url.clone();
    drop(server);
    let (code, out, err) = app.run(&["activate", &key, "--server", &url]);
    assert_eq!(code, Some(1), "{out} {err}");
    assert!(
        !err.trim().is_empty(),
        "an unreachable server gets a message"
    );
    assert_eq!(app.status_json()["state"], "demo");
}
