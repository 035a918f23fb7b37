//! `callhelper script …`: lint scripts, run them in a terminal or from a list of answers,
//! and print the format's JSON Schema.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use callhelper_core::script::{
    Context, Lang, Program, Run, RunEvent, Severity, StepView, Timestamp,
};
use callhelper_core::scripts::{self, Action};
use clap::{Subcommand, ValueEnum};

use crate::Ctx;

/// Script subcommands.
#[derive(Debug, Subcommand)]
pub enum ScriptCommand {
    /// Check scripts and print `file:line:column: error|warning: message` for each problem.
    ///
    /// Exits 0 when there are no errors, 1 when there are, 2 when a file cannot be read.
    Lint {
        /// Script files (.yaml, .yml or .json).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = LintFormat::Text)]
        format: LintFormat,
        /// Treat warnings as problems (exit 1).
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Run a script: interactively in a terminal, or from answers given in advance.
    ///
    /// With `--answers` (or when standard input is not a terminal) each token is one
    /// action, and the finished run is printed as JSON. Tokens: an answer's hotkey or id;
    /// `field=value`; `<` back; `>` continue; an objection's key (F1…); `!objection ID`;
    /// `!unforeseen TEXT`; `!note TEXT`; `!end REASON [OUTCOME]` (REASON: remote_hangup,
    /// agent_hangup, call_failed, agent_ended).
    Run {
        /// The script file.
        file: PathBuf,
        /// A JSON object with the contact's variables (`{"name": "…", "phone": "…"}`).
        #[arg(long, value_name = "FILE")]
        contact: Option<PathBuf>,
        /// A JSON object with the agent's variables.
        #[arg(long, value_name = "FILE")]
        agent: Option<PathBuf>,
        /// Comma-separated actions (a `\,` is a comma inside a token).
        #[arg(long, value_name = "TOKENS")]
        answers: Option<String>,
        /// Ask in the terminal even when standard input is not one.
        #[arg(long, conflicts_with = "answers")]
        interactive: bool,
        /// Use a simulated clock starting at this many milliseconds since 1970, one second
        /// per action (for reproducible output).
        #[arg(long, value_name = "MS")]
        fake_clock: Option<i64>,
    },
    /// Print the JSON Schema of the script format.
    Schema,
}

/// How `lint` prints its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// `file:line:column: severity: message [rule]` lines.
    Text,
    /// A JSON array of reports.
    Json,
}

/// Run a script subcommand.
pub fn run(cmd: ScriptCommand, ctx: &Ctx) -> ExitCode {
    match cmd {
        ScriptCommand::Lint {
            files,
            format,
            deny_warnings,
        } => lint(&files, format, deny_warnings, ctx.lang),
        ScriptCommand::Schema => {
            let schema = callhelper_core::script::json_schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        ScriptCommand::Run {
            file,
            contact,
            agent,
            answers,
            interactive,
            fake_clock,
        } => match run_script(
            &file,
            contact,
            agent,
            answers,
            interactive,
            fake_clock,
            ctx.lang,
        ) {
            Ok(code) => code,
            Err(message) => {
                eprintln!("callhelper: {message}");
                ExitCode::from(2)
            }
        },
    }
}

fn lint(files: &[PathBuf], format: LintFormat, deny_warnings: bool, lang: Lang) -> ExitCode {
    let reports: Vec<scripts::LintReport> = files.iter().map(|f| scripts::lint_file(f)).collect();
    let (mut errors, mut warnings, mut unreadable) = (0, 0, 0);
    for r in &reports {
        if r.unreadable.is_some() {
            unreadable += 1;
        }
        errors += r
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        warnings += r
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count();
    }
    match format {
        LintFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&reports).unwrap_or_default()
            );
        }
        LintFormat::Text => {
            let mut out = std::io::stdout().lock();
            for r in &reports {
                let file = r.file.display().to_string();
                if let Some(e) = &r.unreadable {
                    let _ = writeln!(out, "{file}: error: {}", e.message(lang));
                }
                for d in &r.diagnostics {
                    let _ = writeln!(out, "{}", d.render(&file, lang));
                }
            }
            let n = files.len();
            let summary = match lang {
                Lang::Ru => format!(
                    "ошибок: {errors}, предупреждений: {warnings}, нечитаемых файлов: {unreadable} (проверено файлов: {n})"
                ),
                Lang::En => format!(
                    "{errors} error(s), {warnings} warning(s), {unreadable} unreadable file(s) in {n} file(s)"
                ),
            };
            eprintln!("{summary}");
        }
    }
    if unreadable > 0 {
        ExitCode::from(2)
    } else if errors > 0 || (deny_warnings && warnings > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Read a JSON object of variables; numbers and booleans become text.
fn read_variables(path: &Path) -> Result<std::collections::BTreeMap<String, String>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{shown}: not valid JSON: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err(format!("{shown}: expected a JSON object of variables"));
    };
    map.into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            _ => Err(format!(
                "{shown}: `{k}` must be a text, a number or true/false"
            )),
        })
        .collect()
}

/// The clock a run is stepped with: the real one, or a simulated one for reproducible runs.
struct Clock {
    fake: Option<i64>,
}

impl Clock {
    fn now(&mut self) -> Timestamp {
        match &mut self.fake {
            Some(t) => {
                let now = *t;
                *t += 1000;
                Timestamp(now)
            }
            None => Timestamp(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
            ),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_script(
    file: &Path,
    contact: Option<PathBuf>,
    agent: Option<PathBuf>,
    answers: Option<String>,
    interactive: bool,
    fake_clock: Option<i64>,
    lang: Lang,
) -> Result<ExitCode, String> {
    let program = scripts::open(file).map_err(|e| e.message(lang).to_owned())?;
    let context = Context {
        contact: contact
            .as_deref()
            .map(read_variables)
            .transpose()?
            .unwrap_or_default(),
        agent: agent
            .as_deref()
            .map(read_variables)
            .transpose()?
            .unwrap_or_default(),
    };
    let mut clock = Clock { fake: fake_clock };
    let interactive = interactive || (answers.is_none() && std::io::stdin().is_terminal());
    if interactive {
        return Ok(run_interactive(program, context, &mut clock, lang));
    }
    let tokens: Vec<String> = match answers {
        Some(list) => scripts::split_actions(&list),
        None => std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect(),
    };
    let (mut run, _) = Run::start(program, context, clock.now());
    for (i, token) in tokens.iter().enumerate() {
        let n = i + 1;
        let action =
            scripts::parse_action(token).map_err(|e| format!("action {n} («{token}»): {e}"))?;
        if run.is_finished() && !matches!(action, Action::Note(_)) {
            eprintln!("callhelper: action {n} («{token}»): the run has already ended");
            print_record(&run);
            return Ok(ExitCode::from(1));
        }
        if let Err(e) = scripts::apply(&mut run, &action, clock.now()) {
            let step = run.current().id.clone();
            eprintln!(
                "callhelper: action {n} («{token}») at step `{step}`: {}",
                e.message().get(lang)
            );
            print_record(&run);
            return Ok(ExitCode::from(1));
        }
    }
    print_record(&run);
    if run.is_finished() {
        Ok(ExitCode::SUCCESS)
    } else {
        let step = run.current().id.clone();
        eprintln!(
            "{}",
            match lang {
                Lang::Ru => format!(
                    "callhelper: действия закончились на шаге `{step}`, разговор не завершён"
                ),
                Lang::En => format!(
                    "callhelper: the actions ran out at step `{step}`; the run is not finished"
                ),
            }
        );
        Ok(ExitCode::from(1))
    }
}

fn print_record(run: &Run) {
    println!(
        "{}",
        serde_json::to_string_pretty(&run.record()).unwrap_or_default()
    );
}

/// Terminal strings in both languages.
fn tr(lang: Lang, en: &'static str, ru: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Ru => ru,
    }
}

fn show(view: &StepView, lang: Lang, out: &mut impl Write) {
    let _ = writeln!(out);
    let head = match &view.objection {
        Some(o) => format!("── {} · {} ──", o, view.title),
        None => format!("── {} ──", view.title),
    };
    let _ = writeln!(out, "{head}");
    if let Some(say) = &view.say {
        let _ = writeln!(out, "{}: «{}»", tr(lang, "Say", "Скажите"), say.text);
    }
    if let Some(hint) = &view.hint {
        let _ = writeln!(out, "{}: {}", tr(lang, "Hint", "Подсказка"), hint.text);
    }
    for f in &view.fields {
        let value = f
            .value
            .as_ref()
            .map_or_else(|| "—".to_owned(), |v| v.display(lang));
        let req = if f.required { "*" } else { "" };
        let _ = writeln!(out, "  {}{req} [{}] = {value}", f.label, f.id);
    }
    for a in &view.answers {
        let _ = writeln!(out, "  [{}] {}", a.key, a.label);
    }
    if view.can_continue {
        let _ = writeln!(out, "  [>] {}", tr(lang, "continue", "далее"));
    }
    if !view.objections.is_empty() && view.finished.is_none() {
        let list: Vec<String> = view
            .objections
            .iter()
            .map(|o| format!("[{}] {}", o.key, o.label))
            .collect();
        let _ = writeln!(
            out,
            "{}: {}",
            tr(lang, "Objections", "Возражения"),
            list.join("  ")
        );
    }
}

const HELP_EN: &str = "Type an answer's key, an objection's key (F1…), field=value, < (back), \
> or Enter (continue), !unforeseen TEXT, !note TEXT, !end [REASON] [OUTCOME], ? (help), q (quit).";
const HELP_RU: &str = "Введите клавишу ответа, клавишу возражения (F1…), поле=значение, < (назад), \
> или Enter (далее), !unforeseen ТЕКСТ (непредусмотренный ответ), !note ТЕКСТ (заметка), \
!end [ПРИЧИНА] [ИСХОД], ? (помощь), q (выход).";

fn run_interactive(
    program: Arc<Program>,
    context: Context,
    clock: &mut Clock,
    lang: Lang,
) -> ExitCode {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut out = std::io::stdout().lock();
    let (mut run, _) = Run::start(program, context, clock.now());
    let _ = writeln!(out, "{}", tr(lang, HELP_EN, HELP_RU));
    let mut prompted_step: Option<String> = None;
    loop {
        let view = run.view(lang);
        if let Some(done) = &view.finished {
            show(&view, lang, &mut out);
            let rec = run.record();
            let outcome = done.outcome_label.clone().unwrap_or_else(|| "—".into());
            let secs = rec.duration_ms.unwrap_or(0) as f64 / 1000.0;
            let _ = writeln!(
                out,
                "{}: {outcome} ({secs:.0} s)",
                tr(lang, "Finished", "Завершено")
            );
            return ExitCode::SUCCESS;
        }
        if prompted_step.as_deref() != Some(view.step.as_str()) {
            show(&view, lang, &mut out);
            prompted_step = Some(view.step.clone());
            // Ask for the step's empty fields one by one; Enter skips one.
            for f in view.fields.iter().filter(|f| f.value.is_none()) {
                loop {
                    let _ = write!(out, "{}{}: ", f.label, if f.required { "*" } else { "" });
                    let _ = out.flush();
                    let Some(Ok(line)) = lines.next() else {
                        return unfinished(&run, lang, &mut out);
                    };
                    match run.set_field_input(&f.id, &line, clock.now()) {
                        Ok(_) => break,
                        Err(e) => {
                            let _ = writeln!(out, "  ! {}", e.message().get(lang));
                        }
                    }
                }
            }
        }
        let _ = write!(out, "> ");
        let _ = out.flush();
        let Some(Ok(line)) = lines.next() else {
            return unfinished(&run, lang, &mut out);
        };
        let line = line.trim();
        match line {
            // Enter continues from a step without answers, as in the desktop app.
            "" if run.view(lang).can_continue => {
                if let Err(e) = scripts::apply(&mut run, &Action::Continue, clock.now()) {
                    let _ = writeln!(out, "  ! {}", e.message().get(lang));
                }
                continue;
            }
            "" => continue,
            "?" => {
                let _ = writeln!(out, "{}", tr(lang, HELP_EN, HELP_RU));
                prompted_step = None;
                continue;
            }
            "q" if !run.view(lang).answers.iter().any(|a| a.key == "q") => {
                return unfinished(&run, lang, &mut out);
            }
            _ => {}
        }
        match scripts::parse_action(line) {
            Err(e) => {
                let _ = writeln!(out, "  ! {e}");
            }
            Ok(action) => {
                let before = run.current().id.clone();
                match scripts::apply(&mut run, &action, clock.now()) {
                    Ok(events) => {
                        if events
                            .iter()
                            .any(|e| matches!(e, RunEvent::WentBack { .. }))
                        {
                            prompted_step = None;
                        }
                        if let Action::Set { field, .. } = &action
                            && let Some(v) = run.field(field)
                        {
                            let _ = writeln!(out, "  {field} = {}", v.display(lang));
                        }
                        if run.current().id == before
                            && matches!(action, Action::Unforeseen(_) | Action::Note(_))
                        {
                            let _ = writeln!(out, "  {}", tr(lang, "noted", "записано"));
                        }
                    }
                    Err(e) => {
                        let _ = writeln!(out, "  ! {}", e.message().get(lang));
                    }
                }
            }
        }
    }
}

fn unfinished(run: &Run, lang: Lang, out: &mut impl Write) -> ExitCode {
    let step = &run.current().id;
    let _ = writeln!(
        out,
        "\n{} `{step}`",
        tr(
            lang,
            "Stopped; the run is not finished, it was left at step",
            "Остановлено; разговор не завершён, остановились на шаге"
        )
    );
    ExitCode::from(1)
}
