//! Load test of the licence server: many concurrent clients activate, renew and
//! deactivate seats of one licence on the real server process over loopback.
//!
//! `cargo bench -p callhelper-licence-server --bench load` (environment: `LOAD_CLIENTS`,
//! default 64; `LOAD_ROUNDS` per client, default 150; `LOAD_SEATS`, default 50; under
//! `cargo test` a small run: 12 clients, 20 rounds, 8 seats). Prints
//! requests/s and latency percentiles, and checks, by sampling the server's database
//! while the load runs and at the end, that the seats in use never exceed the licence's
//! seat count and that no seat is held twice. Bounded: a fixed number of rounds and at
//! most 120 s; loopback only.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use callhelper_licence::{Client, Error, LicenceKey, Machine, PublicKey, Trust};

const BIN: &str = env!("CARGO_BIN_EXE_callhelper-licence-server");
const DEADLINE: Duration = Duration::from_secs(120);

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn admin(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run the server binary");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Activate,
    Renew,
    Deactivate,
}

struct Sample {
    kind: Kind,
    micros: u64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not match "load" skips the run.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"load".contains(a.as_str()))
    {
        return;
    }
    // `cargo bench` runs the full load; `cargo test --all-targets` runs this binary
    // without `--bench`, as a quick check that it still works.
    let full = std::env::args().any(|a| a == "--bench");
    let clients = env_num("LOAD_CLIENTS", if full { 64 } else { 12 });
    let rounds = env_num("LOAD_ROUNDS", if full { 150 } else { 20 });
    let seats = env_num("LOAD_SEATS", if full { 50 } else { 8 });

    let dir: PathBuf =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("licence-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let public = PublicKey::from_hex(admin(&dir, &["keygen"]).trim()).expect("public key");
    let trust = Trust::new([public]);
    let key_text = admin(
        &dir,
        &[
            "issue",
            "--customer",
            "Load Test",
            "--seats",
            &seats.to_string(),
            "--days",
            "30",
        ],
    );
    let key = LicenceKey::parse(key_text.trim(), &trust).expect("issued key");

    let mut child = Command::new(BIN)
        .current_dir(&dir)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate",
            "1000000000",
            "--burst",
            "1000000000",
        ])
        .args(["--max-in-flight", "4096"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address line");
    let server = Server(child);
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_owned();

    // Watch the database while the load runs.
    let stop = Arc::new(AtomicBool::new(false));
    let max_live = Arc::new(AtomicU64::new(0));
    let checks = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (stop, max_live, checks) = (stop.clone(), max_live.clone(), checks.clone());
        let db = dir.join("licence-server.sqlite3");
        let id = key.licence().id.to_string();
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .expect("open the database read-only");
            conn.busy_timeout(Duration::from_secs(5))
                .expect("busy timeout");
            let mut worst_duplicate = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let (live, max_seat, dup): (i64, i64, i64) = conn
                    .query_row(
                        "SELECT COUNT(*), COALESCE(MAX(seat), 0), COUNT(*) - COUNT(DISTINCT seat) FROM activation WHERE licence_id = ?1",
                        [&id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .expect("sample");
                max_live.fetch_max(live.max(max_seat) as u64, Ordering::Relaxed);
                worst_duplicate = worst_duplicate.max(dup);
                checks.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
            worst_duplicate
        })
    };

    let started = Instant::now();
    let results: Vec<(Vec<Sample>, u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let (url, key, trust) = (url.clone(), &key, &trust);
                s.spawn(move || {
                    let client = Client::new(&url).expect("client");
                    let machine = Machine::from_machine_id(&format!("load-machine-{i}"));
                    let mut samples = Vec::with_capacity(rounds);
                    let (mut refused, mut failed) = (0u64, 0u64);
                    let mut holding = false;
                    let mut rng =
                        0x9E37_79B9_7F4A_7C15u64 ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
                    for _ in 0..rounds {
                        if started.elapsed() > DEADLINE {
                            break;
                        }
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let t = Instant::now();
                        let kind = if holding && rng % 10 == 0 {
                            let r = client.deactivate(key, &machine);
                            if r.is_err() {
                                failed += 1;
                            }
                            holding = false;
                            Kind::Deactivate
                        } else {
                            let (kind, r) = if holding {
                                (Kind::Renew, client.renew(key, &machine, trust))
                            } else {
                                (Kind::Activate, client.activate(key, &machine, trust))
                            };
                            match r {
                                Ok((_, lease)) => {
                                    assert!(
                                        (1..=seats as u32).contains(&lease.seat),
                                        "seat {} granted",
                                        lease.seat
                                    );
                                    holding = true;
                                }
                                Err(Error::SeatsExhausted { .. }) => {
                                    refused += 1;
                                    holding = false;
                                }
                                Err(e) => {
                                    eprintln!("client {i}: {e}");
                                    failed += 1;
                                }
                            }
                            kind
                        };
                        samples.push(Sample {
                            kind,
                            micros: t.elapsed().as_micros() as u64,
                        });
                    }
                    (samples, refused, failed)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let duplicates = watcher.join().expect("watcher");

    let final_live = admin(&dir, &["activations", key.licence().id.as_str(), "--json"])
        .lines()
        .count();
    drop(server);

    let mut all: Vec<u64> = results
        .iter()
        .flat_map(|(s, _, _)| s.iter().map(|x| x.micros))
        .collect();
    all.sort_unstable();
    let refused: u64 = results.iter().map(|r| r.1).sum();
    let failed: u64 = results.iter().map(|r| r.2).sum();
    let count = |k: Kind| {
        results
            .iter()
            .flat_map(|(s, _, _)| s)
            .filter(|x| x.kind == k)
            .count()
    };
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "licence server load test: {clients} clients x {rounds} rounds, licence with {seats} seats, loopback"
    );
    println!(
        "requests: {} ({} activate, {} renew, {} deactivate); refused for seats: {refused}; failed: {failed}",
        all.len(),
        count(Kind::Activate),
        count(Kind::Renew),
        count(Kind::Deactivate)
    );
    println!(
        "throughput: {:.0} requests/s over {:.2} s",
        all.len() as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&all, 0.50)),
        ms(percentile(&all, 0.90)),
        ms(percentile(&all, 0.99)),
        ms(*all.last().unwrap_or(&0))
    );
    let max_live = max_live.load(Ordering::Relaxed);
    println!(
        "seats: at most {max_live} of {seats} in use across {} samples; {final_live} at the end; seats held twice: {duplicates}",
        checks.load(Ordering::Relaxed)
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(failed, 0, "requests failed");
    assert!(
        max_live as usize <= seats,
        "seat limit exceeded: {max_live} > {seats}"
    );
    assert!(final_live <= seats, "seat limit exceeded at the end");
    assert_eq!(duplicates, 0, "a seat was held twice");
    assert!(
        refused > 0,
        "the load never reached the seat limit; raise LOAD_CLIENTS"
    );
    println!("seat check: passed");
}
