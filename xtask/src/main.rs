//! Project tasks, so that a newcomer needs two commands and CI needs one.
//!
//! - `cargo xtask run`: install what the product needs, build the desktop app (interface
//!   and shell), and start it; on a first start it opens the demo.
//! - `cargo xtask test`: install what the tests need, then formatting, lints, generated-file
//!   drift, and the whole test suite.
//! - `cargo xtask codegen [--check]`: write (or check) the generated files.
//!
//! System packages come from Debian/Ubuntu with apt when run as root; otherwise the task
//! prints the `apt-get install` line to run and stops.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod codegen;
mod deps;
mod postgres;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&root, &args[1..]),
        Some("test") => test(&root, &args[1..]),
        Some("codegen") => codegen::run(&root, args.iter().any(|a| a == "--check")),
        Some("deps") => deps::ensure(deps::Purpose::Test),
        Some("licence-pg") => postgres::licence_suite(&root, &cargo()),
        Some("bench-desktop") => bench_desktop(&root),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 run [ARGS]        install what is needed, build and start the desktop app\n  \
                 test [--no-lint]  install what is needed and run every check and test\n  \
                 codegen [--check] write (or check) generated files\n  \
                 deps              install the system packages the tests need\n  \
                 licence-pg        run the licence server's tests on a scratch PostgreSQL\n  \
                 bench-desktop     print the desktop app's start-up, memory and key-to-paint figures"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the folder above `xtask/`). `cargo run` says where the manifest is
/// at run time; that wins over the path built in, because two checkouts sharing one
/// `target/` can leave this binary built from the other checkout.
fn project_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join("Cargo.toml").is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Run a command in the project root; fail with its name when it fails.
pub(crate) fn sh(root: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn run(root: &Path, extra: &[String]) -> Result<(), String> {
    deps::ensure(deps::Purpose::Run)?;
    ui(root, false)?;
    let cargo = cargo();
    sh(
        root,
        &cargo,
        &["build", "--release", "-p", "callhelper-desktop"],
    )?;
    let bin = root.join("target/release/callhelper-desktop");
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        return Err(format!(
            "built {}, but there is no display to open its window on: run it from a desktop \
             session (or under `xvfb-run -a` to try it headless)",
            bin.display()
        ));
    }
    eprintln!("$ {} {}", bin.display(), extra.join(" "));
    let status = Command::new(&bin)
        .args(extra)
        .status()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("callhelper-desktop exited with {status}"))
    }
}

fn bench_desktop(root: &Path) -> Result<(), String> {
    deps::ensure(deps::Purpose::Test)?;
    tauri_driver()?;
    ui(root, false)?;
    sh(root, &cargo(), &["bench", "-p", "callhelper-desktop"])
}

/// The oldest Node.js the interface's tools (Vite 8) run on.
const NODE_MIN: (u32, u32) = (20, 19);

/// Install the interface's packages (`npm ci`, when the lock file changed) and build it
/// into `ui/dist`, which the desktop app embeds. With `check`, also type-check it and
/// run its component tests (Vitest).
fn ui(root: &Path, check: bool) -> Result<(), String> {
    let ui = root.join("ui");
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|_| {
            format!(
                "Node.js {}.{} or newer is needed to build the interface (https://nodejs.org, or your distribution's nodejs package if new enough)",
                NODE_MIN.0, NODE_MIN.1
            )
        })?;
    let v = String::from_utf8_lossy(&version.stdout);
    let mut parts = v.trim().trim_start_matches('v').split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if (major, minor) < NODE_MIN {
        return Err(format!(
            "Node.js {} is too old to build the interface; {}.{} or newer is needed",
            v.trim(),
            NODE_MIN.0,
            NODE_MIN.1
        ));
    }
    let stamp = ui.join("node_modules/.package-lock.json");
    let lock = ui.join("package-lock.json");
    let fresh = match (std::fs::metadata(&stamp), std::fs::metadata(&lock)) {
        (Ok(s), Ok(l)) => s.modified().ok() >= l.modified().ok(),
        _ => false,
    };
    if !fresh {
        sh(&ui, "npm", &["ci", "--no-audit", "--no-fund"])?;
    }
    if check {
        sh(&ui, "npm", &["run", "--silent", "check"])?;
        sh(&ui, "npm", &["run", "--silent", "test"])?;
    }
    sh(&ui, "npm", &["run", "--silent", "build"])
}

/// `tauri-driver` (the WebDriver server the desktop's end-to-end tests talk to), installed
/// from crates.io when missing.
fn tauri_driver() -> Result<(), String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let installed = home.is_some_and(|h| h.join("bin/tauri-driver").is_file())
        || Command::new("tauri-driver").arg("--help").output().is_ok();
    if installed {
        return Ok(());
    }
    let cargo = cargo();
    sh(
        Path::new("."),
        &cargo,
        &["install", "tauri-driver", "--locked", "--version", "^2"],
    )
}

fn test(root: &Path, extra: &[String]) -> Result<(), String> {
    deps::ensure(deps::Purpose::Test)?;
    tauri_driver()?;
    // The desktop app embeds the built interface, so it is built before any cargo step.
    ui(root, true)?;
    let cargo = cargo();
    let lint = !extra.iter().any(|a| a == "--no-lint");
    if lint {
        sh(root, &cargo, &["fmt", "--all", "--", "--check"])?;
        sh(
            root,
            &cargo,
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        )?;
    }
    codegen::run(root, true)?;
    sh(root, &cargo, &["test", "--workspace", "--all-targets"])?;
    sh(root, &cargo, &["test", "--workspace", "--doc"])?;
    // The licence server's PostgreSQL backend, on a scratch server of its own.
    postgres::licence_suite(root, &cargo)?;
    // Benchmarks are built and run once in test mode so they cannot rot; their figures
    // come from `cargo bench`.
    Ok(())
}
