//! Every example script is walked to every one of its terminal steps, in Russian and in
//! English, through the application API the desktop and the command line use.
//!
//! The walks live beside the examples in `scripts-examples/walks/<scenario>.walks`: each
//! line names the terminal step a walk must end at, then its actions as typed for
//! `callhelper script run --answers`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use callhelper_core::script::{Context, Run, Timestamp};
use callhelper_core::scripts::{self, Action};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts-examples")
}

fn contact() -> Context {
    let text = std::fs::read_to_string(examples().join("contacts/debtor.json")).expect("contact");
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let mut ctx = Context::default();
    for (k, v) in json.as_object().expect("an object") {
        ctx.contact
            .insert(k.clone(), v.as_str().expect("text").to_owned());
    }
    ctx
}

/// (expected terminal step, actions) of every walk in a file.
fn walks(path: &Path) -> Vec<(String, Vec<Action>)> {
    std::fs::read_to_string(path)
        .expect("the walks file")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| {
            let (step, actions) = l.split_once(':').expect("STEP: ACTIONS");
            let actions = scripts::split_actions(actions)
                .iter()
                .map(|t| scripts::parse_action(t).unwrap_or_else(|e| panic!("{l}: {e}")))
                .collect();
            (step.trim().to_owned(), actions)
        })
        .collect()
}

#[test]
fn every_example_reaches_every_terminal_step_in_both_languages() {
    let mut scenarios = 0;
    for entry in std::fs::read_dir(examples().join("walks")).expect("walks folder") {
        let walks_file = entry.expect("entry").path();
        let scenario = walks_file
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        let walks = walks(&walks_file);
        for lang in ["ru", "en"] {
            let file = examples().join(format!("{scenario}.{lang}.yaml"));
            let program =
                scripts::open(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let terminals: BTreeSet<String> = program
                .script()
                .all_steps()
                .filter(|(_, s)| s.is_terminal())
                .map(|(_, s)| s.id.clone())
                .collect();
            let mut reached = BTreeSet::new();
            for (n, (expected, actions)) in walks.iter().enumerate() {
                let (mut run, _) = Run::start(program.clone(), contact(), Timestamp(0));
                for (i, action) in actions.iter().enumerate() {
                    let at = Timestamp(1000 * (i as i64 + 1));
                    scripts::apply(&mut run, action, at).unwrap_or_else(|e| {
                        panic!(
                            "{} walk {} action {} ({action:?}) at `{}`: {}",
                            file.display(),
                            n + 1,
                            i + 1,
                            run.current().id,
                            e.message().en
                        )
                    });
                }
                let ending = run.ending().unwrap_or_else(|| {
                    panic!(
                        "{} walk {} stops at `{}` unfinished",
                        file.display(),
                        n + 1,
                        run.current().id
                    )
                });
                assert_eq!(&ending.step, expected, "{} walk {}", file.display(), n + 1);
                let record = run.record();
                assert_eq!(record.script_id, program.script().id);
                assert_eq!(record.script_version, program.script().version);
                reached.insert(ending.step.clone());
            }
            assert_eq!(
                reached,
                terminals,
                "{}: the walks must reach every terminal step",
                file.display()
            );
        }
        scenarios += 1;
    }
    assert_eq!(scenarios, 5, "five scenarios have walks");
}
