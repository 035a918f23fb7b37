//! The shell's desktop plumbing against real desktop peers, in the built app under Xvfb:
//!
//! - the tray: Debian's Ayatana application-indicator service is the StatusNotifierWatcher
//!   on a private session bus; the test reads the app's StatusNotifierItem (status, icon)
//!   and its `com.canonical.dbusmenu` menu with `busctl`, clicks the statuses through the
//!   menu's `Event` method, and checks the window, the menu and the icon follow;
//! - "Do not disturb" set from the tray turns a real SIP call down (SIPp gets 486);
//! - a native notification for an incoming call: `dunst` is the notification server, and
//!   `dunstctl history` shows what it received (the caller named from the contacts);
//! - the global hotkeys: with another X window focused, `xdotool` (XTEST) presses
//!   Ctrl+Alt+A and Ctrl+Alt+H, and the call SIPp placed is answered and hung up;
//! - the tray's "Show CallHelper" brings the window forward from behind another program,
//!   and its "Quit" ends the app, leaving a database that opens.
//!
//! Not covered: the tray's tooltip. libayatana-appindicator (Tauri's tray on Linux) has no
//! ToolTip property on its item, so the status shows in the menu's check marks and the icon.
//!
//! The SIP peer is SIPp with the scenarios in `tests/e2e/sip/`, calling the app's fixed
//! SIP port on 127.0.0.1 (set in `phone/phone.json` before the first start).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{self, Desktop, find, need, trace, until_text, wait_for};

/// `busctl --json=short` on the test's bus; the parsed answer.
fn busctl(bus: &str, args: &[&str]) -> Result<Value, String> {
    let out = Command::new("busctl")
        .arg(format!("--address={bus}"))
        .arg("--json=short")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("busctl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "busctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| format!("busctl {args:?}: {e}: {text}"))
}

fn has_owner(bus: &str, name: &str) -> bool {
    busctl(
        bus,
        &[
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            "s",
            name,
        ],
    )
    .is_ok_and(|v| v["data"][0] == Value::Bool(true))
}

/// A private session bus with a configuration of its own: no service activation, so only
/// the peers the test starts answer (a notification server installed on the machine is
/// not started behind the test's back).
fn private_bus(d: &mut Desktop) -> String {
    let dir = d.home.path().join("dbus");
    std::fs::create_dir_all(&dir).expect("bus folder");
    let socket = dir.join("bus");
    let config = dir.join("session.conf");
    std::fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            socket.display()
        ),
    )
    .expect("bus configuration");
    let mut c = Command::new(need("dbus-daemon", "apt-get install dbus"));
    c.arg(format!("--config-file={}", config.display())).args([
        "--nofork",
        "--nopidfile",
        "--print-address=1",
    ]);
    d.start_peer(c, "dbus-daemon.log");
    let address = format!("unix:path={}", socket.display());
    wait_for("the private session bus", Duration::from_secs(10), || {
        socket.exists() && has_owner(&address, "org.freedesktop.DBus")
    });
    address
}

/// A port free for both UDP and TCP on 127.0.0.1 (the phone listens on both).
fn free_sip_port() -> u16 {
    for _ in 0..50 {
        let port = harness::free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// Whether two images have the same pixels (ImageMagick's `compare`).
fn same_pixels(a: &Path, b: &Path) -> bool {
    let out = Command::new(need("compare", "apt-get install imagemagick"))
        .args(["-metric", "AE"])
        .arg(a)
        .arg(b)
        .arg("null:")
        .output()
        .expect("run compare");
    // `compare` prints the count of differing pixels on stderr.
    String::from_utf8_lossy(&out.stderr).trim() == "0"
}

fn icon(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../icons")
        .join(format!("tray-{name}.png"))
}

/// The app's tray item as the watcher knows it: (bus name, object path).
fn tray_item(bus: &str) -> (String, String) {
    let mut found = None;
    wait_for(
        "the tray item registered with the StatusNotifierWatcher",
        Duration::from_secs(30),
        || {
            let v = busctl(
                bus,
                &[
                    "get-property",
                    "org.kde.StatusNotifierWatcher",
                    "/StatusNotifierWatcher",
                    "org.kde.StatusNotifierWatcher",
                    "RegisteredStatusNotifierItems",
                ],
            );
            if let Some(item) = v
                .ok()
                .and_then(|v| v["data"][0].as_str().map(str::to_owned))
            {
                found = Some(item);
                true
            } else {
                false
            }
        },
    );
    let item = found.expect("found");
    // The watcher keeps "<unique name><object path>" (the spec's form for a path).
    let slash = item.find('/').expect("an object path in {item}");
    (item[..slash].to_owned(), item[slash..].to_owned())
}

fn item_property(bus: &str, (name, path): &(String, String), prop: &str) -> Value {
    busctl(
        bus,
        &[
            "get-property",
            name,
            path,
            "org.kde.StatusNotifierItem",
            prop,
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"))["data"]
        .clone()
}

/// The tray menu's entries: (id, label, checked).
fn menu(bus: &str, name: &str, menu_path: &str) -> Vec<(i64, String, Option<bool>)> {
    let v = busctl(
        bus,
        &[
            "call",
            name,
            menu_path,
            "com.canonical.dbusmenu",
            "GetLayout",
            "iias",
            "--",
            "0",
            "-1",
            "0",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // u(ia{sv}av): the revision, then the root (id, properties, children).
    let children = v["data"][1][2].as_array().expect("the root's children");
    children
        .iter()
        .map(|c| {
            let (id, props) = (&c["data"][0], &c["data"][1]);
            let label = props["label"]["data"]
                .as_str()
                .or_else(|| props["type"]["data"].as_str())
                .unwrap_or_default()
                .to_owned();
            let checked = (props["toggle-type"]["data"] == "checkmark")
                .then(|| props["toggle-state"]["data"] == 1);
            (id.as_i64().expect("an id"), label, checked)
        })
        .collect()
}

/// Click a tray menu entry by its label, as a tray host does (dbusmenu's `Event`).
fn click(bus: &str, name: &str, menu_path: &str, label: &str) {
    try_click(bus, name, menu_path, label).unwrap_or_else(|e| panic!("{e}"));
}

/// [`click`], giving back busctl's error instead of failing: an entry that ends the app
/// may end it before the method's answer is sent.
fn try_click(bus: &str, name: &str, menu_path: &str, label: &str) -> Result<Value, String> {
    trace(&format!("tray: click {label:?}"));
    let entries = menu(bus, name, menu_path);
    let id = entries
        .iter()
        .find(|e| e.1 == label)
        .unwrap_or_else(|| panic!("no {label:?} in the tray menu: {entries:?}"))
        .0;
    busctl(
        bus,
        &[
            "call",
            name,
            menu_path,
            "com.canonical.dbusmenu",
            "Event",
            "isvu",
            "--",
            &id.to_string(),
            "clicked",
            "s",
            "",
            "0",
        ],
    )
}

/// Wait until the tray shows `status`: the menu's check mark on `label` only, and the icon
/// file the item names has the pixels of `icons/tray-<icon>.png`.
fn tray_shows(bus: &str, item: &(String, String), menu_path: &str, label: &str, icon_name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entries = menu(bus, &item.0, menu_path);
        let checked: Vec<&str> = entries
            .iter()
            .filter(|e| e.2 == Some(true))
            .map(|e| e.1.as_str())
            .collect();
        let theme = item_property(bus, item, "IconThemePath");
        let name = item_property(bus, item, "IconName");
        let file =
            Path::new(theme.as_str().unwrap_or_default()).join(name.as_str().unwrap_or_default());
        let file = if file.extension().is_some() {
            file
        } else {
            file.with_extension("png")
        };
        if checked == [label] && file.is_file() && same_pixels(&file, &icon(icon_name)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the tray never showed {label}: checked {checked:?}, icon {}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The window's status selector reads `value`.
async fn window_status_is(c: &fantoccini::Client, value: &str) {
    trace(&format!("window status {value}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = harness::js(c, "document.querySelector('[data-testid=status]')?.value").await;
        if v == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the window's status reads {v}, not {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sipp(d: &Desktop, scenario: &str, sip_port: u16) -> Command {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/sip")
        .join(scenario);
    let mut c = Command::new(need("sipp", "apt-get install sip-tester"));
    c.arg("-sf")
        .arg(file)
        .args(["-i", "127.0.0.1", "-p"])
        .arg(free_sip_port().to_string())
        .arg("-mp")
        .arg(free_sip_port().to_string())
        .args(["-m", "1", "-timeout", "90", "-timeout_error", "-nostdin"])
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(d.out.join(format!("sipp-{scenario}.log")))
        .arg(format!("127.0.0.1:{sip_port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn xdotool(d: &Desktop, args: &[&str]) -> String {
    let out = Command::new(need("xdotool", "apt-get install xdotool"))
        .args(args)
        .env("DISPLAY", &d.display)
        .output()
        .expect("run xdotool");
    assert!(
        out.status.success(),
        "xdotool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Give the X focus to the other program's window and check the app has none of it.
fn focus_elsewhere(d: &Desktop, other: &str, app_windows: &[String]) {
    xdotool(d, &["windowfocus", "--sync", other]);
    let focused = xdotool(d, &["getwindowfocus"]);
    assert_eq!(focused, other, "the other program's window has the focus");
    assert!(
        !app_windows.contains(&focused),
        "the app's window must not have the focus"
    );
}

/// What dunst received: (summary, body, app name) of each notification, once shown ones
/// are closed into its history.
fn notifications(d: &Desktop) -> Vec<(String, String, String)> {
    let dunstctl = need("dunstctl", "apt-get install dunst");
    let run = |args: &[&str]| {
        Command::new(&dunstctl)
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &d.bus)
            .output()
            .expect("run dunstctl")
    };
    run(&["close-all"]);
    let out = run(&["history"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "dunstctl history: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    v["data"][0]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    let s = |k: &str| n[k]["data"].as_str().unwrap_or_default().to_owned();
                    (s("summary"), s("body"), s("appname"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tray_notifications_and_global_hotkeys_work_with_real_desktop_peers() {
    let _one = crate::serial().await;
    harness::limit(300, async {
        let mut d = Desktop::new("shell");
        d.bus = private_bus(&mut d);
        let bus = d.bus.clone();

        // The tray host: Ayatana's indicator service owns org.kde.StatusNotifierWatcher.
        let watcher = "/usr/libexec/ayatana-indicator-application/ayatana-indicator-application-service";
        assert!(
            Path::new(watcher).is_file(),
            "{watcher} is missing: apt-get install ayatana-indicator-application (or run `cargo xtask test`)"
        );
        d.start_peer(Command::new(watcher), "tray-watcher.log");
        wait_for("the StatusNotifierWatcher", Duration::from_secs(15), || {
            has_owner(&bus, "org.kde.StatusNotifierWatcher")
        });
        // The notification server.
        d.start_peer(
            Command::new(need("dunst", "apt-get install dunst")),
            "dunst.log",
        );
        wait_for("dunst on the bus", Duration::from_secs(15), || {
            has_owner(&bus, "org.freedesktop.Notifications")
        });
        // Another program with a window, to hold the X focus while hotkeys are pressed.
        d.start_peer(
            {
                let mut c = Command::new(need("xmessage", "apt-get install x11-utils"));
                c.args(["-geometry", "320x80+940+620", "another program has the focus"]);
                c
            },
            "xmessage.log",
        );

        // A fixed SIP port on 127.0.0.1, so SIPp knows where to call.
        let sip_port = free_sip_port();
        let phone = d.data.join("phone");
        std::fs::create_dir_all(&phone).expect("phone folder");
        std::fs::write(
            phone.join("phone.json"),
            format!("{{\"sip_port\": {sip_port}}}"),
        )
        .expect("phone.json");

        let c = d.session(&[]).await;
        find(&c, "[data-testid=call-demo]", 30).await;
        window_status_is(&c, "available").await;

        // The tray item, as the watcher has it.
        let item = tray_item(&bus);
        trace(&format!("tray item {item:?}"));
        assert_eq!(item_property(&bus, &item, "Status"), "Active");
        assert_eq!(item_property(&bus, &item, "Category"), "ApplicationStatus");
        let menu_path = item_property(&bus, &item, "Menu")
            .as_str()
            .expect("a menu path")
            .to_owned();
        let labels: Vec<String> = menu(&bus, &item.0, &menu_path)
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(
            labels,
            [
                "Available",
                "Busy",
                "Do not disturb",
                "separator",
                "Show CallHelper",
                "Quit"
            ]
        );
        tray_shows(&bus, &item, &menu_path, "Available", "available");

        // Busy from the tray: the window, the menu and the icon follow.
        click(&bus, &item.0, &menu_path, "Busy");
        window_status_is(&c, "busy").await;
        tray_shows(&bus, &item, &menu_path, "Busy", "busy");
        d.shot(&c, "tray-busy").await;

        // Do not disturb from the tray: a real call is turned down busy, without a
        // notification.
        click(&bus, &item.0, &menu_path, "Do not disturb");
        window_status_is(&c, "do_not_disturb").await;
        tray_shows(&bus, &item, &menu_path, "Do not disturb", "dnd");
        trace("SIPp calls the agent in do-not-disturb");
        let out = sipp(&d, "ring-busy.xml", sip_port)
            .output()
            .expect("run sipp");
        assert!(
            out.status.success(),
            "SIPp expected 486 Busy Here ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(notifications(&d), [], "no notification in do-not-disturb");
        assert!(
            c.find(fantoccini::Locator::Css("[data-testid=incoming]"))
                .await
                .is_err(),
            "no incoming-call pop-up in do-not-disturb"
        );

        // Available again (from the tray), and a client calls.
        click(&bus, &item.0, &menu_path, "Available");
        window_status_is(&c, "available").await;
        tray_shows(&bus, &item, &menu_path, "Available", "available");
        trace("SIPp calls the agent");
        let mut call = sipp(&d, "ring-agent.xml", sip_port)
            .spawn()
            .expect("start sipp");
        let popup = until_text(&c, "[data-testid=incoming]", 20, |t| {
            t.contains("Ирина Смирнова")
        })
        .await;
        trace(&format!("pop-up: {popup:?}"));

        // The notification names the caller from the contacts.
        let mut got = Vec::new();
        wait_for("the notification", Duration::from_secs(10), || {
            got = notifications(&d);
            !got.is_empty()
        });
        assert_eq!(
            got,
            [(
                "Incoming call".to_owned(),
                "Ирина Смирнова (ООО «Ромашка»)".to_owned(),
                "callhelper-desktop".to_owned()
            )],
            "the notification dunst received"
        );

        // Hotkeys with another program focused: XTEST key presses reach the app only
        // through its global grabs.
        let app_windows: Vec<String> = xdotool(&d, &["search", "--name", "^CallHelper$"])
            .lines()
            .map(str::to_owned)
            .collect();
        assert!(!app_windows.is_empty(), "the app's window is on the display");
        let other = xdotool(&d, &["search", "--class", "xmessage"])
            .lines()
            .next()
            .expect("the other program's window")
            .to_owned();
        focus_elsewhere(&d, &other, &app_windows);
        d.shot(&c, "ringing-other-window-focused").await;
        trace("xdotool: Ctrl+Alt+A");
        xdotool(&d, &["key", "--clearmodifiers", "ctrl+alt+a"]);
        find(&c, "[data-testid=call][data-phase=connected]", 15).await;
        let who = harness::text(&c, "[data-testid=call-who]").await;
        assert_eq!(who, "Ирина Смирнова");
        d.shot(&c, "answered-by-hotkey").await;

        focus_elsewhere(&d, &other, &app_windows);
        trace("xdotool: Ctrl+Alt+H");
        xdotool(&d, &["key", "--clearmodifiers", "ctrl+alt+h"]);
        find(&c, "[data-testid=call][data-phase=ended]", 15).await;
        // SIPp got the BYE and answered it: its scenario finished.
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = call.try_wait().expect("sipp") {
                break s;
            }
            assert!(Instant::now() < deadline, "SIPp never got the hang-up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut err = String::new();
        if let Some(mut e) = call.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "SIPp's call failed ({status}): {err}");
        d.shot(&c, "hung-up-by-hotkey").await;

        // The call is in the database: inbound, from the client, answered.
        let (store, admin) = harness::open_store(&d.data);
        let calls = store.recent_calls(&admin, 10).expect("calls");
        assert_eq!(calls.len(), 1, "one call stored (the one turned down never rang)");
        let call = &calls[0];
        assert_eq!(format!("{:?}", call.direction), "Inbound");
        assert!(call.contact.is_some(), "the caller is the sample contact");
        assert!(call.answered_at.is_some() && call.ended_at.is_some());

        // The tray's own entries: "Show CallHelper" brings the window forward from behind
        // another program, "Quit" ends the app (its tray item leaves the bus, its window
        // the display).
        focus_elsewhere(&d, &other, &app_windows);
        click(&bus, &item.0, &menu_path, "Show CallHelper");
        wait_for("the window brought forward", Duration::from_secs(10), || {
            app_windows.contains(&xdotool(&d, &["getwindowfocus"]))
        });
        let errors = harness::js(&c, "window.__callhelperErrors || []").await;
        assert_eq!(errors, serde_json::json!([]), "uncaught errors in the page");
        // The app may quit before dbusmenu's answer leaves it: what follows checks it did.
        let _ = try_click(&bus, &item.0, &menu_path, "Quit");
        wait_for("the app to quit", Duration::from_secs(15), || {
            !has_owner(&bus, &item.0)
        });
        let left = Command::new(need("xdotool", "apt-get install xdotool"))
            .args(["search", "--name", "^CallHelper$"])
            .env("DISPLAY", &d.display)
            .output()
            .expect("run xdotool");
        assert!(
            String::from_utf8_lossy(&left.stdout).trim().is_empty(),
            "the app's window is still on the display"
        );
        // The session ended with the app; the database it left opens.
        drop(c);
        let (store, admin) = harness::open_store(&d.data);
        assert_eq!(store.recent_calls(&admin, 10).expect("calls").len(), 1);
    })
    .await;
}
