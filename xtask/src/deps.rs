//! System packages the product and its tests need, installed with apt.
//!
//! Each part of the product lists its own packages here, with the reason, so the list
//! stays readable and one `apt-get install` does the whole set-up.

use std::process::Command;

/// What the packages are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Building and running the product.
    Run,
    /// Running the whole test suite.
    Test,
}

/// A group of Debian packages and why they are needed.
struct Group {
    why: &'static str,
    purpose: Purpose,
    packages: &'static [&'static str],
}

const GROUPS: &[Group] = &[
    Group {
        why: "C toolchain for crates that build C code",
        purpose: Purpose::Run,
        packages: &["build-essential", "pkg-config"],
    },
    Group {
        why: "store: the database key in the OS keychain (Secret Service over D-Bus)",
        purpose: Purpose::Run,
        packages: &["libdbus-1-dev"],
    },
    Group {
        why: "licence server tests on PostgreSQL: a scratch server started by the test run",
        purpose: Purpose::Test,
        packages: &["postgresql"],
    },
    Group {
        why: "store tests: a private D-Bus session with an unlocked GNOME Keyring",
        purpose: Purpose::Test,
        packages: &["dbus", "dbus-x11", "gnome-keyring"],
    },
    Group {
        why: "desktop app: WebKitGTK and GTK (Tauri), the tray icon, SVG icons",
        purpose: Purpose::Run,
        packages: &[
            "libwebkit2gtk-4.1-dev",
            "libayatana-appindicator3-dev",
            "librsvg2-dev",
        ],
    },
    Group {
        why: "desktop tests: a virtual display, WebKit's WebDriver, a session bus, screenshots",
        purpose: Purpose::Test,
        packages: &[
            "xvfb",
            "xauth",
            "webkit2gtk-driver",
            "x11-utils",
            "dbus",
            "imagemagick",
        ],
    },
    Group {
        why: "desktop shell tests: a tray host (StatusNotifierWatcher), a notification \
              server, XTEST key presses, busctl (the tests' SIP caller, SIPp, is the phone's)",
        purpose: Purpose::Test,
        packages: &[
            "ayatana-indicator-application",
            "dunst",
            "xdotool",
            "systemd",
            "sip-tester",
        ],
    },
    Group {
        why: "phone: liblinphone (the SIP and media engine) and libclang for its bindings",
        purpose: Purpose::Run,
        packages: &["liblinphone-dev", "libclang-dev"],
    },
    Group {
        why: "phone tests and benchmark: SIPp, Kamailio (with TLS), baresip, openssl, tcpdump",
        purpose: Purpose::Test,
        packages: &[
            "sip-tester",
            "kamailio",
            "kamailio-tls-modules",
            "baresip",
            "openssl",
            "tcpdump",
        ],
    },
    Group {
        why: "phone and desktop tests: the microphone/speaker test on a private PulseAudio server",
        purpose: Purpose::Test,
        packages: &["pulseaudio"],
    },
];

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Install the missing packages for `purpose` (as root), or say what to install.
pub fn ensure(purpose: Purpose) -> Result<(), String> {
    if Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "xtask: not a Debian/Ubuntu system; install the packages listed in README.md yourself"
        );
        return Ok(());
    }
    let wanted: Vec<&str> = GROUPS
        .iter()
        .filter(|g| purpose == Purpose::Test || g.purpose == Purpose::Run)
        .flat_map(|g| g.packages.iter().copied())
        .collect();
    let missing: Vec<&str> = wanted.into_iter().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    for g in GROUPS {
        let m: Vec<&&str> = g.packages.iter().filter(|p| missing.contains(p)).collect();
        if !m.is_empty() {
            eprintln!(
                "xtask: missing for {}: {}",
                g.why,
                m.iter().map(|p| **p).collect::<Vec<_>>().join(" ")
            );
        }
    }
    if !is_root() {
        return Err(format!(
            "install the missing packages first:\n  sudo apt-get install -y {}",
            missing.join(" ")
        ));
    }
    let apt = |args: &[&str]| -> Result<(), String> {
        let status = Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=900"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("cannot start apt-get: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("apt-get {} failed ({status})", args.join(" ")))
        }
    };
    // The package lists may be stale or absent on a fresh machine.
    if apt(&["install", "-y", "--no-install-recommends"]
        .iter()
        .copied()
        .chain(missing.iter().copied())
        .collect::<Vec<_>>())
    .is_err()
    {
        apt(&["update", "-q"])?;
        apt(&["install", "-y", "--no-install-recommends"]
            .iter()
            .copied()
            .chain(missing.iter().copied())
            .collect::<Vec<_>>())?;
    }
    Ok(())
}
