//! The store at scale: `cargo bench -p callhelper-store --bench store_bench`.
//!
//! Builds a database of `BENCH_RUNS` runs (default 1,000,000, or 2,000 when run by `cargo
//! test` rather than `cargo bench`; each a real runner session of
//! ~9 events with its record and fields) for `BENCH_CONTACTS` contacts (default 200,000,
//! imported from a CSV file), then measures and prints: the insert rate through the
//! store's batch API, the import rate, CSV, JSON and XLSX export rates, the XLSX export's
//! peak memory (in a child process of its own, from the kernel's high-water mark), and
//! lookups of a contact by phone. Only the store's own calls are timed for inserts. Each
//! figure is printed with the machine's load averages.
//!
//! `BENCH_BATCH` sets the runs per batch (default 5,000); `BENCH_DB_DIR=DIR` keeps the
//! database there, and a later run reuses it (no insert, just the measurements);
//! `BENCH_ONLY=csv|json|xlsx|lookup|analytics` runs one measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use callhelper_script::{
    AnswerRef, Context, Dialect, Program, Run, RunEvent, RunRecord, Timestamp, load_str,
};
use callhelper_store::export::{Filter, Format};
use callhelper_store::runs::NewRun;
use callhelper_store::{DbKey, Store, Unlock};

const KEY: &str = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c";

const SCRIPT: &str = r#"
format: callhelper-script/1
id: sales
name: Sales
version: 3
locale: en
start: greet
fields:
  - { id: budget, label: Budget, type: number, min: 0 }
  - { id: company, label: Company, type: text }
  - { id: interest, label: Interest, type: choice, options: [low, medium, high] }
  - { id: callback_on, label: Call back on, type: date }
steps:
  - id: greet
    say: "Hello, {{contact.name | there}}!"
    answers:
      - { label: Interested, key: "1", next: qualify }
      - { label: Later, key: "2", next: when }
      - { label: Refuses, key: "3", next: refused }
  - id: qualify
    fields: [company, interest, budget]
    next:
      - if: fields.budget >= 100
        goto: won
      - goto: refused
  - id: when
    fields: [callback_on]
    next: later
  - { id: won, outcome: success }
  - { id: refused, outcome: refusal }
  - { id: later, outcome: callback, callback: { at: callback_on } }
"#;

fn env_n(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn key() -> Unlock {
    Unlock::Key(DbKey::from_hex(KEY).expect("a valid key"))
}

/// The machine's load averages (1, 5, 15 minutes) as `load 1.02 0.98 0.87`: on a shared
/// machine every figure is printed with the load it was measured under.
fn load() -> String {
    let avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let parts: Vec<&str> = avg.split_whitespace().take(3).collect();
    format!("[load {}]", parts.join(" "))
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One run's events and record, made by the real runner.
fn session(program: &Arc<Program>, i: u64, t0: i64) -> (Vec<RunEvent>, Vec<RunEvent>, RunRecord) {
    let at = |k: i64| Timestamp(t0 + k * 1500);
    let (mut run, start) = Run::start(program.clone(), Context::default(), at(0));
    let mut rest = Vec::new();
    match i % 5 {
        0 => rest.extend(run.choose(AnswerRef::Key("3"), at(1)).expect("answer")),
        1 => {
            rest.extend(run.choose(AnswerRef::Key("2"), at(1)).expect("answer"));
            rest.extend(
                run.set_field_input("callback_on", "2026-04-01", at(2))
                    .expect("field"),
            );
            rest.extend(run.proceed(at(3)).expect("continue"));
        }
        _ => {
            rest.extend(run.choose(AnswerRef::Key("1"), at(1)).expect("answer"));
            rest.extend(
                run.set_field_input("company", &format!("Company {}", i % 9973), at(2))
                    .expect("field"),
            );
            rest.extend(
                run.set_field_input(
                    "interest",
                    ["low", "medium", "high"][(i % 3) as usize],
                    at(3),
                )
                .expect("field"),
            );
            rest.extend(
                run.set_field_input("budget", &(i % 400).to_string(), at(4))
                    .expect("field"),
            );
            rest.extend(run.proceed(at(5)).expect("continue"));
        }
    }
    let record = run.record();
    (start, rest, record)
}

fn xlsx_child(dir: &std::path::Path) {
    let store = Store::open(&dir.join("bench.db"), &key()).expect("open");
    let s = store.login("admin", "admin-password").expect("login");
    let out = dir.join("runs.xlsx");
    let t = Instant::now();
    let sum = store
        .export(&s, Format::Xlsx, &Filter::default(), &out, &mut |_| {})
        .expect("xlsx");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "XLSX {} {secs:.3} {:.1} {}",
        sum.rows,
        peak_rss_mb(),
        std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--xlsx-child") {
        xlsx_child(std::path::Path::new(&args[i + 1]));
        return;
    }
    // `cargo test --all-targets` runs this once without `--bench`: a small database then,
    // so the benchmark cannot rot and the suite stays quick.
    let full = args.iter().any(|a| a == "--bench");
    let runs = env_n("BENCH_RUNS", if full { 1_000_000 } else { 2_000 });
    let contacts = env_n("BENCH_CONTACTS", if full { 200_000 } else { 500 }).max(1);
    let batch = env_n("BENCH_BATCH", 5_000);
    // BENCH_DB_DIR keeps the database, and reuses one built before (to profile exports);
    // BENCH_ONLY=csv|json|xlsx|lookup|analytics runs one measurement.
    let tmp = tempfile::Builder::new()
        .prefix("store-bench")
        .tempdir()
        .expect("temp dir");
    let dir = std::env::var_os("BENCH_DB_DIR")
        .map_or_else(|| tmp.path().to_path_buf(), std::path::PathBuf::from);
    let dir = dir.as_path();
    let path = dir.join("bench.db");
    let reuse = path.exists();
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wants = |what: &str| only.is_empty() || only == what;
    let store = Store::open(&path, &key()).expect("open");
    let admin = if reuse {
        store.login("admin", "admin-password").expect("login")
    } else {
        store
            .create_first_admin("admin", "admin-password")
            .expect("admin")
    };
    let program = Arc::new(
        Program::new(load_str(SCRIPT, Dialect::Yaml).script.expect("script")).expect("lint"),
    );
    println!(
        "store bench: {runs} runs, {contacts} contacts, batches of {batch} runs, SQLCipher {}",
        store.cipher_version().unwrap_or_default()
    );

    if !reuse {
        // Contacts, through the importer.
        let csv = dir.join("contacts.csv");
        {
            use std::io::Write;
            let mut w = std::io::BufWriter::new(std::fs::File::create(&csv).expect("csv"));
            writeln!(w, "name,phone,email,city").expect("write");
            for i in 0..contacts {
                writeln!(
                    w,
                    "Person {i},+7 9{:09},person{i}@example.org,City {}",
                    i,
                    i % 100
                )
                .expect("write");
            }
        }
        let t = Instant::now();
        let r = store.import_contacts(&admin, &csv).expect("import");
        let secs = t.elapsed().as_secs_f64();
        println!(
            "import:  {} contacts in {secs:.2} s = {:.0} contacts/s {}",
            r.added,
            r.added as f64 / secs,
            load()
        );
        let ids: Vec<i64> = (1..=r.added as i64).collect();

        // Runs, through the batch API.
        let mut store_time = Duration::ZERO;
        let mut events = 0u64;
        let t_all = Instant::now();
        let t0 = 1_767_225_600_000i64; // 2026-01-01
        let mut i = 0u64;
        while i < runs {
            let n = batch.min(runs - i);
            let chunk: Vec<_> = (i..i + n)
                .map(|k| session(&program, k, t0 + k as i64 * 20_000))
                .collect();
            let t = Instant::now();
            let written = store
                .batch(&admin, |b| {
                    for (k, (start, rest, record)) in chunk.iter().enumerate() {
                        let contact = Some(callhelper_store::contacts::ContactId(
                            ids[(i as usize + k) % ids.len()],
                        ));
                        let id = b.start_run(&NewRun {
                            program: &program,
                            contact,
                            call: None,
                            context: &Context::default(),
                            events: start,
                        })?;
                        b.finish(id, rest, record)?;
                    }
                    Ok(b.events_written())
                })
                .expect("batch");
            store_time += t.elapsed();
            events += written;
            i += n;
        }
        println!(
            "insert:  {runs} runs, {events} events in {:.1} s of store time ({:.1} s with the runner) = {:.0} events/s, {:.0} runs/s {}",
            store_time.as_secs_f64(),
            t_all.elapsed().as_secs_f64(),
            events as f64 / store_time.as_secs_f64(),
            runs as f64 / store_time.as_secs_f64(),
            load()
        );
        store.checkpoint().expect("checkpoint");
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!(
            "size:    {:.0} MB ({:.0} bytes per run)",
            size as f64 / 1e6,
            size as f64 / runs.max(1) as f64
        );
    }

    // Lookups by phone.
    if wants("lookup") {
        let mut lat: Vec<f64> = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let k = seed % contacts;
            let phone = format!("8 9{k:09}");
            let t = Instant::now();
            let c = store.contact_by_phone(&admin, &phone).expect("lookup");
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            assert!(c.is_some(), "contact {k} found");
        }
        lat.sort_by(f64::total_cmp);
        println!(
            "lookup:  contact by phone, 20000 random: mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs {}",
            lat.iter().sum::<f64>() / lat.len() as f64,
            lat[lat.len() / 2],
            lat[lat.len() * 99 / 100],
            lat[lat.len() - 1],
            load()
        );
    }

    for format in [Format::Csv, Format::Json] {
        if !wants(format.as_str()) {
            continue;
        }
        let out = dir.join(format!("runs.{}", format.as_str()));
        let t = Instant::now();
        let sum = store
            .export(&admin, format, &Filter::default(), &out, &mut |_| {})
            .expect("export");
        let secs = t.elapsed().as_secs_f64();
        println!(
            "export:  {} {} rows in {secs:.2} s = {:.0} rows/s, {:.0} MB {}",
            format.as_str(),
            sum.rows,
            sum.rows as f64 / secs,
            std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
            load()
        );
        let _ = std::fs::remove_file(&out);
    }
    // Per-step analytics over every finished run.
    if wants("analytics") {
        let t = Instant::now();
        let a = store
            .analytics(&admin, &Filter::default())
            .expect("analytics");
        let secs = t.elapsed().as_secs_f64();
        let counted: u64 = a.scripts.iter().map(|s| s.runs).sum();
        assert!(counted > 0, "runs counted");
        println!(
            "analytics: {counted} runs in {secs:.2} s = {:.0} runs/s, {} steps {}",
            counted as f64 / secs,
            a.scripts.iter().map(|s| s.steps.len()).sum::<usize>(),
            load()
        );
    }
    drop(store);
    if !wants("xlsx") {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--xlsx-child", &dir.display().to_string()])
        .output()
        .expect("xlsx child");
    let text = String::from_utf8_lossy(&out.stdout);
    match text
        .lines()
        .find(|l| l.starts_with("XLSX "))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>())
    {
        Some(f) if f.len() == 4 => {
            let rows: f64 = f[0].parse().unwrap_or(0.0);
            let secs: f64 = f[1].parse().unwrap_or(f64::NAN);
            println!(
                "export:  xlsx {} rows in {secs:.2} s = {:.0} rows/s, {:.0} MB, peak RSS of the exporting process {} MB {}",
                f[0],
                rows / secs,
                f[3].parse::<f64>().unwrap_or(0.0) / 1e6,
                f[2],
                load()
            );
        }
        _ => println!(
            "export:  xlsx failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
