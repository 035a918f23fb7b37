//! Project tasks, so that a newcomer needs two commands and CI needs one.
//!
//! - `cargo xtask run`: install what the product needs, build it, and start it.
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&root, &args[1..]),
        Some("test") => test(&root, &args[1..]),
        Some("codegen") => codegen::run(&root, args.iter().any(|a| a == "--check")),
        Some("deps") => deps::ensure(deps::Purpose::Test),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 run [ARGS]        install what is needed and start CallHelper (the demo)\n  \
                 test [--no-lint]  install what is needed and run every check and test\n  \
                 codegen [--check] write (or check) generated files\n  \
                 deps              install the system packages the tests need"
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

/// The workspace root (the folder above `xtask/`).
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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
    let cargo = cargo();
    sh(root, &cargo, &["build", "--release", "-p", "callhelper"])?;
    let bin = root.join("target/release/callhelper");
    let mut args: Vec<String> = extra.to_vec();
    if args.is_empty() {
        // Until the desktop app lands, the product is the command-line runner on the demo
        // script: a cold call with objections, in Russian.
        args = vec![
            "script".into(),
            "run".into(),
            root.join("scripts-examples/b2b-cold-call.ru.yaml")
                .display()
                .to_string(),
            "--contact".into(),
            root.join("scripts-examples/contacts/demo-contact.json")
                .display()
                .to_string(),
        ];
    }
    let status = Command::new(&bin)
        .args(&args)
        .status()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("callhelper exited with {status}"))
    }
}

fn test(root: &Path, extra: &[String]) -> Result<(), String> {
    deps::ensure(deps::Purpose::Test)?;
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
    // Benchmarks are built and run once in test mode so they cannot rot; their figures
    // come from `cargo bench`.
    Ok(())
}
