//! Export of collected runs to CSV, XLSX or JSON: one row per run, one column per field,
//! streamed in constant memory for millions of runs.
//!
//! The runs are read in id order on a separate connection (one snapshot), and their
//! field values by a second cursor in the same order, merged as they go: nothing is held
//! for more than one run. XLSX uses the writer's constant-memory mode and rolls over to a
//! new sheet at the format's row limit. JSON is one array, one object per run, keeping
//! the run's full record (path, answers, timings).
//!
//! Runs of blocked people are never exported (terms «b»). The file is written beside the
//! target and renamed at the end, so a failed export leaves no half file. Every export is
//! audited with its filter and row count; support users cannot export (§4.11).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use callhelper_script::{Lang, Timestamp, Value, text};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::access::Permission;
use crate::audit::{self, Audit};
use crate::error::{Result, StoreError, io_error};
use crate::runs::FieldInfo;
use crate::time::iso;
use crate::{Session, Store};

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Comma-separated values, UTF-8 with a header row.
    Csv,
    /// An Excel workbook.
    Xlsx,
    /// A JSON array of runs with their full records.
    Json,
}

impl Format {
    /// The format's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Json => "json",
        }
    }
}

/// Which runs to export. Empty means all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Runs that began at or after this time.
    pub from: Option<Timestamp>,
    /// Runs that began before this time.
    pub to: Option<Timestamp>,
    /// Runs of this script (by id).
    pub script: Option<String>,
    /// Runs with this outcome.
    pub outcome: Option<String>,
    /// Runs by this agent (login).
    pub agent: Option<String>,
    /// Leave out the contact's columns, fields marked `personal`, notes and remarks
    /// (an analytics export).
    #[serde(default)]
    pub without_personal_data: bool,
}

/// How far an export has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Rows written.
    pub done: u64,
    /// Rows to write in all.
    pub total: u64,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// The file.
    pub path: PathBuf,
    /// Runs written.
    pub rows: u64,
    /// Columns per row (CSV, XLSX).
    pub columns: usize,
    /// Runs left out because the person is blocked.
    pub blocked_left_out: u64,
}

const FIXED: &[&str] = &[
    "run",
    "script",
    "version",
    "started_at",
    "ended_at",
    "state",
    "outcome",
    "agent",
];
const CONTACT: &[&str] = &["contact_name", "contact_phone", "contact_email"];

/// The WHERE clause shared by the run cursor, the field cursor and the counts; the
/// parameters are ?1 from, ?2 to, ?3 script, ?4 outcome, ?5 agent login.
const WHERE: &str = "(?1 IS NULL OR r.started_at >= ?1) AND (?2 IS NULL OR r.started_at < ?2)
    AND (?3 IS NULL OR r.script_id = ?3) AND (?4 IS NULL OR r.outcome = ?4)
    AND (?5 IS NULL OR r.agent_id = (SELECT id FROM users WHERE login = ?5))";

fn params(f: &Filter) -> [Sql; 5] {
    let opt_i = |t: Option<Timestamp>| t.map_or(Sql::Null, |t| Sql::Integer(t.0));
    let opt_s = |s: &Option<String>| s.clone().map_or(Sql::Null, Sql::Text);
    [
        opt_i(f.from),
        opt_i(f.to),
        opt_s(&f.script),
        opt_s(&f.outcome),
        opt_s(&f.agent),
    ]
}

/// One run as read from the cursor.
struct Row {
    cells: Vec<Cell>,
    /// (field id, value) of the run, in the cursor's order.
    fields: Vec<(String, Value)>,
    record: Option<String>,
}

enum Cell {
    Empty,
    Int(i64),
    Text(String),
}

/// Both cursors of an export, merged by run id.
struct Reader<'c> {
    runs: rusqlite::Rows<'c>,
    fields: rusqlite::Rows<'c>,
    /// A field row read ahead of its run.
    pending: Option<(i64, String, String)>,
    personal: std::collections::HashSet<String>,
    with_contact: bool,
    agents: std::collections::HashMap<i64, String>,
}

impl Reader<'_> {
    fn next(&mut self) -> Result<Option<Row>> {
        let Some(r) = self.runs.next()? else {
            return Ok(None);
        };
        let id: i64 = r.get(0)?;
        let mut cells = Vec::with_capacity(FIXED.len() + CONTACT.len());
        cells.push(Cell::Int(id));
        cells.push(Cell::Text(r.get(1)?));
        cells.push(Cell::Int(r.get(2)?));
        cells.push(Cell::Text(iso(Timestamp(r.get(3)?))));
        cells.push(
            r.get::<_, Option<i64>>(4)?
                .map_or(Cell::Empty, |t| Cell::Text(iso(Timestamp(t)))),
        );
        cells.push(Cell::Text(r.get(5)?));
        cells.push(
            r.get::<_, Option<String>>(6)?
                .map_or(Cell::Empty, Cell::Text),
        );
        cells.push(
            r.get::<_, Option<i64>>(7)?
                .and_then(|a| self.agents.get(&a))
                .map_or(Cell::Empty, |l| Cell::Text(l.clone())),
        );
        if self.with_contact {
            for i in 8..11 {
                cells.push(
                    r.get::<_, Option<String>>(i)?
                        .map_or(Cell::Empty, Cell::Text),
                );
            }
        }
        let record: Option<String> = r.get(11)?;
        let mut fields = Vec::new();
        loop {
            let next = match self.pending.take() {
                Some(p) => Some(p),
                None => match self.fields.next()? {
                    Some(f) => Some((f.get(0)?, f.get(1)?, f.get(2)?)),
                    None => None,
                },
            };
            match next {
                Some((run, _, _)) if run < id => continue,
                Some((run, field, value)) if run == id => {
                    if !self.personal.contains(&field) {
                        fields.push((field, parse_value(&value)?));
                    }
                }
                Some(other) => {
                    self.pending = Some(other);
                    break;
                }
                None => break,
            }
        }
        Ok(Some(Row {
            cells,
            fields,
            record,
        }))
    }
}

/// A stored field value. Dispatches on the first byte: `Value` is an untagged enum, and
/// serde's trial of each variant (building an error for every miss) dominated exports.
fn parse_value(json: &str) -> Result<Value> {
    Ok(match json.as_bytes().first() {
        Some(b'"') => Value::Text(serde_json::from_str(json)?),
        Some(b'[') => Value::List(serde_json::from_str(json)?),
        Some(b't') if json == "true" => Value::Bool(true),
        Some(b'f') if json == "false" => Value::Bool(false),
        _ => Value::Number(serde_json::from_str(json)?),
    })
}

/// A field value as a cell's text (lists joined with `; `).
fn value_text(v: &Value) -> String {
    match v {
        Value::List(items) => items.join("; "),
        other => other.display(Lang::En),
    }
}

/// Where a format writes its rows.
trait Sink {
    fn header(&mut self, columns: &[String]) -> Result<()>;
    fn row(&mut self, row: &Row, field_columns: &[String]) -> Result<()>;
    fn finish(self: Box<Self>) -> Result<()>;
}

struct CsvSink {
    w: csv::Writer<BufWriter<std::fs::File>>,
}

fn itoa_buf() -> String {
    String::with_capacity(20)
}

impl Sink for CsvSink {
    fn header(&mut self, columns: &[String]) -> Result<()> {
        self.w.write_record(columns).map_err(csv_error)
    }

    fn row(&mut self, row: &Row, field_columns: &[String]) -> Result<()> {
        // Field by field into the writer: no line of owned strings per row.
        let mut num = itoa_buf();
        for c in &row.cells {
            let text: &str = match c {
                Cell::Empty => "",
                Cell::Int(n) => {
                    num.clear();
                    use std::fmt::Write as _;
                    let _ = write!(num, "{n}");
                    &num
                }
                Cell::Text(s) => s,
            };
            self.w.write_field(text).map_err(csv_error)?;
        }
        for col in field_columns {
            match row.fields.iter().find(|(f, _)| f == col) {
                Some((_, Value::Text(t))) => self.w.write_field(t),
                Some((_, v)) => self.w.write_field(value_text(v)),
                None => self.w.write_field(""),
            }
            .map_err(csv_error)?;
        }
        self.w
            .write_record(std::iter::empty::<&[u8]>())
            .map_err(csv_error)
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.w.flush().map_err(|e| csv_error(e.into()))?;
        let file = self
            .w
            .into_inner()
            .map_err(|e| csv_error(e.into_error().into()))?
            .into_inner()
            .map_err(|e| csv_error(e.into_error().into()))?;
        file.sync_all().map_err(|e| csv_error(e.into()))
    }
}

fn csv_error(e: csv::Error) -> StoreError {
    StoreError::Io {
        path: "export".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Excel's row limit per sheet.
const XLSX_ROWS: u32 = 1_048_576;

struct XlsxSink {
    book: rust_xlsxwriter::Workbook,
    path: PathBuf,
    header: Vec<String>,
    row: u32,
    sheets: u32,
    bold: rust_xlsxwriter::Format,
}

impl XlsxSink {
    fn new_sheet(&mut self) -> Result<()> {
        self.sheets += 1;
        let sheet = self.book.add_worksheet_with_constant_memory()?;
        sheet.set_name(format!("Runs {}", self.sheets))?;
        for (i, h) in self.header.iter().enumerate() {
            sheet.write_string_with_format(0, i as u16, h, &self.bold)?;
        }
        self.row = 1;
        Ok(())
    }
}

impl Sink for XlsxSink {
    fn header(&mut self, columns: &[String]) -> Result<()> {
        self.header = columns.to_vec();
        self.new_sheet()
    }

    fn row(&mut self, row: &Row, field_columns: &[String]) -> Result<()> {
        if self.row == XLSX_ROWS {
            self.new_sheet()?;
        }
        let r = self.row;
        let sheet = self
            .book
            .worksheets_mut()
            .last_mut()
            .ok_or_else(|| StoreError::Corrupt("no sheet".into()))?;
        let mut col: u16 = 0;
        for c in &row.cells {
            match c {
                Cell::Empty => {}
                Cell::Int(n) => {
                    sheet.write_number(r, col, *n as f64)?;
                }
                Cell::Text(s) => {
                    sheet.write_string(r, col, s)?;
                }
            }
            col += 1;
        }
        for name in field_columns {
            match row.fields.iter().find(|(f, _)| f == name).map(|(_, v)| v) {
                Some(Value::Number(n)) => {
                    sheet.write_number(r, col, *n)?;
                }
                Some(v) => {
                    sheet.write_string(r, col, value_text(v))?;
                }
                None => {}
            }
            col += 1;
        }
        self.row += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        let path = self.path.clone();
        self.book.save(&path)?;
        Ok(())
    }
}

struct JsonSink {
    w: BufWriter<std::fs::File>,
    path: PathBuf,
    first: bool,
    header: Vec<String>,
    without_personal: bool,
}

impl Sink for JsonSink {
    fn header(&mut self, columns: &[String]) -> Result<()> {
        self.header = columns.to_vec();
        self.w.write_all(b"[").map_err(io_error(&self.path))
    }

    fn row(&mut self, row: &Row, _field_columns: &[String]) -> Result<()> {
        let mut obj = serde_json::Map::new();
        for (name, cell) in self.header.iter().zip(&row.cells) {
            let v = match cell {
                Cell::Empty => serde_json::Value::Null,
                Cell::Int(n) => (*n).into(),
                Cell::Text(s) => s.clone().into(),
            };
            obj.insert(name.clone(), v);
        }
        let fields: serde_json::Map<String, serde_json::Value> = row
            .fields
            .iter()
            .map(|(k, v)| Ok((k.clone(), serde_json::to_value(v)?)))
            .collect::<Result<_>>()?;
        obj.insert("fields".into(), fields.into());
        let sep: &[u8] = if self.first { b"\n" } else { b",\n" };
        self.first = false;
        self.w.write_all(sep).map_err(io_error(&self.path))?;
        // The object without its closing brace, then the stored record as it is (it
        // holds no fields: those are above).
        let mut head = serde_json::to_vec(&obj)?;
        head.pop();
        self.w.write_all(&head).map_err(io_error(&self.path))?;
        self.w
            .write_all(b",\"record\":")
            .map_err(io_error(&self.path))?;
        match &row.record {
            None => self.w.write_all(b"null").map_err(io_error(&self.path))?,
            Some(r) if self.without_personal => {
                let mut rec: serde_json::Value = serde_json::from_str(r)?;
                if let Some(o) = rec.as_object_mut() {
                    o.remove("notes");
                    o.remove("unforeseen");
                }
                serde_json::to_writer(&mut self.w, &rec)?;
            }
            Some(r) => self
                .w
                .write_all(r.as_bytes())
                .map_err(io_error(&self.path))?,
        }
        self.w.write_all(b"}").map_err(io_error(&self.path))?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.w.write_all(b"\n]\n").map_err(io_error(&self.path))?;
        self.w.flush().map_err(io_error(&self.path))?;
        let file = self
            .w
            .into_inner()
            .map_err(|e| io_error(&self.path)(e.into_error()))?;
        file.sync_all().map_err(io_error(&self.path))
    }
}

/// The field columns for the scripts a filter covers, in the scripts' order.
fn field_columns(
    db: &Connection,
    f: &Filter,
) -> Result<(Vec<String>, std::collections::HashSet<String>)> {
    let mut stmt = db.prepare(
        "SELECT fields FROM scripts WHERE ?1 IS NULL OR script_id = ?1 ORDER BY script_id, version DESC",
    )?;
    let mut cols: Vec<String> = Vec::new();
    let mut personal = std::collections::HashSet::new();
    let rows = stmt.query_map([&f.script], |r| r.get::<_, String>(0))?;
    for json in rows {
        let fields: Vec<FieldInfo> = serde_json::from_str(&json?)?;
        for fi in fields {
            if f.without_personal_data && fi.personal {
                personal.insert(fi.id);
                continue;
            }
            if !cols.contains(&fi.id) {
                cols.push(fi.id);
            }
        }
    }
    // A field personal in one version and not in another is left out everywhere.
    cols.retain(|c| !personal.contains(c));
    Ok((cols, personal))
}

/// A temporary file beside `out`, renamed over it when the export is complete.
fn partial_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

impl Store {
    /// Export runs to `out` in `format`. `progress` is called every few thousand rows.
    /// Managers and administrators only; audited.
    pub fn export(
        &self,
        s: &Session,
        format: Format,
        filter: &Filter,
        out: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ExportSummary> {
        {
            let db = self.db();
            self.require(&db, s, Permission::Export, "export data")?;
            if let Some(agent) = &filter.agent {
                let known: Option<i64> = db
                    .query_row("SELECT id FROM users WHERE login = ?1", [agent], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if known.is_none() {
                    return Err(StoreError::Invalid(text!(
                        "There is no agent «{agent}»."; "Оператора «{agent}» нет.")));
                }
            }
        }
        let mut db = self.reader()?;
        db.execute_batch("PRAGMA cache_size = -8192")?;
        // One read transaction: the counts and both cursors see the same snapshot.
        let tx = db.transaction()?;
        let p = params(filter);
        // The counts and the id range the field cursor needs, from the indexes where the
        // filter allows: no join, and the blocked people through their partial index.
        let (all, first, last): (u64, Option<i64>, Option<i64>) = tx.query_row(
            &format!("SELECT count(*), min(r.id), max(r.id) FROM runs r WHERE {WHERE}"),
            rusqlite::params_from_iter(p.iter()),
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let blocked: u64 = tx.query_row(
            &format!(
                "SELECT count(*) FROM contacts c JOIN runs r ON r.contact_id = c.id
                 WHERE c.blocked_at IS NOT NULL AND {WHERE}"
            ),
            rusqlite::params_from_iter(p.iter()),
            |r| r.get(0),
        )?;
        let total = all - blocked.min(all);
        let agents: std::collections::HashMap<i64, String> = tx
            .prepare("SELECT id, login FROM users")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let (field_cols, personal) = field_columns(&tx, filter)?;
        let with_contact = !filter.without_personal_data;
        let record_col = if format == Format::Json {
            "(SELECT d.record FROM run_data d WHERE d.run_id = r.id)"
        } else {
            "NULL"
        };
        let mut run_stmt = tx.prepare(&format!(
            "SELECT r.id, r.script_id, r.script_version, r.started_at, r.ended_at, r.state, r.outcome, r.agent_id,
                    c.name, c.phone, c.email, {record_col}
             FROM runs r LEFT JOIN contacts c ON c.id = r.contact_id
             WHERE c.blocked_at IS NULL AND {WHERE} ORDER BY r.id"
        ))?;
        // Field values in key order over the exported runs' id range: a range scan, no
        // sort; rows of runs the filter leaves out are skipped by the merge.
        let mut field_stmt = tx.prepare(
            "SELECT run_id, field, value FROM field_values WHERE run_id BETWEEN ?1 AND ?2 ORDER BY run_id, field",
        )?;
        let mut reader = Reader {
            runs: run_stmt.query(rusqlite::params_from_iter(p.iter()))?,
            fields: field_stmt.query([first.unwrap_or(0), last.unwrap_or(-1)])?,
            pending: None,
            personal,
            with_contact,
            agents,
        };
        let mut columns: Vec<String> = FIXED.iter().map(|s| (*s).to_owned()).collect();
        if with_contact {
            columns.extend(CONTACT.iter().map(|s| (*s).to_owned()));
        }
        let partial = partial_path(out);
        let create = || std::fs::File::create(&partial).map_err(io_error(&partial));
        let mut sink: Box<dyn Sink> = match format {
            Format::Csv => Box::new(CsvSink {
                w: csv::Writer::from_writer(BufWriter::with_capacity(1 << 16, create()?)),
            }),
            Format::Json => Box::new(JsonSink {
                w: BufWriter::with_capacity(1 << 16, create()?),
                path: partial.clone(),
                first: true,
                header: Vec::new(),
                without_personal: filter.without_personal_data,
            }),
            Format::Xlsx => {
                let mut book = rust_xlsxwriter::Workbook::new();
                // The writer's temporary files hold the rows in plain text: keep them
                // beside the export (which is plain text anyway), not in a shared /tmp.
                if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                    book.set_tempdir(dir)?;
                }
                Box::new(XlsxSink {
                    book,
                    path: partial.clone(),
                    header: Vec::new(),
                    row: 0,
                    sheets: 0,
                    bold: rust_xlsxwriter::Format::new().set_bold(),
                })
            }
        };
        let mut all_columns = columns.clone();
        all_columns.extend(field_cols.iter().cloned());
        let result = (|| -> Result<u64> {
            sink.header(&all_columns)?;
            let mut done = 0u64;
            progress(Progress { done, total });
            while let Some(row) = reader.next()? {
                sink.row(&row, &field_cols)?;
                done += 1;
                if done % 4096 == 0 {
                    progress(Progress { done, total });
                }
            }
            progress(Progress { done, total });
            Ok(done)
        })();
        let rows = match result.and_then(|rows| sink.finish().map(|()| rows)) {
            Ok(rows) => rows,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        drop(reader);
        drop(run_stmt);
        drop(field_stmt);
        tx.finish()?;
        std::fs::rename(&partial, out).map_err(io_error(out))?;
        let now = self.now();
        audit::write(
            &self.db(),
            now,
            Some(s.user()),
            Audit::Exported {
                format: format.as_str().into(),
                rows,
                filter: serde_json::to_value(filter)?,
            },
        )?;
        log::info!("store: exported {rows} run(s) as {}", format.as_str());
        Ok(ExportSummary {
            path: out.to_path_buf(),
            rows,
            columns: all_columns.len(),
            blocked_left_out: blocked,
        })
    }
}

/// Explain a bad date in a filter.
pub fn bad_date(input: &str) -> StoreError {
    StoreError::Invalid(text!(
        "«{input}» is not a date: write 2026-03-31 or 2026-03-31T14:30.";
        "«{input}» — не дата: пишите 2026-03-31 или 2026-03-31T14:30."))
}
