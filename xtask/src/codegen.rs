//! Generated files, and the check that they match what the code would generate now.
//!
//! Each generated file is produced from Rust types; CI runs `codegen --check`, which fails
//! when someone changed the types without regenerating (or edited the file by hand).

use std::path::Path;

/// A generated file: its path from the root and its current content.
struct Generated {
    path: &'static str,
    content: String,
}

fn all(root: &Path) -> Result<Vec<Generated>, String> {
    let schema = callhelper_script::json_schema();
    Ok(vec![
        Generated {
            path: "docs/script-schema.json",
            content: format!(
                "{}\n",
                serde_json::to_string_pretty(&schema).expect("a schema is always JSON")
            ),
        },
        Generated {
            path: "ui/src/lib/bindings.ts",
            content: desktop_bindings(root)?,
        },
    ])
}

/// The interface's TypeScript types of the desktop shell's commands and events. The shell
/// generates them from its Rust types (`src-tauri/src/bindings.rs`); xtask does not link
/// the shell (it needs WebKitGTK), so it runs it.
fn desktop_bindings(root: &Path) -> Result<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let args = [
        "run",
        "--quiet",
        "-p",
        "callhelper-desktop",
        "--",
        "--print-bindings",
    ];
    eprintln!("$ {cargo} {}", args.join(" "));
    let out = std::process::Command::new(&cargo)
        .args(args)
        .current_dir(root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start {cargo}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cargo} {}` failed ({})",
            args.join(" "),
            out.status
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("the bindings are not UTF-8: {e}"))
}

/// Write every generated file, or with `check`, fail when any differs.
pub fn run(root: &Path, check: bool) -> Result<(), String> {
    let mut stale = Vec::new();
    for g in all(root)? {
        let path = root.join(g.path);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == g.content {
            continue;
        }
        if check {
            stale.push(g.path);
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            std::fs::write(&path, &g.content).map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("xtask: wrote {}", g.path);
        }
    }
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "generated files are out of date: {}; run `cargo xtask codegen`",
            stale.join(", ")
        ))
    }
}
