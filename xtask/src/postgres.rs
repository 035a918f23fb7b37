//! A scratch PostgreSQL server for the licence server's suite on PostgreSQL: a fresh
//! cluster in a temporary folder, listening on 127.0.0.1 at a free port (and a socket in its
//! own folder), stopped and removed at the end whatever happened.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's PostgreSQL programs (`/usr/lib/postgresql/<version>/bin`), newest first, or
/// the ones on `PATH`.
fn bin_dir() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Ok(bin);
    }
    let on_path = Command::new("pg_ctl").arg("--version").output().is_ok();
    if on_path {
        return Ok(PathBuf::new());
    }
    Err("PostgreSQL is not installed: install the `postgresql` package".into())
}

/// A running scratch cluster; stopped and removed when dropped.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
}

impl Cluster {
    /// A command, as the `postgres` user when we are root (PostgreSQL refuses root).
    fn cmd(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn start() -> Result<(Cluster, u16), String> {
        let bin = bin_dir()?;
        let dir = std::env::temp_dir().join(format!("callhelper-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let as_postgres = is_root();
        let cluster = Cluster {
            bin,
            dir,
            as_postgres,
        };
        if as_postgres {
            run(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&cluster.dir))?;
        }
        let data = cluster.dir.join("data");
        run(cluster
            .cmd("initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off",
            cluster.dir.display()
        );
        run(cluster
            .cmd("pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(&data)
            .args(["-l"])
            .arg(cluster.dir.join("server.log"))
            .args(["-o", &options, "start"]))?;
        Ok((cluster, port))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .args(["-w", "-m", "fast", "-D"])
            .arg(self.dir.join("data"))
            .arg("stop")
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(c: &mut Command) -> Result<(), String> {
    let out = c
        .output()
        .map_err(|e| format!("cannot start {:?}: {e}", c.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed ({}): {}",
            c.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Run the licence server's suite against a scratch PostgreSQL server.
pub fn licence_suite(root: &Path, cargo: &str) -> Result<(), String> {
    let (cluster, port) = Cluster::start()?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    eprintln!(
        "$ CALLHELPER_LICENCE_TEST_POSTGRES={url} {cargo} test -p callhelper-licence-server --features postgres"
    );
    let status = Command::new(cargo)
        .args([
            "test",
            "-p",
            "callhelper-licence-server",
            "--features",
            "postgres",
        ])
        .env("CALLHELPER_LICENCE_TEST_POSTGRES", &url)
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot start {cargo}: {e}"))?;
    drop(cluster);
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "the licence server's suite on PostgreSQL failed ({status})"
        ))
    }
}
