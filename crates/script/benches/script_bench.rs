//! Figures for the script engine: load and lint of a generated 5,000-step script, and
//! the cost of one runner step. Run with `cargo bench -p callhelper-script`.
//!
//! Targets (issue 2): lint under 50 ms, a step under 10 µs.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callhelper_script::{
    AnswerRef, Context, Dialect, Program, Run, RunEvent, Timestamp, check, lint, load_str,
};

const STEPS: usize = 5_000;

/// A realistic large script: every step says a line with placeholders, lists a field,
/// offers three answers (forward, a jump back, give up) or a conditional `next`, and six
/// objections are reachable from anywhere.
fn generate() -> String {
    let mut y = String::with_capacity(STEPS * 400);
    y.push_str(
        "format: callhelper-script/1\nid: big\nname: Big generated script\nversion: 1\nlocale: ru\nstart: s0\nfields:\n",
    );
    for f in 0..50 {
        y.push_str(&format!(
            "  - {{ id: f{f}, label: Поле {f}, type: {}, options: {} }}\n",
            if f % 2 == 0 { "number" } else { "choice" },
            if f % 2 == 0 { "[]" } else { "[a, b, c]" }
        ));
    }
    y.push_str("steps:\n");
    for i in 0..STEPS {
        let next = if i + 1 < STEPS {
            format!("s{}", i + 1)
        } else {
            "win".into()
        };
        let f = i % 50;
        y.push_str(&format!(
            "  - id: s{i}\n    title: Шаг {i}\n    say: \"{{{{contact.first_name | Коллега}}}}, вопрос номер {i}: {{{{fields.f{f}}}}}?\"\n    hint: Подсказка к шагу {i}\n    fields: [f{f}]\n"
        ));
        if i % 10 == 5 {
            y.push_str(&format!(
                "    next:\n      - if: fields.f{} > 5 and fields.f{} == \"a\"\n        goto: s{}\n      - goto: {next}\n",
                f - f % 2,
                f | 1,
                i / 2
            ));
        } else {
            y.push_str(&format!(
                "    answers:\n      - {{ label: Дальше, next: {next}, tags: [t{}] }}\n      - {{ label: Назад, next: s{} }}\n      - {{ label: Отказ, next: lose }}\n",
                i % 7,
                i / 3
            ));
        }
    }
    y.push_str(
        "  - { id: win, outcome: success }\n  - { id: lose, outcome: refusal }\nobjections:\n",
    );
    for o in 0..6 {
        y.push_str(&format!(
            "  - id: o{o}\n    label: Возражение {o}\n    steps:\n      - {{ id: o{o}a, answers: [{{ label: Вернуться, next: return }}, {{ label: Отказ, next: lose }}] }}\n"
        ));
    }
    y
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let samples = (0..runs)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .collect();
    median(samples)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    // `cargo test --benches` runs this once with `--bench` absent: keep it quick then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let runs = if quick { 2 } else { 21 };
    let yaml = generate();
    println!(
        "generated script: {STEPS} steps, 6 objections, 50 fields, {:.2} MB of YAML",
        yaml.len() as f64 / 1e6
    );

    let loaded = load_str(&yaml, Dialect::Yaml);
    assert!(loaded.diagnostics.is_empty());
    let script = loaded.script.expect("loads");
    let diags = lint(&script, None);
    assert!(diags.is_empty(), "{diags:?}");
    let json = serde_json::to_string(&script).expect("json");

    // For profiling one part: CALLHELPER_BENCH_ONLY=lint|load runs it 200 times and stops.
    match std::env::var("CALLHELPER_BENCH_ONLY").as_deref() {
        Ok("lint") => {
            time(200, || lint(&script, loaded.source.as_ref()));
            return;
        }
        Ok("load") => {
            time(50, || load_str(&yaml, Dialect::Yaml));
            return;
        }
        _ => {}
    }
    let source = callhelper_script::Source::new(&yaml);
    let tree = time(runs, || {
        callhelper_script::syntax::parse(&source, Dialect::Yaml)
    });
    let events = time(runs, || saphyr_parser::Parser::new_from_str(&yaml).count());
    println!("YAML events alone (saphyr):     {}", ms(events));
    println!("YAML → positioned tree:         {}", ms(tree));
    let parse = time(runs, || load_str(&yaml, Dialect::Yaml));
    let lint_only = time(runs, || lint(&script, loaded.source.as_ref()));
    let both = time(runs, || check(yaml.as_bytes(), Dialect::Yaml));
    let json_both = time(runs, || check(json.as_bytes(), Dialect::Json));
    let index = time(runs, || Program::new(script.clone()));
    println!("load (parse + model), YAML:     {}", ms(parse));
    println!(
        "lint:                           {}   (target < 50 ms: {})",
        ms(lint_only),
        if lint_only < Duration::from_millis(50) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!("load + lint, YAML:              {}", ms(both));
    println!(
        "load + lint, JSON ({:.2} MB):    {}",
        json.len() as f64 / 1e6,
        ms(json_both)
    );
    println!("lint + index for running:       {}", ms(index));

    // The cost of one runner step: walk the whole chain by hotkey, 5,000 steps a pass.
    let program = Arc::new(Program::new(script).expect("runnable"));
    let mut context = Context::default();
    context.contact.insert("first_name".into(), "Ирина".into());
    let passes = if quick { 1 } else { 20 };
    let mut per_step = Vec::new();
    let mut per_field = Vec::new();
    let mut per_view = Vec::new();
    let mut per_replay = Vec::new();
    for _ in 0..passes {
        let (mut run, mut events) = Run::start(Arc::clone(&program), context.clone(), Timestamp(0));
        let mut t = 0i64;
        let (mut steps, mut step_time) = (0u32, Duration::ZERO);
        let (mut sets, mut set_time) = (0u32, Duration::ZERO);
        let (mut views, mut view_time) = (0u32, Duration::ZERO);
        while !run.is_finished() {
            t += 1000;
            let field = run.current().fields[0].clone();
            let input = if field[1..].parse::<u32>().unwrap_or(0) % 2 == 0 {
                "3"
            } else {
                "b"
            };
            let s = Instant::now();
            let e = run
                .set_field_input(&field, input, Timestamp(t))
                .expect("valid");
            set_time += s.elapsed();
            sets += 1;
            events.extend(e);
            let s = Instant::now();
            black_box(run.view(Default::default()));
            view_time += s.elapsed();
            views += 1;
            let s = Instant::now();
            let e = if run.view(Default::default()).can_continue {
                run.proceed(Timestamp(t))
            } else {
                run.choose(AnswerRef::Key("1"), Timestamp(t))
            }
            .expect("moves on");
            step_time += s.elapsed();
            steps += 1;
            events.extend(e);
        }
        per_step.push(step_time / steps);
        per_field.push(set_time / sets);
        per_view.push(view_time / views);
        let s = Instant::now();
        let again = Run::replay(Arc::clone(&program), context.clone(), &events).expect("replays");
        per_replay.push(s.elapsed() / events.len() as u32);
        assert_eq!(again.record(), run.record());
        assert!(matches!(events.last(), Some(RunEvent::Finished { .. })));
    }
    let step = median(per_step);
    println!(
        "one runner step (choose/continue): {:.2} µs   (target < 10 µs: {})",
        step.as_secs_f64() * 1e6,
        if step < Duration::from_micros(10) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "set a field from typed input:      {:.2} µs",
        median(per_field).as_secs_f64() * 1e6
    );
    println!(
        "render the step view:              {:.2} µs",
        median(per_view).as_secs_f64() * 1e6
    );
    println!(
        "replay, per stored event:          {:.2} µs",
        median(per_replay).as_secs_f64() * 1e6
    );
}
