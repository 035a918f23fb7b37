//! Per-step analytics of finished runs: how many runs reach each step, how many go on
//! from it and how many end there, which answers are chosen, the time spent on it, and
//! the outcomes and conversion of each script version.
//!
//! The figures hold no personal data by construction (step and answer ids, counts,
//! durations), so they can be shared and exported freely; runs of blocked people are
//! still left out, since blocking stops all processing of a person (terms «b»).
//!
//! [`Tally`] is the pure part: it takes run records one at a time and keeps only counts
//! and fixed-size time histograms, so millions of runs take constant memory.
//! [`Store::analytics`] streams the stored records of the runs a [`Filter`] selects
//! into it; [`Analytics::write_csv`] writes the result as a table.

use std::collections::BTreeMap;
use std::io::Write;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::access::Permission;
use crate::audit::{self, Audit};
use crate::error::{Result, StoreError};
use crate::export::{Filter, WHERE, csv_error, params};
use crate::{Session, Store};

/// The analytics of the runs a filter selected.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Analytics {
    /// One entry per script version, by script id then version.
    pub scripts: Vec<ScriptStats>,
    /// Runs not finished yet (in progress, or left by a crash), not counted.
    pub unfinished: u64,
    /// Finished runs of blocked people, not counted.
    pub blocked_left_out: u64,
}

/// The figures of one script version.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ScriptStats {
    /// The script's id.
    pub script_id: String,
    /// The version.
    pub version: u32,
    /// The script's name (as stored with that version).
    pub name: String,
    /// Finished runs.
    pub runs: u64,
    /// Runs per outcome (`success`, `refusal`, … or the script's own); runs without an
    /// outcome count as `none`.
    pub outcomes: BTreeMap<String, u64>,
    /// The share of runs that ended in `success` (0–1).
    pub conversion: f64,
    /// Runs per way of ending (`terminal`, `remote_hangup`, `agent_hangup`, …).
    pub end_reasons: BTreeMap<String, u64>,
    /// How long the runs took.
    pub duration: TimeStats,
    /// The steps, the most reached first.
    pub steps: Vec<StepStats>,
}

/// The figures of one step of one script version.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct StepStats {
    /// The step's id.
    pub step: String,
    /// The objection it belongs to, for a step of the objection library.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objection: Option<String>,
    /// Runs that reached it (once per run, however often they came back).
    pub reached: u64,
    /// Runs that went on from it to another step and did not end on it:
    /// `reached - ended_here`.
    pub left: u64,
    /// Runs that ended on it (its outcome, a hang-up, the agent ending the run, …).
    pub ended_here: u64,
    /// How often each answer was chosen on it, by answer id.
    pub answers: BTreeMap<String, u64>,
    /// Time spent on it per run that reached it.
    pub time: TimeStats,
}

/// A distribution of durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, JsonSchema)]
pub struct TimeStats {
    /// The mean.
    pub mean_ms: u64,
    /// The median (to the histogram's resolution, see [`Histogram`]).
    pub median_ms: u64,
    /// The 90th percentile (to the histogram's resolution).
    pub p90_ms: u64,
}

/// A fixed-size histogram of durations: 100 ms buckets up to 10 minutes, then 10 s
/// buckets up to 2 hours; longer durations fall in the last bucket. A percentile is the
/// upper bound of its bucket (exact for whole multiples of the bucket width); the mean
/// is exact.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u32>,
    count: u64,
    sum_ms: u128,
}

const FINE_MS: u64 = 100;
const FINE_UNTIL_MS: u64 = 600_000;
const COARSE_MS: u64 = 10_000;
const COARSE_UNTIL_MS: u64 = 7_200_000;
/// Bucket `i <= FINE` holds durations in `((i - 1) * 100, i * 100]` ms (bucket 0: zero).
const FINE: usize = (FINE_UNTIL_MS / FINE_MS) as usize;
const BUCKETS: usize = FINE + 1 + ((COARSE_UNTIL_MS - FINE_UNTIL_MS) / COARSE_MS) as usize;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS],
            count: 0,
            sum_ms: 0,
        }
    }
}

impl Histogram {
    /// Count one duration.
    pub fn add(&mut self, ms: u64) {
        let i = if ms <= FINE_UNTIL_MS {
            ms.div_ceil(FINE_MS) as usize
        } else {
            let past = (ms - FINE_UNTIL_MS).div_ceil(COARSE_MS);
            usize::try_from(past).map_or(BUCKETS - 1, |p| (FINE + p).min(BUCKETS - 1))
        };
        self.buckets[i] = self.buckets[i].saturating_add(1);
        self.count += 1;
        self.sum_ms += u128::from(ms);
    }

    /// The upper bound of bucket `i`.
    fn upper(i: usize) -> u64 {
        if i <= FINE {
            i as u64 * FINE_MS
        } else {
            FINE_UNTIL_MS + (i - FINE) as u64 * COARSE_MS
        }
    }

    /// The smallest bucket bound at or under which a share `q` (0–1) of the durations lie.
    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let want = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= want {
                return Self::upper(i);
            }
        }
        Self::upper(BUCKETS - 1)
    }

    /// Mean, median and 90th percentile.
    pub fn stats(&self) -> TimeStats {
        TimeStats {
            mean_ms: self.sum_ms.checked_div(u128::from(self.count)).unwrap_or(0) as u64,
            median_ms: self.quantile(0.5),
            p90_ms: self.quantile(0.9),
        }
    }
}

/// The parts of a stored run record that analytics reads (the rest is skipped unread).
#[derive(Debug, Deserialize)]
pub struct RecordLite {
    #[serde(default)]
    duration_ms: Option<u64>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    end_reason: Option<String>,
    #[serde(default)]
    path: Vec<VisitLite>,
}

#[derive(Debug, Deserialize)]
struct VisitLite {
    step: String,
    #[serde(default)]
    objection: Option<String>,
    #[serde(default)]
    spent_ms: u64,
    #[serde(default)]
    answer: Option<AnswerLite>,
}

#[derive(Debug, Deserialize)]
struct AnswerLite {
    id: String,
}

#[derive(Debug, Default)]
struct StepTally {
    reached: u64,
    ended_here: u64,
    answers: BTreeMap<String, u64>,
    time: Histogram,
}

#[derive(Debug, Default)]
struct ScriptTally {
    name: String,
    runs: u64,
    outcomes: BTreeMap<String, u64>,
    end_reasons: BTreeMap<String, u64>,
    duration: Histogram,
    /// By (objection, step).
    steps: BTreeMap<(Option<String>, String), StepTally>,
}

/// Counts runs into analytics, one record at a time, in constant memory (per script
/// version and step). Pure: no IO.
#[derive(Debug, Default)]
pub struct Tally {
    scripts: BTreeMap<(String, u32), ScriptTally>,
}

impl Tally {
    /// Count one finished run of `script_id` version `version` (named `name`).
    pub fn add(&mut self, script_id: &str, version: u32, name: &str, r: &RecordLite) {
        let key = (script_id.to_owned(), version);
        let t = self.scripts.entry(key).or_default();
        if t.name.is_empty() {
            name.clone_into(&mut t.name);
        }
        t.runs += 1;
        *t.outcomes
            .entry(r.outcome.clone().unwrap_or_else(|| "none".into()))
            .or_default() += 1;
        *t.end_reasons
            .entry(r.end_reason.clone().unwrap_or_else(|| "none".into()))
            .or_default() += 1;
        if let Some(ms) = r.duration_ms {
            t.duration.add(ms);
        }
        // A step visited more than once counts once per run, with its time summed; the
        // run ended on the last step of its path (which keeps only visits not undone).
        let mut this_run: BTreeMap<(Option<String>, &str), (bool, u64)> = BTreeMap::new();
        for (i, v) in r.path.iter().enumerate() {
            let e = this_run
                .entry((v.objection.clone(), v.step.as_str()))
                .or_default();
            e.0 |= i + 1 == r.path.len();
            e.1 += v.spent_ms;
            if let Some(a) = &v.answer {
                let s = t
                    .steps
                    .entry((v.objection.clone(), v.step.clone()))
                    .or_default();
                *s.answers.entry(a.id.clone()).or_default() += 1;
            }
        }
        for ((objection, step), (ended, spent)) in this_run {
            let s = t.steps.entry((objection, step.to_owned())).or_default();
            s.reached += 1;
            s.ended_here += u64::from(ended);
            s.time.add(spent);
        }
    }

    /// The figures counted so far.
    pub fn finish(self, unfinished: u64, blocked_left_out: u64) -> Analytics {
        let scripts = self
            .scripts
            .into_iter()
            .map(|((script_id, version), t)| {
                let success = t.outcomes.get("success").copied().unwrap_or(0);
                let mut steps: Vec<StepStats> = t
                    .steps
                    .into_iter()
                    .map(|((objection, step), s)| StepStats {
                        step,
                        objection,
                        reached: s.reached,
                        left: s.reached - s.ended_here,
                        ended_here: s.ended_here,
                        answers: s.answers,
                        time: s.time.stats(),
                    })
                    .collect();
                // The funnel: the most reached first; script steps before objections.
                steps.sort_by(|a, b| {
                    (a.objection.is_some(), std::cmp::Reverse(a.reached), &a.step).cmp(&(
                        b.objection.is_some(),
                        std::cmp::Reverse(b.reached),
                        &b.step,
                    ))
                });
                ScriptStats {
                    script_id,
                    version,
                    name: t.name,
                    runs: t.runs,
                    conversion: if t.runs == 0 {
                        0.0
                    } else {
                        success as f64 / t.runs as f64
                    },
                    outcomes: t.outcomes,
                    end_reasons: t.end_reasons,
                    duration: t.duration.stats(),
                    steps,
                }
            })
            .collect();
        Analytics {
            scripts,
            unfinished,
            blocked_left_out,
        }
    }
}

/// `key=count; key=count` in key order.
fn counts(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Analytics {
    /// Write the figures as CSV: for each script version, a summary row (`step` empty:
    /// runs, outcomes, conversion, run duration), then a row per step.
    pub fn write_csv(&self, out: impl Write) -> Result<()> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record([
            "script",
            "version",
            "step",
            "objection",
            "reached",
            "left",
            "ended_here",
            "share_of_runs",
            "mean_ms",
            "median_ms",
            "p90_ms",
            "conversion",
            "counts",
        ])
        .map_err(csv_error)?;
        for s in &self.scripts {
            let version = s.version.to_string();
            let row = |step: &str,
                       objection: &str,
                       reached: u64,
                       left: String,
                       ended: String,
                       time: &TimeStats,
                       conversion: String,
                       counts: String| {
                let share = if s.runs == 0 {
                    0.0
                } else {
                    reached as f64 / s.runs as f64
                };
                [
                    s.script_id.clone(),
                    version.clone(),
                    step.to_owned(),
                    objection.to_owned(),
                    reached.to_string(),
                    left,
                    ended,
                    format!("{share:.4}"),
                    time.mean_ms.to_string(),
                    time.median_ms.to_string(),
                    time.p90_ms.to_string(),
                    conversion,
                    counts,
                ]
            };
            w.write_record(row(
                "",
                "",
                s.runs,
                String::new(),
                String::new(),
                &s.duration,
                format!("{:.4}", s.conversion),
                counts(&s.outcomes),
            ))
            .map_err(csv_error)?;
            for st in &s.steps {
                w.write_record(row(
                    &st.step,
                    st.objection.as_deref().unwrap_or(""),
                    st.reached,
                    st.left.to_string(),
                    st.ended_here.to_string(),
                    &st.time,
                    String::new(),
                    counts(&st.answers),
                ))
                .map_err(csv_error)?;
            }
        }
        w.flush().map_err(|e| csv_error(e.into()))?;
        Ok(())
    }
}

impl Store {
    /// Per-step analytics of the finished runs `filter` selects (its
    /// `without_personal_data` changes nothing: analytics never hold personal data).
    /// Managers and administrators; audited like an export.
    pub fn analytics(&self, s: &Session, filter: &Filter) -> Result<Analytics> {
        {
            let db = self.db();
            self.require(&db, s, Permission::Export, "see analytics")?;
        }
        // Its own connection and snapshot, so the app's connection stays free meanwhile.
        let mut db = self.reader()?;
        let tx = db.transaction()?;
        let p = params(filter);
        let p = rusqlite::params_from_iter(p.iter());
        let (unfinished, blocked): (u64, u64) = tx.query_row(
            &format!(
                "SELECT count(*) FILTER (WHERE r.state != 'finished'),
                        count(*) FILTER (WHERE r.state = 'finished' AND c.blocked_at IS NOT NULL)
                 FROM runs r LEFT JOIN contacts c ON c.id = r.contact_id WHERE {WHERE}"
            ),
            p.clone(),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let names: BTreeMap<(String, u32), String> = tx
            .prepare("SELECT script_id, version, name FROM scripts")?
            .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = tx.prepare(&format!(
            "SELECT r.id, r.script_id, r.script_version, d.record
             FROM runs r JOIN run_data d ON d.run_id = r.id
             LEFT JOIN contacts c ON c.id = r.contact_id
             WHERE r.state = 'finished' AND c.blocked_at IS NULL AND d.record IS NOT NULL
               AND {WHERE}"
        ))?;
        let mut rows = stmt.query(p)?;
        let mut tally = Tally::default();
        let mut counted = 0u64;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let script: &str = row.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
            let version: u32 = row.get(2)?;
            let text = row.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?;
            let record: RecordLite = serde_json::from_str(text).map_err(|e| {
                // Not serde's message: it can quote the value.
                StoreError::Corrupt(format!(
                    "the record of run {id}: {:?} error at line {}, column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                ))
            })?;
            let name = names
                .get(&(script.to_owned(), version))
                .map_or("", String::as_str);
            tally.add(script, version, name, &record);
            counted += 1;
        }
        drop(rows);
        drop(stmt);
        drop(tx);
        audit::write(
            &self.db(),
            self.now(),
            Some(s.user()),
            Audit::Exported {
                format: "analytics".into(),
                rows: counted,
                filter: serde_json::to_value(filter)?,
            },
        )?;
        Ok(tally.finish(unfinished, blocked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> RecordLite {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn histogram_percentiles_and_mean() {
        let mut h = Histogram::default();
        assert_eq!(h.stats(), TimeStats::default());
        for ms in [50, 150, 250, 350, 450, 550, 650, 750, 850, 10_000] {
            h.add(ms);
        }
        let s = h.stats();
        assert_eq!(s.mean_ms, 1_405);
        assert_eq!(s.median_ms, 500, "5 of 10 at or under 500 ms");
        assert_eq!(s.p90_ms, 900);
        let mut long = Histogram::default();
        long.add(3_600_000);
        long.add(u64::MAX / 4);
        assert_eq!(long.stats().median_ms, 3_600_000);
        assert_eq!(
            long.stats().p90_ms,
            7_200_000,
            "the last bucket holds the rest"
        );
    }

    #[test]
    fn steps_reached_left_and_ended_with_answers_and_time() {
        let mut t = Tally::default();
        // Greeted, interested, qualified: success.
        t.add(
            "sales",
            3,
            "Sales",
            &record(
                r#"{"outcome":"success","end_reason":"terminal","duration_ms":9000,"path":[
                {"step":"greet","entered_at":0,"left_at":1000,"spent_ms":1000,"answer":{"id":"yes","label":"Yes"}},
                {"step":"qualify","entered_at":1000,"left_at":9000,"spent_ms":8000},
                {"step":"won","entered_at":9000,"spent_ms":0}]}"#,
            ),
        );
        // Greeted, raised an objection and came back, then hung up on the greeting.
        t.add(
            "sales",
            3,
            "Sales",
            &record(
                r#"{"end_reason":"remote_hangup","duration_ms":4000,"path":[
                {"step":"greet","entered_at":0,"left_at":1000,"spent_ms":3000,"answer":{"id":"price","label":"Too dear"}},
                {"step":"why","objection":"price","entered_at":1000,"left_at":2000,"spent_ms":1000},
                {"step":"greet","entered_at":2000,"spent_ms":0}]}"#,
            ),
        );
        // Another version keeps its own figures.
        t.add(
            "sales",
            4,
            "Sales",
            &record(
                r#"{"outcome":"refusal","end_reason":"terminal","path":[{"step":"greet","entered_at":0,"spent_ms":700}]}"#,
            ),
        );
        let a = t.finish(2, 1);
        assert_eq!((a.unfinished, a.blocked_left_out), (2, 1));
        assert_eq!(a.scripts.len(), 2);
        let v3 = &a.scripts[0];
        assert_eq!((v3.version, v3.runs, v3.name.as_str()), (3, 2, "Sales"));
        assert_eq!(v3.conversion, 0.5);
        assert_eq!(
            v3.outcomes,
            BTreeMap::from([("none".into(), 1), ("success".into(), 1)])
        );
        assert_eq!(v3.end_reasons["remote_hangup"], 1);
        assert_eq!(v3.duration.mean_ms, 6_500);
        let steps: Vec<(&str, u64, u64, u64)> = v3
            .steps
            .iter()
            .map(|s| (s.step.as_str(), s.reached, s.left, s.ended_here))
            .collect();
        assert_eq!(
            steps,
            [
                ("greet", 2, 1, 1),
                ("qualify", 1, 1, 0),
                ("won", 1, 0, 1),
                ("why", 1, 1, 0)
            ]
        );
        let greet = &v3.steps[0];
        assert_eq!(
            greet.answers,
            BTreeMap::from([("price".into(), 1), ("yes".into(), 1)])
        );
        assert_eq!(greet.time.mean_ms, 2_000, "1 s and 3 s");
        assert_eq!(v3.steps[3].objection.as_deref(), Some("price"));
        let v4 = &a.scripts[1];
        assert_eq!((v4.version, v4.runs, v4.conversion), (4, 1, 0.0));
        assert_eq!(v4.steps[0].ended_here, 1);

        let mut csv = Vec::new();
        a.write_csv(&mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "script,version,step,objection,reached,left,ended_here,share_of_runs,mean_ms,median_ms,p90_ms,conversion,counts"
        );
        assert_eq!(
            lines[1],
            "sales,3,,,2,,,1.0000,6500,4000,9000,0.5000,none=1; success=1"
        );
        assert_eq!(
            lines[2],
            "sales,3,greet,,2,1,1,1.0000,2000,1000,3000,,price=1; yes=1"
        );
        assert_eq!(lines.len(), 1 + 5 + 2);
    }
}
