//! Helpers: a real server process on 127.0.0.1, the admin command line, scratch folders,
//! and the app's side (`Licensing`) for made-up machines.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use callhelper_licence::{Client, LicenceDir, LicenceKey, Licensing, Machine, PublicKey, Trust};

pub const BIN: &str = env!("CARGO_BIN_EXE_callhelper-licence-server");

/// A scratch folder removed at the end (also on panic).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "licence-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A vendor installation: a signing key and a database in a scratch folder.
pub struct Vendor {
    pub dir: Scratch,
    pub public: PublicKey,
    db: String,
}

/// The database the suite runs on: SQLite files, or with the `postgres` feature the
/// PostgreSQL database named by `CALLHELPER_LICENCE_TEST_POSTGRES` (required then: the
/// suite fails rather than quietly testing SQLite again).
fn suite_db() -> String {
    #[cfg(feature = "postgres")]
    return std::env::var("CALLHELPER_LICENCE_TEST_POSTGRES").expect(
        "built with the postgres feature: set CALLHELPER_LICENCE_TEST_POSTGRES to a postgres:// URL of a scratch database",
    );
    #[cfg(not(feature = "postgres"))]
    "licence-server.sqlite3".to_owned()
}

impl Vendor {
    /// A vendor on the suite's database.
    pub fn new(name: &str) -> Vendor {
        Vendor::with_db(name, suite_db())
    }

    /// A vendor with its own SQLite database, whatever the suite runs on.
    pub fn new_sqlite(name: &str) -> Vendor {
        Vendor::with_db(name, "licence-server.sqlite3".into())
    }

    fn with_db(name: &str, db: String) -> Vendor {
        let dir = Scratch::new(name);
        let out = admin_in(&dir.0, &db, &["keygen"]);
        let public = PublicKey::from_hex(out.trim()).expect("keygen prints the public key");
        Vendor { dir, public, db }
    }

    pub fn trust(&self) -> Trust {
        Trust::new([self.public])
    }

    /// Run an admin command; panics unless it succeeds. Returns standard output.
    pub fn admin(&self, args: &[&str]) -> String {
        admin_in(&self.dir.0, &self.db, args)
    }

    /// Run an admin command expected to fail; returns standard error.
    pub fn admin_fails(&self, args: &[&str]) -> String {
        let out = admin_cmd(&self.dir.0, &self.db, args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Issue a licence; returns the key text.
    pub fn issue(&self, customer: &str, seats: u32) -> String {
        let key = self.admin(&[
            "issue",
            "--customer",
            customer,
            "--seats",
            &seats.to_string(),
            "--days",
            "365",
            "--feature",
            "crm",
        ]);
        key.trim().to_owned()
    }

    pub fn parse(&self, key: &str) -> LicenceKey {
        LicenceKey::parse(key, &self.trust()).unwrap()
    }

    /// The licence's activations as JSON values (admin `activations --json`).
    pub fn activations(&self, key: &str) -> Vec<serde_json::Value> {
        let id = self.parse(key).licence().id.to_string();
        self.admin(&["activations", &id, "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Start the server with extra `serve` options.
    pub fn serve(&self, extra: &[&str]) -> Server {
        Server::start(&self.dir.0, &self.db, extra)
    }
}

fn admin_cmd(dir: &Path, db: &str, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_remove("CALLHELPER_LICENCE_KEY")
        .env("CALLHELPER_LICENCE_DB", db)
        .args(args);
    c
}

fn admin_in(dir: &Path, db: &str, args: &[&str]) -> String {
    let out = admin_cmd(dir, db, args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The server process; killed when dropped (also when a test panics).
pub struct Server {
    child: Child,
    pub url: String,
    pub addr: String,
}

impl Server {
    fn start(dir: &Path, db: &str, extra: &[&str]) -> Server {
        let mut child = admin_cmd(dir, db, &["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let addr = url.trim_start_matches("http://").to_owned();
        Server { child, url, addr }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url).unwrap()
    }

    /// One raw HTTP/1.1 request; returns (status, body).
    pub fn raw(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        // The server may answer (413) before reading a large body; a reset then is fine.
        let _ = s.write_all(body);
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let resp = String::from_utf8_lossy(&resp).into_owned();
        let status = resp
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {resp:?}"));
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// Stop the server now.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One computer running the app: its own licence folder and machine id.
pub struct App {
    pub dir: LicenceDir,
    pub trust: Trust,
    pub machine: Machine,
    _scratch: Scratch,
}

impl App {
    pub fn new(vendor: &Vendor, machine_id: &str) -> App {
        let scratch = Scratch::new(&format!("app-{machine_id}"));
        App {
            dir: LicenceDir::new(scratch.0.clone()),
            trust: vendor.trust(),
            machine: Machine::from_machine_id(machine_id),
            _scratch: scratch,
        }
    }

    pub fn licensing(&self) -> Licensing<'_> {
        Licensing {
            dir: &self.dir,
            trust: &self.trust,
            machine: &self.machine,
        }
    }
}
