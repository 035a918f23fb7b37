//! The Reports page: the per-step analytics of finished runs and the exports of runs, for
//! managers and administrators, with the filters of `callhelper data analytics` and
//! `callhelper data export`.
//!
//! Everything goes through the store's API, which checks the permission and writes the
//! audit entry; the workspace only asks for a manager's session first (so the interface
//! opens its password prompt) and writes the analytics table to the file chosen. The
//! figures hold no personal data (step and answer ids, counts, durations).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use callhelper_script::text;
use callhelper_store::analytics::Analytics;
use callhelper_store::export::{ExportSummary, Filter, Format};
use callhelper_store::{Session, Store};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Area, Workspace, now};
use crate::Error;

/// What the Reports page writes to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// The analytics table as CSV (a summary row per script version, a row per step).
    AnalyticsCsv,
    /// The runs as CSV.
    RunsCsv,
    /// The runs as an Excel workbook.
    RunsXlsx,
    /// The runs as JSON, with their full records.
    RunsJson,
}

impl ExportKind {
    fn file_name(self, date: &str) -> String {
        match self {
            ExportKind::AnalyticsCsv => format!("callhelper-analytics-{date}.csv"),
            ExportKind::RunsCsv => format!("callhelper-runs-{date}.csv"),
            ExportKind::RunsXlsx => format!("callhelper-runs-{date}.xlsx"),
            ExportKind::RunsJson => format!("callhelper-runs-{date}.json"),
        }
    }
}

/// The Reports page's figures: the store's analytics, and the steps' titles from the
/// scripts folder (the store keeps step ids only).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Report {
    /// The figures (no personal data).
    pub analytics: Analytics,
    /// The titles of the steps of each script version the figures name whose file is
    /// still in the scripts folder (a step without one shows by its id).
    pub titles: Vec<StepTitles>,
}

/// The steps' titles of one script version.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StepTitles {
    /// The script's id.
    pub script_id: String,
    /// The version.
    pub version: u32,
    /// Step id → title, objection steps included.
    pub steps: BTreeMap<String, String>,
}

/// One script version's steps as its file has them: (id, title), objection steps after the
/// main ones.
struct FileSteps {
    script_id: String,
    version: u32,
    steps: Vec<(String, String)>,
}

/// The steps of the script versions in `a` whose files are in the scripts folder `dir`.
fn script_steps(dir: &Path, a: &Analytics) -> Vec<FileSteps> {
    let Ok(files) = crate::scripts::files(dir) else {
        return Vec::new();
    };
    files
        .iter()
        .filter_map(|f| crate::scripts::lint_file(f).script)
        .filter(|sc| {
            a.scripts
                .iter()
                .any(|s| s.script_id == sc.id && s.version == sc.version)
        })
        .map(|sc| {
            let steps = sc
                .steps
                .iter()
                .chain(sc.objections.iter().flat_map(|o| o.steps.iter()))
                .map(|st| (st.id.clone(), st.title().to_owned()))
                .collect();
            FileSteps {
                script_id: sc.id,
                version: sc.version,
                steps,
            }
        })
        .collect()
}

impl Workspace {
    /// The store and a manager's or administrator's session, or `desk.needs_manager`.
    fn manager(&self) -> Result<(Arc<Store>, Session), Error> {
        let mut st = self.state();
        let s = st.session_for(Area::Manager)?;
        Ok((st.ready()?.0.clone(), s))
    }

    /// The analytics of the finished runs `filter` selects (its `without_personal_data`
    /// changes nothing: analytics hold none). Managers and administrators, audited by the
    /// store; refused with `desk.needs_manager` without such a session.
    ///
    /// Steps come the most reached first, as the store gives them; steps reached by as many
    /// runs keep the order of the script's file when the scripts folder still holds that
    /// version.
    pub fn report(&self, filter: Filter) -> Result<Report, Error> {
        let (store, s) = self.manager()?;
        let mut analytics = store.analytics(&s, &filter)?;
        let dir = self.state().scripts.clone();
        let mut titles = Vec::new();
        for FileSteps {
            script_id,
            version,
            steps,
        } in script_steps(&dir, &analytics)
        {
            let order = |id: &str| {
                steps
                    .iter()
                    .position(|(s, _)| s == id)
                    .unwrap_or(usize::MAX)
            };
            for stats in analytics
                .scripts
                .iter_mut()
                .filter(|x| x.script_id == script_id && x.version == version)
            {
                stats
                    .steps
                    .sort_by_key(|st| (std::cmp::Reverse(st.reached), order(&st.step)));
            }
            titles.push(StepTitles {
                script_id,
                version,
                steps: steps.into_iter().collect(),
            });
        }
        log::info!(
            "desktop: report of {} script version(s)",
            analytics.scripts.len()
        );
        Ok(Report { analytics, titles })
    }

    /// Where an export of `kind` goes unless the user says otherwise: the Documents folder
    /// (the home folder without one), a file named with today's date.
    pub fn default_export_path(&self, kind: ExportKind) -> String {
        let dir = dirs::document_dir()
            .or_else(dirs::home_dir)
            .unwrap_or_else(|| PathBuf::from("."));
        let today = callhelper_store::time::iso(now());
        let date = today.get(..10).unwrap_or(&today);
        dir.join(kind.file_name(date)).display().to_string()
    }

    /// Write the analytics (CSV) or the runs (CSV, XLSX, JSON; without personal data when
    /// the filter says so) that `filter` selects to `path`, making its folder when missing.
    /// Managers and administrators, audited by the store; refused with
    /// `desk.needs_manager` without such a session.
    pub fn export_report(
        &self,
        filter: Filter,
        kind: ExportKind,
        path: &str,
    ) -> Result<ExportSummary, Error> {
        let (store, s) = self.manager()?;
        let path = PathBuf::from(path.trim());
        if path.as_os_str().is_empty() {
            return Err(Error::new(
                "desk.no_export_path",
                text!("Give the file to write."; "Укажите файл для записи."),
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| crate::data::write_failed(dir, &e))?;
        }
        let format = match kind {
            ExportKind::AnalyticsCsv => {
                let a = store.analytics(&s, &filter)?;
                let mut bytes = Vec::new();
                a.write_csv(&mut bytes)?;
                let header = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
                let columns = header.split(|b| *b == b',').count();
                std::fs::write(&path, &bytes).map_err(|e| crate::data::write_failed(&path, &e))?;
                let rows = a.scripts.iter().map(|s| 1 + s.steps.len() as u64).sum();
                log::info!("desktop: analytics written ({rows} rows)");
                return Ok(ExportSummary {
                    path,
                    rows,
                    columns,
                    blocked_left_out: a.blocked_left_out,
                });
            }
            ExportKind::RunsCsv => Format::Csv,
            ExportKind::RunsXlsx => Format::Xlsx,
            ExportKind::RunsJson => Format::Json,
        };
        let sum = store.export(&s, format, &filter, &path, &mut |_| {})?;
        log::info!("desktop: runs exported ({} rows)", sum.rows);
        Ok(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::workspace;
    use super::*;
    use crate::data;
    use crate::desktop::{DEMO_ADMIN, DEMO_ADMIN_PASSWORD, RunAction};

    #[test]
    fn managers_see_the_figures_of_a_run_and_export_it() {
        let (dir, ws, _) = workspace();
        ws.start_run("b2b-cold-call.en.yaml").unwrap();
        // "Too expensive" (F1) and back, then on to the decision maker.
        for key in ["F1", "1", "1"] {
            ws.act(RunAction::Answer { key: key.into() }).unwrap();
        }
        ws.act(RunAction::End {
            outcome: Some("success".into()),
            callback_at: None,
        })
        .unwrap();
        let mine = Filter {
            script: Some("b2b-cold-call-en".into()),
            from: Some(data::parse_date("2020-01-01", false).unwrap()),
            ..Filter::default()
        };

        // An agent is refused, so the interface asks for a manager's password.
        let out = dir.path().join("out/runs.csv");
        let shown = out.display().to_string();
        assert_eq!(
            ws.report(mine.clone()).unwrap_err().code,
            "desk.needs_manager"
        );
        let refused = ws.export_report(mine.clone(), ExportKind::RunsCsv, &shown);
        assert_eq!(refused.unwrap_err().code, "desk.needs_manager");
        assert!(!out.exists());
        ws.elevate(Area::Manager, DEMO_ADMIN, DEMO_ADMIN_PASSWORD)
            .unwrap();

        let report = ws.report(mine.clone()).unwrap();
        let r = &report.analytics;
        assert_eq!(r.scripts.len(), 1, "{r:?}");
        let s = &r.scripts[0];
        assert_eq!((s.script_id.as_str(), s.runs), ("b2b-cold-call-en", 1));
        assert_eq!(s.outcomes.get("success"), Some(&1));
        assert!((s.conversion - 1.0).abs() < 1e-9);
        let step = |id: &str| s.steps.iter().find(|x| x.step == id).unwrap();
        assert_eq!(
            (
                step("intro").reached,
                step("intro").left,
                step("intro").ended_here
            ),
            (1, 1, 0)
        );
        assert_eq!(step("lpr_intro").ended_here, 1);
        assert_eq!(
            step("expensive_reply").objection.as_deref(),
            Some("expensive")
        );
        assert_eq!(s.steps.len(), 3);
        // Reached by as many runs, the steps keep the script's order (the objection's step
        // after the main ones, not the ids' alphabetical order), and carry the titles of
        // the script's file.
        let order: Vec<&str> = s.steps.iter().map(|x| x.step.as_str()).collect();
        assert_eq!(order, ["intro", "lpr_intro", "expensive_reply"]);
        let titles = &report.titles[0];
        assert_eq!(
            (titles.script_id.as_str(), titles.version),
            ("b2b-cold-call-en", s.version)
        );
        assert_eq!(titles.steps["intro"], "Greeting");
        assert_eq!(titles.steps["lpr_intro"], "Meeting the decision maker");
        // Another outcome selects nothing; a bad date is explained.
        // Another outcome, or runs before the first, select nothing.
        let other = Filter {
            outcome: Some("refusal".into()),
            ..mine.clone()
        };
        assert!(ws.report(other).unwrap().analytics.scripts.is_empty());
        let before = Filter {
            to: mine.from,
            ..mine.clone()
        };
        assert!(ws.report(before).unwrap().analytics.scripts.is_empty());

        let runs = ws
            .export_report(mine.clone(), ExportKind::RunsCsv, &shown)
            .unwrap();
        assert_eq!((runs.rows, runs.path), (1, out.clone()));
        let csv = std::fs::read_to_string(&out).unwrap();
        assert_eq!(csv.lines().count(), 2, "a header and the run: {csv}");

        let table = dir.path().join("analytics.csv");
        let a = ws
            .export_report(mine, ExportKind::AnalyticsCsv, &table.display().to_string())
            .unwrap();
        assert_eq!((a.rows, a.columns), (4, 13), "the summary and three steps");
        let csv = std::fs::read_to_string(&table).unwrap();
        assert_eq!(csv.lines().count(), 5, "{csv}");

        let default = ws.default_export_path(ExportKind::RunsXlsx);
        assert!(default.ends_with(".xlsx") && default.contains("callhelper-runs-20"));
    }
}
