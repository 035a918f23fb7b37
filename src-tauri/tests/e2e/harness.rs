//! Runs the built app in a real WebKit window and drives it through WebDriver: a virtual X
//! display (Xvfb), a private D-Bus session, `tauri-driver` in front of Debian's
//! `WebKitWebDriver`, and a fresh data folder — all on 127.0.0.1, all in one process
//! group that the [`Desktop`] guard kills on drop (a killed `tauri-driver` leaves
//! `WebKitWebDriver` holding the output pipe open, which would hang a piped test run).
//!
//! Nothing is skipped: a missing tool is a failure that says how to install it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};

/// The passphrase of the test databases (the test machine has no keychain).
pub const PASSPHRASE: &str = "e2e test passphrase, not a secret";

/// The app binary under test.
pub fn app_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_callhelper-desktop"))
}

/// Where screenshots and logs of the runs go (git-ignored).
pub fn output_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../test-output/e2e")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test output folder");
    dir
}

pub fn need(tool: &str, hint: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| panic!("{tool} is not installed: {hint} (or run `cargo xtask test`)"))
}

fn tauri_driver() -> PathBuf {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        let p = PathBuf::from(home).join("bin/tauri-driver");
        if p.is_file() {
            return p;
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = PathBuf::from(home).join(".cargo/bin/tauri-driver");
        if p.is_file() {
            return p;
        }
    }
    need("tauri-driver", "cargo install tauri-driver --locked")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A 1-second 440 Hz tone, 8 kHz mono 16-bit: played into calls in place of a microphone
/// (the test machine has no sound card).
fn tone_wav(path: &Path) {
    let rate = 8000u32;
    let samples: Vec<i16> = (0..rate)
        .map(|i| {
            let t = f64::from(i) / f64::from(rate);
            ((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16
        })
        .collect();
    std::fs::write(path, callhelper_phone::wav::pcm16(rate, &samples)).expect("write the tone");
}

/// The display, the bus and the environment the app runs in. Dropping it kills
/// everything it started (each in its own process group).
pub struct Desktop {
    pub home: tempfile::TempDir,
    pub data: PathBuf,
    pub display: String,
    pub bus: String,
    children: Vec<Child>,
    pub out: PathBuf,
    shots: u32,
    /// More environment for the app (a test's sound server...), set before the session.
    pub extra_env: Vec<(String, String)>,
}

impl Desktop {
    /// A virtual display and a private session bus, with a fresh data folder.
    pub fn new(test: &str) -> Desktop {
        let xvfb = need("Xvfb", "apt-get install xvfb xauth");
        need("dbus-daemon", "apt-get install dbus");
        let home = tempfile::tempdir().expect("a temporary home");
        let data = home.path().join("data");
        let mut d = Desktop {
            data,
            display: String::new(),
            bus: String::new(),
            children: Vec::new(),
            out: output_dir(test),
            shots: 0,
            extra_env: Vec::new(),
            home,
        };
        // Xvfb tells the display it took on the descriptor given (1, its stdout).
        let mut x = Command::new(xvfb)
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x720x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start Xvfb");
        let mut line = String::new();
        BufReader::new(x.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("read Xvfb's display");
        d.display = format!(":{}", line.trim());
        d.children.push(x);
        let socket = d.home.path().join("bus");
        d.bus = format!("unix:path={}", socket.display());
        let bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={}", d.bus))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start dbus-daemon");
        d.children.push(bus);
        wait_for("the session bus", Duration::from_secs(10), || {
            socket.exists()
        });
        let tone = d.home.path().join("mic.wav");
        tone_wav(&tone);
        d
    }

    /// The environment of the app (and of the drivers that start it).
    pub fn env(&self) -> Vec<(String, String)> {
        let home = self.home.path().display().to_string();
        let mut env = vec![
            ("DISPLAY".into(), self.display.clone()),
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.bus.clone()),
            ("HOME".into(), home.clone()),
            ("XDG_CONFIG_HOME".into(), format!("{home}/.config")),
            ("XDG_DATA_HOME".into(), format!("{home}/.local/share")),
            ("XDG_CACHE_HOME".into(), format!("{home}/.cache")),
            ("XDG_RUNTIME_DIR".into(), home.clone()),
            (
                "CALLHELPER_DATA_DIR".into(),
                self.data.display().to_string(),
            ),
            ("CALLHELPER_DB_PASSPHRASE".into(), PASSPHRASE.into()),
            ("CALLHELPER_REGISTER_LINKS".into(), "0".into()),
            ("CALLHELPER_PHONE_PLAY".into(), format!("{home}/mic.wav")),
            ("LANG".into(), "en_US.UTF-8".into()),
            ("LC_ALL".into(), "".into()),
            ("GDK_BACKEND".into(), "x11".into()),
            ("NO_AT_BRIDGE".into(), "1".into()),
        ];
        env.extend(self.extra_env.iter().cloned());
        env
    }

    /// Start a helper program (a desktop peer: a notification server, a tray host...) in
    /// the app's environment, its output in `<out>/<log>`; it ends with the others.
    pub fn start_peer(&mut self, mut c: Command, log: &str) -> u32 {
        let file = std::fs::File::create(self.out.join(log)).expect("log file");
        let child = c
            .envs(self.env())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", c.get_program()));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Start the app straight (no WebDriver): for the cold-start and memory figures.
    pub fn spawn_app(&mut self, extra: &[(&str, String)], args: &[&str]) -> u32 {
        let mut c = Command::new(app_binary());
        c.args(args)
            .envs(self.env())
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.out.join("app.stderr")).expect("log file"))
            .process_group(0);
        let child = c.spawn().expect("start the app");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Start `tauri-driver` and open a WebDriver session on the app.
    pub async fn session(&mut self, args: &[&str]) -> Client {
        let driver = tauri_driver();
        let native = need("WebKitWebDriver", "apt-get install webkit2gtk-driver");
        let port = free_port();
        let native_port = free_port();
        let log = std::fs::File::create(self.out.join("tauri-driver.log")).expect("log file");
        let child = Command::new(driver)
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            .arg("--native-driver")
            .arg(native)
            .envs(self.env())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start tauri-driver");
        self.children.push(child);
        // Both tauri-driver and the WebKitWebDriver it starts must listen: a session
        // asked for before the second does is dropped half-way (IncompleteMessage).
        wait_for("tauri-driver", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", native_port)).is_ok()
        });
        let mut caps = serde_json::Map::new();
        caps.insert(
            "tauri:options".into(),
            serde_json::json!({
                "application": app_binary(),
                "args": args,
            }),
        );
        caps.insert("browserName".into(), "wry".into());
        let url = format!("http://127.0.0.1:{port}");
        // A connection dropped before the session exists is retried (twice at most);
        // any other refusal fails at once.
        for attempt in 1.. {
            trace("open a WebDriver session");
            let mut builder =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            builder.capabilities(caps.clone());
            let result = tokio::time::timeout(Duration::from_secs(60), builder.connect(&url))
                .await
                .expect("the WebDriver session opens within a minute");
            match result {
                Ok(c) => return c,
                Err(
                    e @ (fantoccini::error::NewSessionError::Failed(_)
                    | fantoccini::error::NewSessionError::FailedC(_)
                    | fantoccini::error::NewSessionError::Lost(_)),
                ) if attempt < 3 => {
                    trace(&format!("no session yet ({e}); again"));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("no WebDriver session: {e}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Save a screenshot of the screen (the virtual display is the window's size, 1280×720)
    /// as `NN-name.png` in the test's output folder. It is taken from the X server, as a
    /// person would see it: WebKitWebDriver's own screenshot sometimes never answers when
    /// nothing is being painted.
    pub async fn shot(&mut self, c: &Client, name: &str) {
        self.shots += 1;
        trace(&format!("screenshot {name}"));
        // Let the last change be painted: two animation frames, then a little time.
        let _ = c
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 requestAnimationFrame(() => requestAnimationFrame(() => done(0)));",
                vec![],
            )
            .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let path = self.out.join(format!("{:02}-{name}.png", self.shots));
        let import = need("import", "apt-get install imagemagick");
        let status = Command::new(import)
            .args(["-display", &self.display, "-window", "root"])
            .arg(&path)
            .stderr(Stdio::null())
            .status()
            .expect("run import");
        assert!(
            status.success(),
            "screenshot {name}: import failed ({status})"
        );
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        // A failed test leaves a picture of the screen it failed on.
        if std::thread::panicking() && !self.display.is_empty() {
            let _ = Command::new("import")
                .args(["-display", &self.display, "-window", "root"])
                .arg(self.out.join("failure.png"))
                .stderr(Stdio::null())
                .status();
        }
        // Every child leads its own process group: end the groups, drivers' children too.
        for c in self.children.iter().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for c in self.children.iter_mut().rev() {
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
            let _ = c.wait();
        }
    }
}

/// Print what the test is doing, with the time since the test binary started (shown with
/// `--nocapture`, and by the test harness when a test fails).
pub fn trace(what: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[e2e {t:7.2}s] {what}");
}

/// Run a test's body with a time limit: a WebDriver call that never answers fails the
/// test (and its [`Desktop`] guard ends everything it started) instead of hanging the run.
pub async fn limit<F: std::future::Future<Output = ()>>(secs: u64, body: F) {
    if tokio::time::timeout(Duration::from_secs(secs), body)
        .await
        .is_err()
    {
        panic!("the test did not finish within {secs} s (its trace above shows the last step)");
    }
}

/// Wait for an element to appear (at most `secs` seconds).
pub async fn find(c: &Client, css: &str, secs: u64) -> Element {
    trace(&format!("find {css}"));
    c.wait()
        .at_most(Duration::from_secs(secs))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css} after {secs} s: {e}"))
}

/// The text of an element.
pub async fn text(c: &Client, css: &str) -> String {
    find(c, css, 10).await.text().await.expect("text")
}

/// Wait until an element's text satisfies `ok`.
pub async fn until_text(c: &Client, css: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
    trace(&format!("wait for the text of {css}"));
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if ok(&t) {
                    return t;
                }
                if Instant::now() > deadline {
                    panic!("{css} never got the expected text; it reads {t:?}");
                }
            }
        }
        assert!(Instant::now() < deadline, "{css} never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Press keys on whatever has the focus, as a person would: each key down and up, with
/// modifiers (`Key::Control` ...) held from their first appearance to the end.
pub async fn press(c: &Client, keys: &[char]) {
    trace(&format!("press {keys:?}"));
    let mods: Vec<char> = [Key::Control, Key::Alt, Key::Shift]
        .into_iter()
        .map(char::from)
        .collect();
    let mut held = Vec::new();
    let mut seq = KeyActions::new("keyboard".into());
    for &k in keys {
        seq = seq.then(KeyAction::Down { value: k });
        if mods.contains(&k) {
            held.push(k);
        } else {
            seq = seq.then(KeyAction::Up { value: k });
        }
    }
    for k in held.into_iter().rev() {
        seq = seq.then(KeyAction::Up { value: k });
    }
    c.perform_actions(seq).await.expect("keys pressed");
}

/// Type text into the element with the focus.
pub async fn type_text(c: &Client, text: &str) {
    press(c, &text.chars().collect::<Vec<_>>()).await;
}

/// Answer the password prompt with the demo administrator's login and password.
pub async fn give_demo_admin_password(c: &Client) {
    find(c, "[data-testid=guard]", 10).await;
    type_text(c, "admin").await;
    find(c, "[data-testid=guard-password]", 5)
        .await
        .click()
        .await
        .expect("password");
    type_text(c, "callhelper-demo").await;
    press(c, &[k(Key::Enter)]).await;
}

/// The value of a JavaScript expression in the page.
pub async fn js(c: &Client, expr: &str) -> serde_json::Value {
    c.execute(&format!("return {expr};"), vec![])
        .await
        .expect("script ran")
}

/// End the session, failing the test if the page met an uncaught error on the way (the
/// interface keeps them in `window.__callhelperErrors`).
pub async fn finish(c: Client) {
    let errors = js(&c, "window.__callhelperErrors || []").await;
    assert_eq!(errors, serde_json::json!([]), "uncaught errors in the page");
    c.close().await.expect("close the WebDriver session");
}

/// Open the test's database the way an administrator would.
pub fn open_store(
    data: &Path,
) -> (
    callhelper_core::data::store::Store,
    callhelper_core::data::store::Session,
) {
    use callhelper_core::data::{self, KeyChoice};
    use callhelper_core::paths::DataDir;
    let dir = DataDir::at(data);
    let store =
        data::open(&dir, &KeyChoice::Passphrase(PASSPHRASE.into())).expect("open the database");
    let admin = data::login(
        &store,
        callhelper_core::desktop::DEMO_ADMIN,
        callhelper_core::desktop::DEMO_ADMIN_PASSWORD,
    )
    .expect("the demo administrator signs in");
    (store, admin)
}

pub use fantoccini::key::Key as K;

/// A key as a `char` for [`press`].
pub fn k(key: Key) -> char {
    char::from(key)
}

/// Wait until the script panel shows the step titled `title`.
pub async fn step_is_title(c: &Client, title: &str) {
    until_text(c, "[data-testid=step-title]", 10, |t| t == title).await;
}

/// Give the script panel the focus (where its hotkeys go), as Escape from a field does.
pub async fn focus_panel(c: &Client) {
    find(c, "[data-testid=script-panel]", 10).await;
    js(
        c,
        "(document.querySelector('[data-testid=script-panel]').focus(), 0)",
    )
    .await;
}
