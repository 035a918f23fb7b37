//! Tests of the `callhelper` binary as a user runs it (one module an area).

mod data;
mod phone;
mod script;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Run `callhelper` with arguments and standard input, in English, with its data in a
/// fresh folder.
pub fn callhelper(args: &[&str], stdin: &str) -> Output {
    let data = std::env::temp_dir().join(format!("callhelper-cli-test-{}", std::process::id()));
    callhelper_in(&data, args, stdin)
}

/// Run `callhelper` with arguments and standard input, in English, with its data in
/// `data`.
pub fn callhelper_in(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_callhelper"))
        .args(args)
        .env("CALLHELPER_DATA_DIR", data)
        .env("LANG", "en_GB.UTF-8")
        .env_remove("CALLHELPER_LANG")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).expect("input written");
    }
    child.wait_with_output().expect("the binary ends")
}

/// A file in the repository.
pub fn repo(path: &str) -> String {
    format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))
}
