//! A peer program (SIPp, Kamailio, baresip) run by a test: in its own process group, its
//! output in a log file, and the whole group killed when the guard drops — also when the
//! test panics.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Peer {
    name: String,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Peer {
    /// Start `cmd` with its output going to `<dir>/<name>.log`.
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Peer {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("create peer log");
        let err = out.try_clone().expect("clone log handle");
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Peer {
            name: name.into(),
            child,
            log,
            exited: None,
        }
    }

    /// Everything the peer printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Wait until the output contains `needle`; panics with the output on timeout or exit.
    pub fn wait_output(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.output().contains(needle) {
                return;
            }
            if let Some(st) = self.try_exit() {
                panic!(
                    "{} exited ({st}) before printing {needle:?}:\n{}",
                    self.name,
                    self.tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} did not print {needle:?} within {timeout:?}:\n{}",
            self.name,
            self.tail()
        );
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Wait for the peer to exit on its own; panics with its output on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.try_exit() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} still running after {timeout:?}:\n{}",
            self.name,
            self.tail()
        );
    }

    /// Wait for a clean exit (status 0); panics with the output otherwise.
    pub fn expect_success(&mut self, timeout: Duration) {
        let st = self.wait_exit(timeout);
        assert!(
            st.success(),
            "{} failed ({st}):\n{}",
            self.name,
            self.tail()
        );
    }

    /// The last lines of the output, for failure messages.
    pub fn tail(&self) -> String {
        let out = self.output();
        let lines: Vec<&str> = out.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    fn signal_group(&self, sig: i32) {
        let pgid = self.child.id() as i32;
        // SAFETY: plain syscall; the group is the one we created for this child.
        unsafe { libc::kill(-pgid, sig) };
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            self.signal_group(libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && self.try_exit().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Children of the peer (Kamailio's workers) may outlive it: kill the group.
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait();
    }
}
