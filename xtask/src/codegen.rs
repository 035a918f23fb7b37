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

fn all() -> Vec<Generated> {
    let schema = callhelper_script::json_schema();
    vec![Generated {
        path: "docs/script-schema.json",
        content: format!(
            "{}\n",
            serde_json::to_string_pretty(&schema).expect("a schema is always JSON")
        ),
    }]
}

/// Write every generated file, or with `check`, fail when any differs.
pub fn run(root: &Path, check: bool) -> Result<(), String> {
    let mut stale = Vec::new();
    for g in all() {
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
