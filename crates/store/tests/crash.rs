//! Crash safety: a writer process is killed with SIGKILL at random moments, hundreds of
//! times; every event it acknowledged must be in the database afterwards, the file must
//! pass `integrity_check`, and the runs must rebuild with `Run::replay` and go on.
//!
//! The writer is this test binary run again with `CALLHELPER_CRASH_WRITER` set: it prints
//! `ACK <run> <events>` to its standard output (a pipe) only after `append_events`
//! returned, i.e. after the commit.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use callhelper_script::{AnswerRef, Context, Run, Timestamp};
use callhelper_store::Store;
use callhelper_store::runs::{NewRun, RunId, RunState};

use crate::common;

const ENV: &str = "CALLHELPER_CRASH_WRITER";

/// The writer's entry point. Does nothing unless started by [`writer_killed_200_times`].
#[test]
fn writer_process() {
    let Ok(path) = std::env::var(ENV) else { return };
    let store = Store::open(std::path::Path::new(&path), &common::key()).unwrap();
    let s = store.login("writer", "password-123").unwrap();
    let program = common::program();
    let mut out = std::io::stdout().lock();
    let mut rng = std::process::id() as u64 | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut t = 1_770_000_000_000i64;
    loop {
        t += 1000;
        let (mut run, events) = Run::start(program.clone(), Context::default(), Timestamp(t));
        let id = store
            .start_run(
                &s,
                &NewRun {
                    program: &program,
                    contact: None,
                    call: None,
                    context: run.context(),
                    events: &events,
                },
            )
            .unwrap();
        let mut stored = events.len();
        writeln!(out, "ACK {} {stored}", id.0).unwrap();
        out.flush().unwrap();
        while !run.is_finished() {
            t += 100;
            let at = Timestamp(t);
            let step = run.current().id.clone();
            let ev = match (step.as_str(), next() % 6) {
                ("greet", 0) => run.choose(AnswerRef::Key("2"), at),
                ("greet", _) => run.choose(AnswerRef::Key("1"), at),
                ("ask", 0) => run.back(at),
                ("ask", 1 | 2) => run.set_field_input("budget", &(next() % 300).to_string(), at),
                ("ask", 3) => Ok(run.note("a note", at)),
                ("when", 0) => run.set_field_input("callback_on", "2026-04-01", at),
                (_, _) => run.proceed(at),
            }
            .unwrap();
            if run.is_finished() {
                store.finish_run(&s, id, &ev, &run.record()).unwrap();
            } else {
                store
                    .append_events(&s, id, &ev, Some(&run.record().fields))
                    .unwrap();
            }
            stored += ev.len();
            writeln!(out, "ACK {} {stored}", id.0).unwrap();
            out.flush().unwrap();
        }
    }
}

#[test]
fn writer_killed_200_times() {
    let f = common::fixture();
    f.user("writer", callhelper_store::Role::Agent);
    let path = f.path();
    drop(f.store);
    let exe = std::env::current_exe().unwrap();
    let mut acked: HashMap<i64, usize> = HashMap::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let started = Instant::now();
    let kills = 200;
    for round in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::writer_process",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ACK ") && tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait for the writer to be writing, then kill it a random 0–40 ms later.
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the writer acknowledges");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % 40_000));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        for line in std::iter::once(first).chain(rx.try_iter()) {
            let mut parts = line.split_whitespace().skip(1);
            let (Some(run), Some(n)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (run, n): (i64, usize) = (run.parse().unwrap(), n.parse().unwrap());
            let e = acked.entry(run).or_default();
            *e = (*e).max(n);
        }
        // Every few rounds (and at the end) check everything acknowledged so far.
        if round % 25 == 24 || round == kills - 1 {
            check(&path, &acked);
        }
    }
    assert!(
        acked.len() > kills,
        "the writer made progress: {} runs",
        acked.len()
    );
    eprintln!(
        "crash test: {kills} kills, {} runs, {} acknowledged events, {:.1} s",
        acked.len(),
        acked.values().sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
}

fn check(path: &std::path::Path, acked: &HashMap<i64, usize>) {
    let store = Store::open(path, &common::key()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());
    let s = store.login("writer", "password-123").unwrap();
    let program = common::program();
    for (&run, &n) in acked {
        let stored = store.run(&s, RunId(run)).unwrap();
        assert!(
            stored.events.len() >= n,
            "run {run}: {n} acknowledged, {} stored",
            stored.events.len()
        );
        // The stored events always rebuild the run, finished or not.
        let replayed = Run::replay(program.clone(), Context::default(), &stored.events)
            .unwrap_or_else(|e| panic!("run {run} does not replay: {e}"));
        assert_eq!(
            replayed.is_finished(),
            stored.state == RunState::Finished,
            "run {run}"
        );
        if let Some(record) = &stored.record {
            assert_eq!(&replayed.record(), record);
        }
    }
    // An interrupted run resumes: replay it and take it to its end.
    let unfinished = store.unfinished_runs(&s, true).unwrap();
    if let Some(u) = unfinished.first() {
        let mut run = Run::replay(program.clone(), u.context.clone(), &u.events).unwrap();
        let mut at = u.events.last().map_or(0, |e| e.at().0);
        while !run.is_finished() {
            at += 10;
            let ev = match run.current().id.as_str() {
                "greet" => run.choose(AnswerRef::Key("3"), Timestamp(at)),
                _ => run.proceed(Timestamp(at)),
            }
            .unwrap();
            if run.is_finished() {
                store.finish_run(&s, u.id, &ev, &run.record()).unwrap();
            } else {
                store.append_events(&s, u.id, &ev, None).unwrap();
            }
        }
        assert_eq!(store.run(&s, u.id).unwrap().state, RunState::Finished);
    }
}
