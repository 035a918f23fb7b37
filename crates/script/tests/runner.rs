//! The runner, one transition kind at a time.

use std::sync::Arc;

use callhelper_script::{
    AnswerRef, Context, EndReason, FieldError, Lang, Outcome, Program, Run, RunError, RunEvent,
    Value,
};

use crate::common::{RUNNER_SCRIPT, at, program};

fn start() -> (Run, Vec<RunEvent>) {
    start_with(Context::default())
}

fn start_with(context: Context) -> (Run, Vec<RunEvent>) {
    Run::start(program(RUNNER_SCRIPT), context, at(0))
}

/// A run with its event log, to check replay after every scenario.
struct Logged {
    run: Run,
    events: Vec<RunEvent>,
}

impl Logged {
    fn new() -> Logged {
        let (run, events) = start();
        Logged { run, events }
    }

    fn ok(&mut self, r: Result<Vec<RunEvent>, RunError>) -> Vec<RunEvent> {
        let events = r.unwrap_or_else(|e| panic!("refused: {}", e.message().en));
        self.events.extend(events.iter().cloned());
        events
    }

    fn set(&mut self, field: &str, input: &str, t: i64) {
        let r = self.run.set_field_input(field, input, at(t));
        self.ok(r);
    }

    fn choose(&mut self, key: &str, t: i64) -> Vec<RunEvent> {
        let r = self.run.choose(AnswerRef::Any(key), at(t));
        self.ok(r)
    }

    /// Replay the log and check it gives the same run.
    fn check_replay(&self) {
        let again = Run::replay(
            Arc::clone(self.run.program()),
            self.run.context().clone(),
            &self.events,
        )
        .unwrap_or_else(|e| panic!("replay failed: {}", e.message().en));
        assert_eq!(again.record(), self.run.record());
        assert_eq!(again.view(Lang::En), self.run.view(Lang::En));
    }
}

#[test]
fn a_run_starts_at_the_start_step_and_fills_in_placeholders() {
    let mut context = Context::default();
    context.contact.insert("name".into(), "Irina".into());
    let (run, events) = start_with(context);
    assert!(
        matches!(&events[0], RunEvent::Started { script_id, script_version: 7, .. } if script_id == "runner-test")
    );
    assert!(matches!(&events[1], RunEvent::StepEntered { step, .. } if step == "greet"));
    let view = run.view(Lang::En);
    let say = view.say.expect("greet has a line");
    assert_eq!(say.text, "Hello Irina from [contact.company]");
    assert!(
        say.segments
            .iter()
            .any(|s| s.missing && s.var.as_deref() == Some("contact.company"))
    );
    assert_eq!(
        view.answers
            .iter()
            .map(|a| a.key.as_str())
            .collect::<Vec<_>>(),
        ["1", "2", "l"]
    );
    assert_eq!(
        view.objections
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        ["F1", "F2"]
    );
    assert!(!view.can_go_back && !view.can_continue);
}

#[test]
fn a_fallback_fills_a_missing_value() {
    let (run, _) = start();
    assert_eq!(
        run.view(Lang::En).say.expect("line").text,
        "Hello there from [contact.company]"
    );
}

#[test]
fn answers_are_chosen_by_key_id_or_position() {
    for which in [
        AnswerRef::Key("2"),
        AnswerRef::Id("no"),
        AnswerRef::Index(1),
        AnswerRef::Any("2"),
        AnswerRef::Any("no"),
    ] {
        let (mut run, _) = start();
        run.set_field_input("name", "Ivan", at(1))
            .expect("valid name");
        run.choose(which, at(2)).expect("the answer exists");
        assert_eq!(run.record().outcome, Some(Outcome::Refusal), "{which:?}");
    }
    let (mut run, _) = start();
    run.set_field_input("name", "Ivan", at(1))
        .expect("valid name");
    run.choose(AnswerRef::Key("L"), at(2))
        .expect("keys ignore case");
    assert_eq!(run.current().id, "schedule");
}

#[test]
fn an_unknown_answer_is_refused_and_changes_nothing() {
    let (mut run, _) = start();
    let before = run.record();
    assert_eq!(
        run.choose(AnswerRef::Any("7"), at(5)),
        Err(RunError::UnknownAnswer { input: "7".into() })
    );
    assert_eq!(run.record(), before);
}

#[test]
fn required_fields_must_be_filled_before_moving_on() {
    let (mut run, _) = start();
    let err = run
        .choose(AnswerRef::Key("1"), at(1))
        .expect_err("name is required");
    assert_eq!(
        err,
        RunError::RequiredMissing {
            fields: vec!["Name".into()]
        }
    );
    assert_eq!(err.message().en, "fill in first: «Name»");
    assert_eq!(err.message().ru, "сначала заполните: «Name»");
    assert_eq!(run.current().id, "greet");
}

#[test]
fn an_answer_sets_fields_and_tags_and_a_condition_picks_the_branch() {
    let mut l = Logged::new();
    l.set("name", "Ivan", 1000);
    let events = l.choose("1", 3000);
    assert!(
        matches!(&events[0], RunEvent::AnswerChosen { answer, spent_ms: 3000, .. } if answer == "yes")
    );
    assert!(events.iter().any(|e| matches!(e, RunEvent::FieldSet { field, value: Some(Value::Text(v)), .. } if field == "size" && v == "big")));
    assert_eq!(l.run.current().id, "qualify");
    assert_eq!(
        l.run.view(Lang::En).say.expect("line").text,
        "Ivan, what budget?"
    );
    l.set("budget", "1 500", 4000);
    let events = {
        let r = l.run.proceed(at(5000));
        l.ok(r)
    };
    assert!(
        matches!(&events[0], RunEvent::Continued { step, spent_ms: 2000, .. } if step == "qualify")
    );
    let record = l.run.record();
    assert_eq!(record.outcome, Some(Outcome::Success));
    assert_eq!(record.end_reason, Some(EndReason::Terminal));
    assert_eq!(record.ended_at_step.as_deref(), Some("won"));
    assert_eq!(record.tags, ["warm"]);
    assert_eq!(record.fields["budget"], Value::Number(1500.0));
    assert_eq!(record.time_per_step["greet"], 3000);
    assert_eq!(record.time_per_step["qualify"], 2000);
    assert_eq!(record.duration_ms, Some(5000));
    l.check_replay();
}

#[test]
fn the_second_branch_and_the_default_branch() {
    let mut l = Logged::new();
    l.set("name", "Ivan", 1);
    l.choose("1", 2);
    l.set("size", "small", 3);
    l.set("budget", "999", 4);
    {
        let r = l.run.proceed(at(5));
        l.ok(r)
    };
    assert_eq!(l.run.current().id, "offer");
    l.choose("1", 6);
    assert_eq!(
        l.run.record().outcome,
        Some(Outcome::Custom("sent_offer".into()))
    );
    let finished = l.run.view(Lang::En).finished.expect("finished");
    assert_eq!(finished.outcome_label.as_deref(), Some("Offer sent"));
    l.check_replay();

    let mut l = Logged::new();
    l.set("name", "Ivan", 1);
    l.choose("1", 2);
    {
        let r = l.run.proceed(at(3));
        l.ok(r)
    };
    assert_eq!(
        l.run.record().outcome,
        Some(Outcome::Refusal),
        "no budget: default"
    );
    l.check_replay();
}

#[test]
fn back_undoes_moves_and_the_values_answers_set() {
    let mut l = Logged::new();
    l.set("name", "Ivan", 1000);
    l.choose("1", 2000);
    l.set("budget", "10", 3000);
    assert_eq!(l.run.field("size"), Some(&Value::Text("big".into())));
    let events = {
        let r = l.run.back(at(4000));
        l.ok(r)
    };
    assert!(
        matches!(&events[0], RunEvent::WentBack { from_step, to_step, spent_ms: 2000, .. } if from_step == "qualify" && to_step == "greet")
    );
    assert_eq!(l.run.current().id, "greet");
    assert_eq!(l.run.field("size"), None, "the answer's `set` is undone");
    assert_eq!(
        l.run.field("budget"),
        None,
        "values typed after the move are undone"
    );
    assert_eq!(
        l.run.field("name"),
        Some(&Value::Text("Ivan".into())),
        "kept"
    );
    assert!(l.run.record().tags.is_empty());
    assert_eq!(l.run.back(at(4500)), Err(RunError::NothingToUndo));
    l.choose("2", 5000);
    let record = l.run.record();
    assert_eq!(record.path.len(), 2, "{:?}", record.path);
    assert_eq!(record.path[0].spent_ms, 3000, "both visits to greet count");
    l.check_replay();
}

#[test]
fn back_many_times_through_objections() {
    let mut l = Logged::new();
    l.set("name", "Ivan", 1);
    {
        let r = l.run.open_objection("F1", at(2));
        l.ok(r)
    };
    l.choose("2", 3);
    {
        let r = l.run.open_objection("time", at(4));
        l.ok(r)
    };
    assert_eq!(l.run.current().id, "time1");
    for expected in ["price2", "price1", "greet"] {
        {
            let r = l.run.back(at(5));
            l.ok(r)
        };
        assert_eq!(l.run.current().id, expected);
    }
    // The objection stack was undone too: `return` is no longer possible from greet.
    l.choose("1", 6);
    assert_eq!(l.run.current().id, "qualify");
    l.check_replay();
}

#[test]
fn continue_only_where_a_step_has_no_answers() {
    let (mut run, _) = start();
    assert_eq!(run.proceed(at(1)), Err(RunError::CannotContinue));
}

#[test]
fn an_objection_returns_to_the_step_it_was_opened_from() {
    let mut l = Logged::new();
    l.set("name", "Ivan", 1);
    l.choose("1", 2);
    let events = {
        let r = l.run.open_objection("f1", at(3));
        l.ok(r)
    };
    assert!(
        matches!(&events[0], RunEvent::ObjectionOpened { objection, from_step, .. } if objection == "price" && from_step == "qualify")
    );
    let view = l.run.view(Lang::En);
    assert_eq!(view.objection.as_deref(), Some("Price"));
    assert_eq!(view.step, "price1");
    let events = l.choose("1", 4);
    assert!(
        events.iter().any(
            |e| matches!(e, RunEvent::ObjectionReturned { to_step, .. } if to_step == "qualify")
        )
    );
    assert_eq!(l.run.current().id, "qualify");
    assert_eq!(l.run.view(Lang::En).objection, None);
    l.check_replay();
}

#[test]
fn objections_nest_and_unwind_in_order() {
    let mut l = Logged::new();
    {
        let r = l.run.open_objection("price", at(1));
        l.ok(r)
    };
    l.choose("2", 2);
    {
        let r = l.run.open_objection("F2", at(3));
        l.ok(r)
    };
    l.choose("1", 4);
    assert_eq!(
        l.run.current().id,
        "price2",
        "the inner objection returns to price2"
    );
    l.choose("1", 5);
    assert_eq!(
        l.run.current().id,
        "greet",
        "the outer one returns to greet"
    );
    l.check_replay();
}

#[test]
fn an_open_objection_cannot_be_opened_again() {
    let (mut run, _) = start();
    run.open_objection("price", at(1)).expect("opens");
    assert_eq!(
        run.open_objection("F1", at(2)),
        Err(RunError::ObjectionOpen {
            label: "Price".into()
        })
    );
    assert_eq!(
        run.open_objection("nope", at(2)),
        Err(RunError::UnknownObjection {
            input: "nope".into()
        })
    );
}

#[test]
fn leaving_an_objection_for_the_main_branch_closes_it() {
    let mut l = Logged::new();
    {
        let r = l.run.open_objection("price", at(1));
        l.ok(r)
    };
    l.choose("4", 2);
    assert_eq!(l.run.current().id, "offer");
    assert_eq!(l.run.view(Lang::En).objection, None);
    // The price objection can be opened again: it is no longer on the stack.
    {
        let r = l.run.open_objection("price", at(3));
        l.ok(r)
    };
    l.choose("1", 4);
    assert_eq!(l.run.current().id, "offer");
    l.check_replay();
}

#[test]
fn objections_nest_at_most_eight_deep() {
    let mut yaml = String::from(
        "format: callhelper-script/1\nid: deep\nname: Deep\nversion: 1\nlocale: en\nstart: a\n\
         steps:\n  - { id: a, answers: [{ label: End, next: z }] }\n  - { id: z, outcome: success }\n\
         objections:\n",
    );
    for i in 0..10 {
        yaml.push_str(&format!(
            "  - {{ id: o{i}, label: O{i}, key: \"{}\", steps: [{{ id: s{i}, answers: [{{ label: Back, key: \"1\", next: return }}] }}] }}\n",
            ["F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9", "F10"][i]
        ));
    }
    let (mut run, _) = Run::start(program(&yaml), Context::default(), at(0));
    for i in 0..8 {
        run.open_objection(&format!("o{i}"), at(i))
            .expect("within the limit");
    }
    assert_eq!(
        run.open_objection("o8", at(9)),
        Err(RunError::ObjectionsTooDeep)
    );
}

#[test]
fn unforeseen_answers_and_notes_are_kept() {
    let mut l = Logged::new();
    {
        let r = l.run.unforeseen("Asked about a discount", at(1));
        l.ok(r)
    };
    assert_eq!(l.run.current().id, "greet", "logging does not move");
    l.set("name", "Ivan", 2);
    l.choose("2", 3);
    {
        let r = Ok(l.run.note("Call in spring", at(4)));
        l.ok(r)
    };
    let record = l.run.record();
    assert_eq!(record.unforeseen[0].text, "Asked about a discount");
    assert_eq!(record.unforeseen[0].step.as_deref(), Some("greet"));
    assert_eq!(record.notes[0].text, "Call in spring");
    l.check_replay();
}

#[test]
fn a_finished_run_refuses_everything_but_notes() {
    let (mut run, _) = start();
    run.set_field_input("name", "Ivan", at(1)).expect("valid");
    run.choose(AnswerRef::Key("2"), at(2)).expect("ends");
    assert!(run.is_finished());
    assert_eq!(
        run.choose(AnswerRef::Key("1"), at(3)),
        Err(RunError::Finished)
    );
    assert_eq!(run.back(at(3)), Err(RunError::Finished));
    assert_eq!(
        run.set_field_input("name", "X", at(3)),
        Err(RunError::Finished)
    );
    assert_eq!(run.open_objection("F1", at(3)), Err(RunError::Finished));
    assert_eq!(run.unforeseen("x", at(3)), Err(RunError::Finished));
    assert_eq!(
        run.end(EndReason::RemoteHangup, None, None, at(3)),
        Err(RunError::Finished)
    );
    assert_eq!(run.note("after the call", at(4)).len(), 1);
}

#[test]
fn a_run_can_end_early_and_records_where() {
    let mut l = Logged::new();
    l.set("name", "Ivan", 1);
    l.choose("1", 2);
    let events = {
        let r = l.run.end(EndReason::RemoteHangup, None, None, at(7));
        l.ok(r)
    };
    assert!(
        matches!(&events[0], RunEvent::Finished { step, reason: EndReason::RemoteHangup, outcome: None, .. } if step == "qualify")
    );
    let record = l.run.record();
    assert_eq!(record.ended_at_step.as_deref(), Some("qualify"));
    assert_eq!(record.outcome, None);
    l.check_replay();

    let (mut run, _) = start();
    assert_eq!(
        run.end(
            EndReason::AgentEnded,
            Some(Outcome::parse("sold_a_car")),
            None,
            at(1)
        ),
        Err(RunError::UnknownOutcome {
            outcome: "sold_a_car".into()
        })
    );
    run.end(
        EndReason::AgentEnded,
        Some(Outcome::parse("sent_offer")),
        None,
        at(1),
    )
    .expect("a declared outcome");
    assert_eq!(
        run.record().outcome,
        Some(Outcome::Custom("sent_offer".into()))
    );
}

#[test]
fn a_callback_step_records_when_to_call() {
    let mut l = Logged::new();
    l.set("name", "Ivan", 1);
    l.choose("l", 2);
    l.set("when", "31.12.2026 10:30", 3);
    {
        let r = l.run.proceed(at(4));
        l.ok(r)
    };
    let record = l.run.record();
    assert_eq!(record.outcome, Some(Outcome::Callback));
    assert_eq!(record.callback_at.as_deref(), Some("2026-12-31T10:30"));
    l.check_replay();
}

#[test]
fn typed_values_are_read_and_checked_by_type() {
    let (mut run, _) = start();
    let mut ok = |field: &str, input: &str, expected: Value| {
        run.set_field_input(field, input, at(1))
            .unwrap_or_else(|e| panic!("{field}={input}: {}", e.message().en));
        assert_eq!(run.field(field), Some(&expected), "{field}={input}");
    };
    ok("budget", "2,5", Value::Number(2.5));
    ok("budget", "200 000", Value::Number(200000.0));
    ok("ok", "да", Value::Bool(true));
    ok("ok", "No", Value::Bool(false));
    ok("size", "Big", Value::Text("big".into()));
    ok("size", "1", Value::Text("small".into()));
    ok("topics", "a, c", Value::List(vec!["a".into(), "c".into()]));
    ok(
        "email",
        "ivan@example.ru",
        Value::Text("ivan@example.ru".into()),
    );
    ok("code", "ABC", Value::Text("ABC".into()));
    ok("day", "29.02.2028", Value::Text("2028-02-29".into()));
    ok(
        "when",
        "2026-12-31T09:05",
        Value::Text("2026-12-31T09:05".into()),
    );
    ok(
        "tel",
        "+7 (912) 000-11-22",
        Value::Text("+79120001122".into()),
    );

    let (mut run, _) = start();
    let mut bad = |field: &str, input: &str, expected: FieldError| match run.set_field_input(
        field,
        input,
        at(1),
    ) {
        Err(RunError::InvalidValue { error, .. }) => assert_eq!(error, expected, "{field}={input}"),
        other => panic!("{field}={input}: expected an error, got {other:?}"),
    };
    bad("budget", "a lot", FieldError::NotNumber);
    bad("budget", "-1", FieldError::BelowMin { min: 0.0 });
    bad("ok", "maybe", FieldError::NotBool);
    bad(
        "size",
        "huge",
        FieldError::NotOption {
            value: "huge".into(),
            options: vec!["small".into(), "big".into()],
        },
    );
    bad("topics", "a, b, c", FieldError::AboveMax { max: 2.0 });
    bad("email", "ivan@", FieldError::BadEmail);
    bad("code", "abc", FieldError::Pattern);
    bad("code", "ABCD", FieldError::Pattern);
    bad("day", "31.02.2026", FieldError::BadDate);
    bad("day", "2026-13-01", FieldError::BadDate);
    bad("day", "29.02.2026", FieldError::BadDate);
    bad("when", "2026-12-31 25:00", FieldError::BadDatetime);
    bad("tel", "call me", FieldError::BadPhone);
    bad("tel", "123", FieldError::BadPhone);
    assert_eq!(
        run.set_field_input("nope", "1", at(1)),
        Err(RunError::UnknownField {
            field: "nope".into()
        })
    );
    let err = run.set_field_input("budget", "x", at(1)).expect_err("bad");
    assert_eq!(err.message().en, "«Budget» must be a number");
    assert_eq!(err.message().ru, "в поле «Budget» должно быть число");
}

#[test]
fn empty_input_clears_a_field() {
    let mut l = Logged::new();
    l.set("budget", "5", 1);
    let events = {
        let r = l.run.set_field_input("budget", "  ", at(2));
        l.ok(r)
    };
    assert!(matches!(&events[0], RunEvent::FieldSet { value: None, .. }));
    assert_eq!(l.run.field("budget"), None);
    l.check_replay();
}

#[test]
fn events_survive_json_and_replay_from_every_prefix() {
    let mut l = Logged::new();
    l.set("name", "Ivan", 1);
    {
        let r = l.run.open_objection("F1", at(2));
        l.ok(r)
    };
    l.choose("1", 3);
    {
        let r = l.run.unforeseen("?", at(4));
        l.ok(r)
    };
    l.choose("1", 5);
    l.set("budget", "10", 6);
    {
        let r = l.run.back(at(7));
        l.ok(r)
    };
    l.choose("1", 8);
    l.set("budget", "5000", 9);
    {
        let r = l.run.proceed(at(10));
        l.ok(r)
    };
    let json: Vec<String> = l
        .events
        .iter()
        .map(|e| serde_json::to_string(e).expect("serialises"))
        .collect();
    let back: Vec<RunEvent> = json
        .iter()
        .map(|s| serde_json::from_str(s).expect("parses"))
        .collect();
    assert_eq!(back, l.events);
    // A crash can cut the log after any event: every prefix must replay.
    for n in 1..=l.events.len() {
        Run::replay(
            Arc::clone(l.run.program()),
            Context::default(),
            &l.events[..n],
        )
        .unwrap_or_else(|e| panic!("prefix of {n} events: {}", e.message().en));
    }
    l.check_replay();
}

#[test]
fn replay_refuses_another_version_or_a_tampered_log() {
    let mut l = Logged::new();
    l.set("name", "Ivan", 1);
    l.choose("1", 2);
    let newer = RUNNER_SCRIPT.replace("version: 7", "version: 8");
    let err = Run::replay(program(&newer), Context::default(), &l.events).expect_err("version");
    assert!(matches!(err, RunError::Replay { index: 0, .. }), "{err:?}");

    let mut tampered = l.events.clone();
    let last = tampered.len() - 1;
    if let RunEvent::StepEntered { step, .. } = &mut tampered[last] {
        *step = "won".into();
    }
    let err = Run::replay(Arc::clone(l.run.program()), Context::default(), &tampered)
        .expect_err("tampered");
    assert!(
        matches!(err, RunError::Replay { index, .. } if index == last),
        "{err:?}"
    );

    let err = Run::replay(
        Arc::clone(l.run.program()),
        Context::default(),
        &l.events[1..],
    )
    .expect_err("no start");
    assert!(matches!(err, RunError::Replay { index: 0, .. }));
}

#[test]
fn conditions_read_contact_variables() {
    let yaml = r#"
format: callhelper-script/1
id: vip
name: VIP
version: 1
locale: ru
start: a
variables: { contact: [segment] }
steps:
  - id: a
    next:
      - if: contact.segment == "vip"
        goto: vip
      - goto: usual
  - { id: vip, outcome: success }
  - { id: usual, outcome: refusal }
"#;
    let program: Arc<Program> = program(yaml);
    let mut context = Context::default();
    context.contact.insert("segment".into(), "vip".into());
    let (mut run, _) = Run::start(Arc::clone(&program), context, at(0));
    run.proceed(at(1)).expect("continues");
    assert_eq!(run.record().outcome, Some(Outcome::Success));
    let (mut run, _) = Run::start(program, Context::default(), at(0));
    run.proceed(at(1)).expect("continues");
    assert_eq!(run.record().outcome, Some(Outcome::Refusal));
}

#[test]
fn booleans_read_in_the_script_language() {
    let yaml = RUNNER_SCRIPT
        .replace("locale: en", "locale: ru")
        .replace("\"{{fields.name}}, what budget?\"", "\"{{fields.ok}}\"");
    let (mut run, _) = Run::start(program(&yaml), Context::default(), at(0));
    run.set_field_input("name", "Иван", at(1)).expect("valid");
    run.set_field_input("ok", "yes", at(1)).expect("valid");
    run.choose(AnswerRef::Key("1"), at(2)).expect("moves");
    assert_eq!(run.view(Lang::Ru).say.expect("line").text, "да");
}
