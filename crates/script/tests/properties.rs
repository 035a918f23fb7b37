//! Property tests: random walks over every example and over generated scripts never
//! panic, always leave the run in a valid state, and every event log replays to the same
//! run. Arbitrary bytes never panic the loader and linter.

use std::sync::Arc;

use callhelper_script::{
    AnswerRef, Context, Dialect, EndReason, FieldType, Lang, Outcome, Program, Run, RunEvent,
    check, load_bytes,
};
use proptest::prelude::*;

use crate::common::{at, example_files, program};

/// One random action, decoded against the current view.
#[derive(Debug, Clone)]
enum Pick {
    Answer(usize),
    Continue,
    Back,
    Objection(usize),
    Field(usize, usize),
    Unforeseen,
    End(usize),
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        8 => (0usize..12).prop_map(Pick::Answer),
        4 => Just(Pick::Continue),
        2 => Just(Pick::Back),
        2 => (0usize..6).prop_map(Pick::Objection),
        6 => (0usize..8, 0usize..16).prop_map(|(f, v)| Pick::Field(f, v)),
        1 => Just(Pick::Unforeseen),
        1 => (0usize..8).prop_map(Pick::End),
    ]
}

/// Candidate inputs for a field: valid ones first, then junk.
fn inputs(kind: FieldType, options: &[String]) -> Vec<String> {
    let mut v: Vec<String> = match kind {
        FieldType::Number => ["0", "7", "9", "10", "150000", "2,5", "-3"]
            .map(String::from)
            .to_vec(),
        FieldType::Boolean => ["да", "no", "yes"].map(String::from).to_vec(),
        FieldType::Date => ["2026-12-01", "31.01.2027"].map(String::from).to_vec(),
        FieldType::Datetime => ["2026-12-01 10:00"].map(String::from).to_vec(),
        FieldType::Phone => ["+7 912 000-11-22"].map(String::from).to_vec(),
        FieldType::Email => ["a@example.ru"].map(String::from).to_vec(),
        FieldType::Choice => options.to_vec(),
        FieldType::Multichoice => {
            let mut m = options.to_vec();
            if options.len() > 1 {
                m.push(format!("{}, {}", options[0], options[1]));
            }
            m
        }
        FieldType::Text => ["1234567", "Иван", "ABC"].map(String::from).to_vec(),
    };
    v.extend(["", "junk ☃", "99999999999999999999"].map(String::from));
    v
}

/// Walk a program with random picks; check invariants after every step.
fn walk(program: Arc<Program>, picks: &[Pick]) -> Result<(), TestCaseError> {
    let (mut run, mut events) = Run::start(Arc::clone(&program), Context::default(), at(0));
    let script = program.script();
    for (i, p) in picks.iter().enumerate() {
        let t = at(1000 * (i as i64 + 1));
        let view = run.view(Lang::Ru);
        let result = match p {
            Pick::Answer(n) => run.choose(AnswerRef::Index(*n % view.answers.len().max(1)), t),
            Pick::Continue => run.proceed(t),
            Pick::Back => run.back(t),
            Pick::Objection(n) => {
                let ids: Vec<&str> = script.objections.iter().map(|o| o.id.as_str()).collect();
                match ids.get(n % ids.len().max(1)) {
                    Some(id) => run.open_objection(id, t),
                    None => run.open_objection("none", t),
                }
            }
            Pick::Field(f, v) => {
                let fields = &run.current().fields;
                if fields.is_empty() {
                    continue;
                }
                let id = fields[f % fields.len()].clone();
                let def = script.field(&id).expect("lint checked the step's fields");
                let options: Vec<String> =
                    def.options.iter().map(|o| o.value().to_owned()).collect();
                let candidates = inputs(def.kind, &options);
                run.set_field_input(&id, &candidates[v % candidates.len()], t)
            }
            Pick::Unforeseen => run.unforeseen("непредвиденный ответ", t),
            Pick::End(n) => {
                let reasons = [
                    EndReason::RemoteHangup,
                    EndReason::AgentHangup,
                    EndReason::CallFailed,
                    EndReason::AgentEnded,
                ];
                let outcome = (n % 2 == 0).then(|| Outcome::BUILTIN[n % 6].clone());
                run.end(reasons[n % 4], outcome, None, t)
            }
        };
        if let Ok(new) = result {
            prop_assert!(!new.is_empty(), "an accepted action produces events");
            events.extend(new);
        }
        // Invariants of a valid state.
        let current = run.current();
        prop_assert!(script.all_steps().any(|(_, s)| s.id == current.id));
        if let Some(ending) = run.ending() {
            if ending.reason == EndReason::Terminal {
                prop_assert!(current.is_terminal());
                prop_assert_eq!(ending.outcome.as_ref(), current.outcome.as_ref());
            }
            let finished = matches!(events.last(), Some(RunEvent::Finished { .. }));
            prop_assert!(finished, "the last event of a finished run is `finished`");
        } else {
            prop_assert!(!current.is_terminal());
        }
        let record = run.record();
        prop_assert_eq!(
            record.path.last().map(|v| v.step.as_str()),
            Some(current.id.as_str())
        );
    }
    let again = Run::replay(program, Context::default(), &events)
        .map_err(|e| TestCaseError::fail(e.message().en))?;
    prop_assert_eq!(again.record(), run.record());
    Ok(())
}

fn examples() -> Vec<Arc<Program>> {
    example_files()
        .iter()
        .map(|f| {
            let s = load_bytes(&std::fs::read(f).expect("readable"), Dialect::Yaml)
                .script
                .expect("loads");
            Arc::new(Program::new(s).expect("examples lint clean"))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn random_walks_over_the_examples(which in 0usize..10, picks in prop::collection::vec(pick(), 0..80)) {
        let all = examples();
        walk(Arc::clone(&all[which % all.len()]), &picks)?;
    }

    #[test]
    fn random_walks_over_generated_scripts(spec in script_spec(), picks in prop::collection::vec(pick(), 0..60)) {
        let yaml = render_spec(&spec);
        let (_, diags) = check(yaml.as_bytes(), Dialect::Yaml);
        prop_assert!(
            !callhelper_script::has_errors(&diags),
            "a generated script must lint clean:\n{}\n{:#?}", yaml, diags
        );
        walk(program(&yaml), &picks)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = check(&bytes, Dialect::Yaml);
        let _ = check(&bytes, Dialect::Json);
    }

    #[test]
    fn mangled_examples_never_panic(which in 0usize..10, cut in 0usize..20_000, insert in "[\\[\\]{}:,\\-'\" \n#&*!|>a-z0-9]{0,8}") {
        let files = example_files();
        let text = std::fs::read_to_string(&files[which % files.len()]).expect("readable");
        let mut at = cut % (text.len() + 1);
        while !text.is_char_boundary(at) { at -= 1; }
        let mangled = format!("{}{}{}", &text[..at], insert, &text[at..]);
        let (script, diags) = check(mangled.as_bytes(), Dialect::Yaml);
        if let Some(s) = script && !callhelper_script::has_errors(&diags) {
            // Whatever still lints clean must be runnable.
            prop_assert!(Program::new(s).is_ok());
        }
    }
}

/// A generated script: steps in a chain (so every step is reachable), each with random
/// extra jumps anywhere (so loops appear), and at least one way forward (so every step
/// can reach the terminal steps at the end).
#[derive(Debug, Clone)]
struct Spec {
    steps: Vec<StepSpec>,
    objections: usize,
}

#[derive(Debug, Clone)]
struct StepSpec {
    extra: Vec<usize>,
    conditional: bool,
    with_field: bool,
}

fn script_spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(
            (
                prop::collection::vec(0usize..40, 0..4),
                any::<bool>(),
                any::<bool>(),
            ),
            1..25,
        ),
        0usize..4,
    )
        .prop_map(|(steps, objections)| Spec {
            steps: steps
                .into_iter()
                .map(|(extra, conditional, with_field)| StepSpec {
                    extra,
                    conditional,
                    with_field,
                })
                .collect(),
            objections,
        })
}

fn render_spec(spec: &Spec) -> String {
    let n = spec.steps.len();
    let mut y = String::from(
        "format: callhelper-script/1\nid: gen\nname: Generated\nversion: 1\nlocale: en\nstart: s0\n\
         fields:\n  - { id: score, label: Score, type: number }\n  - { id: pick, label: Pick, type: choice, options: [a, b] }\nsteps:\n",
    );
    for (i, s) in spec.steps.iter().enumerate() {
        y.push_str(&format!("  - id: s{i}\n"));
        if s.with_field {
            y.push_str("    fields: [score, pick]\n");
        }
        let forward = if i + 1 < n {
            format!("s{}", i + 1)
        } else {
            "end".into()
        };
        if s.conditional {
            y.push_str(&format!(
                "    next:\n      - if: fields.score > 5 or fields.pick == \"b\"\n        goto: {}\n      - goto: {forward}\n",
                s.extra.first().map_or_else(|| "lose".to_owned(), |t| format!("s{}", t % n))
            ));
        } else {
            y.push_str(&format!(
                "    answers:\n      - {{ label: Forward, next: {forward} }}\n"
            ));
            for (k, t) in s.extra.iter().enumerate() {
                y.push_str(&format!(
                    "      - {{ label: Jump {k}, next: s{}, set: {{ score: {k} }} }}\n",
                    t % n
                ));
            }
            y.push_str("      - { label: Give up, next: lose }\n");
        }
    }
    y.push_str(
        "  - { id: end, answers: [{ label: Win, next: win }, { label: Lose, next: lose }] }\n",
    );
    y.push_str("  - { id: win, outcome: success }\n  - { id: lose, outcome: refusal }\n");
    if spec.objections > 0 {
        y.push_str("objections:\n");
        for o in 0..spec.objections {
            y.push_str(&format!(
                "  - id: o{o}\n    label: O{o}\n    steps:\n      - {{ id: o{o}a, answers: [{{ label: Back, next: return }}, {{ label: Deeper, next: o{o}b }}, {{ label: Lose, next: lose }}] }}\n      - {{ id: o{o}b, next: return }}\n"
            ));
        }
    }
    y
}
