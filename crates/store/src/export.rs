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

use callhelper_script::{Timestamp, text};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::access::Permission;
use crate::audit::{self, Audit};
use crate::error::{Result, StoreError, io_error};
use crate::runs::FieldInfo;
use crate::time::iso_into;
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
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
pub(crate) const WHERE: &str =
    "(?1 IS NULL OR r.started_at >= ?1) AND (?2 IS NULL OR r.started_at < ?2)
    AND (?3 IS NULL OR r.script_id = ?3) AND (?4 IS NULL OR r.outcome = ?4)
    AND (?5 IS NULL OR r.agent_id = (SELECT id FROM users WHERE login = ?5))";

pub(crate) fn params(f: &Filter) -> [Sql; 5] {
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

/// One run as read from the cursors. All its text lives end to end in `text`; cells and
/// fields point into it. Rows are recycled between the two halves of an export, so a
/// steady export allocates nothing per row.
#[derive(Default)]
struct Row {
    text: String,
    cells: Vec<Cell>,
    fields: Vec<FieldCell>,
    /// The stored record (JSON exports).
    record: Option<Span>,
}

/// A byte range of [`Row::text`].
#[derive(Clone, Copy)]
struct Span(u32, u32);

impl Row {
    fn clear(&mut self) {
        self.text.clear();
        self.cells.clear();
        self.fields.clear();
        self.record = None;
    }

    /// Append `s` to the row's text.
    fn put(&mut self, s: &str) -> Span {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        Span(start, self.text.len() as u32)
    }

    fn get(&self, span: Span) -> &str {
        self.text
            .get(span.0 as usize..span.1 as usize)
            .unwrap_or("")
    }

    /// The value of field column `col`, if the run has one.
    fn field(&self, col: u32) -> Option<&FieldCell> {
        self.fields.iter().find(|f| f.col == col)
    }
}

#[derive(Clone, Copy)]
enum Cell {
    Empty,
    Int(i64),
    /// A time, formatted by the writing half (ISO 8601, UTC).
    Time(i64),
    Text(Span),
}

impl Cell {
    /// The cell as text: from the row, or formatted into `scratch`.
    fn text<'a>(self, row: &'a Row, scratch: &'a mut String) -> Option<&'a str> {
        use std::fmt::Write as _;
        match self {
            Cell::Empty => None,
            Cell::Int(n) => {
                scratch.clear();
                let _ = write!(scratch, "{n}");
                Some(scratch)
            }
            Cell::Time(t) => {
                scratch.clear();
                iso_into(Timestamp(t), scratch);
                Some(scratch)
            }
            Cell::Text(span) => Some(row.get(span)),
        }
    }
}

/// One stored field value of a run.
struct FieldCell {
    /// The index of its column, or `u32::MAX` when it has none.
    col: u32,
    name: Span,
    /// The stored JSON, as it is (read by [`shown_value`] for CSV and XLSX).
    raw: Span,
}

/// Both cursors of an export, merged by run id.
struct Reader<'c> {
    runs: rusqlite::Rows<'c>,
    fields: rusqlite::Rows<'c>,
    /// A field row read ahead of its run: (run id, field, value) in `ahead`'s text.
    pending: Option<i64>,
    ahead_field: String,
    ahead_value: String,
    personal: std::collections::HashSet<String>,
    columns: std::collections::HashMap<String, u32>,
    with_contact: bool,
    agents: std::collections::HashMap<i64, String>,
}

/// A text column (or NULL) without copying it out of SQLite.
fn text_ref<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<Option<&'r str>> {
    Ok(r.get_ref(i)?
        .as_str_or_null()
        .map_err(rusqlite::Error::from)?)
}

impl Reader<'_> {
    /// Read the next run into `row`; false at the end.
    fn next_into(&mut self, row: &mut Row) -> Result<bool> {
        row.clear();
        let Some(r) = self.runs.next()? else {
            return Ok(false);
        };
        let id: i64 = r.get(0)?;
        row.cells.push(Cell::Int(id));
        let script = row.put(text_ref(r, 1)?.unwrap_or(""));
        row.cells.push(Cell::Text(script));
        row.cells.push(Cell::Int(r.get(2)?));
        // Formatting (times here, field values below) is left to the writing half: the
        // reading half, with SQLite and the decryption, is the busier one.
        row.cells.push(Cell::Time(r.get(3)?));
        let ended = r.get::<_, Option<i64>>(4)?;
        row.cells.push(ended.map_or(Cell::Empty, Cell::Time));
        for i in [5, 6] {
            let cell = text_ref(r, i)?.map_or(Cell::Empty, |t| Cell::Text(row.put(t)));
            row.cells.push(cell);
        }
        let agent = r
            .get::<_, Option<i64>>(7)?
            .and_then(|a| self.agents.get(&a))
            .map_or(Cell::Empty, |l| Cell::Text(row.put(l)));
        row.cells.push(agent);
        if self.with_contact {
            for i in 8..11 {
                let cell = text_ref(r, i)?.map_or(Cell::Empty, |t| Cell::Text(row.put(t)));
                row.cells.push(cell);
            }
        }
        row.record = text_ref(r, 11)?.map(|t| row.put(t));
        loop {
            let run = match self.pending.take() {
                Some(run) => run,
                None => match self.fields.next()? {
                    Some(f) => {
                        self.ahead_field.clear();
                        self.ahead_field.push_str(text_ref(f, 1)?.unwrap_or(""));
                        self.ahead_value.clear();
                        self.ahead_value.push_str(text_ref(f, 2)?.unwrap_or(""));
                        f.get(0)?
                    }
                    None => break,
                },
            };
            if run < id {
                continue;
            }
            if run > id {
                self.pending = Some(run);
                break;
            }
            if self.personal.contains(self.ahead_field.as_str()) {
                continue;
            }
            let col = self
                .columns
                .get(self.ahead_field.as_str())
                .copied()
                .unwrap_or(u32::MAX);
            let name = row.put(&self.ahead_field);
            let raw = row.put(&self.ahead_value);
            row.fields.push(FieldCell { col, name, raw });
        }
        Ok(true)
    }
}

/// Append a stored field value (JSON) as people read it to `out`; returns the number when
/// it is one. Dispatches on the first byte: `Value` is an untagged enum, and serde's trial
/// of each variant (building an error for every miss) dominated exports.
fn shown_value(json: &str, out: &mut String) -> Result<Option<f64>> {
    use std::fmt::Write as _;
    match json.as_bytes().first() {
        Some(b'"') => match serde_json::from_str::<&str>(json) {
            Ok(t) => out.push_str(t),
            // Escapes inside: the string needs unescaping into its own buffer.
            Err(_) => out.push_str(&serde_json::from_str::<String>(json)?),
        },
        Some(b'[') => {
            let items: Vec<String> = serde_json::from_str(json)?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str("; ");
                }
                out.push_str(item);
            }
        }
        Some(b't') if json == "true" => out.push_str("yes"),
        Some(b'f') if json == "false" => out.push_str("no"),
        _ => {
            let n: f64 = serde_json::from_str(json)?;
            // As `callhelper_script::format_number`: `3`, `2.5`, never `3.0`.
            if n.fract() == 0.0 && n.abs() < 1e15 {
                let _ = write!(out, "{}", n as i64);
            } else {
                let _ = write!(out, "{n}");
            }
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// Where a format writes its rows.
trait Sink {
    fn header(&mut self, columns: &[String]) -> Result<()>;
    fn row(&mut self, row: &Row, field_columns: usize) -> Result<()>;
    fn finish(self: Box<Self>) -> Result<()>;
}

struct CsvSink {
    w: csv::Writer<BufWriter<std::fs::File>>,
    num: String,
}

impl Sink for CsvSink {
    fn header(&mut self, columns: &[String]) -> Result<()> {
        self.w.write_record(columns).map_err(csv_error)
    }

    fn row(&mut self, row: &Row, field_columns: usize) -> Result<()> {
        // Field by field into the writer: no line of owned strings per row.
        for c in &row.cells {
            let text = c.text(row, &mut self.num).unwrap_or("");
            self.w.write_field(text).map_err(csv_error)?;
        }
        for col in 0..field_columns as u32 {
            self.num.clear();
            if let Some(f) = row.field(col) {
                shown_value(row.get(f.raw), &mut self.num)?;
            }
            self.w.write_field(&self.num).map_err(csv_error)?;
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

pub(crate) fn csv_error(e: csv::Error) -> StoreError {
    StoreError::Io {
        path: "export".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Excel's row limit per sheet.
const XLSX_ROWS: u32 = 1_048_576;

struct XlsxSink {
    book: rust_xlsxwriter::Workbook,
    scratch: String,
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

    fn row(&mut self, row: &Row, field_columns: usize) -> Result<()> {
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
            match *c {
                Cell::Int(n) => {
                    sheet.write_number(r, col, n as f64)?;
                }
                other => {
                    if let Some(text) = other.text(row, &mut self.scratch) {
                        sheet.write_string(r, col, text)?;
                    }
                }
            }
            col += 1;
        }
        for c in 0..field_columns as u32 {
            if let Some(f) = row.field(c) {
                self.scratch.clear();
                // Numbers stay numbers.
                match shown_value(row.get(f.raw), &mut self.scratch)? {
                    Some(n) => sheet.write_number(r, col, n)?,
                    None => sheet.write_string(r, col, &self.scratch)?,
                };
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
    num: String,
}

impl JsonSink {
    fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.w.write_all(bytes).map_err(io_error(&self.path))
    }

    /// A JSON string, escaped as JSON needs.
    fn string(&mut self, s: &str) -> Result<()> {
        serde_json::to_writer(&mut self.w, s).map_err(|e| io_error(&self.path)(e.into()))
    }
}

impl Sink for JsonSink {
    fn header(&mut self, columns: &[String]) -> Result<()> {
        self.header = columns.to_vec();
        self.raw(b"[")
    }

    /// `{"run": …, <columns>, "fields": {<stored values>}, "record": <stored record>}`,
    /// written straight from the row: the stored JSON goes out as it is.
    fn row(&mut self, row: &Row, _field_columns: usize) -> Result<()> {
        let sep: &[u8] = if self.first { b"\n{" } else { b",\n{" };
        self.first = false;
        self.raw(sep)?;
        let header = std::mem::take(&mut self.header);
        let written = (|| -> Result<()> {
            for (i, (name, cell)) in header.iter().zip(&row.cells).enumerate() {
                if i > 0 {
                    self.raw(b",")?;
                }
                self.string(name)?;
                self.raw(b":")?;
                let mut num = std::mem::take(&mut self.num);
                let text = cell.text(row, &mut num);
                let written = match (*cell, text) {
                    (_, None) => self.raw(b"null"),
                    (Cell::Int(_), Some(n)) => self.raw(n.as_bytes()),
                    (_, Some(t)) => self.string(t),
                };
                self.num = num;
                written?;
            }
            Ok(())
        })();
        self.header = header;
        written?;
        self.raw(b",\"fields\":{")?;
        for (i, f) in row.fields.iter().enumerate() {
            if i > 0 {
                self.raw(b",")?;
            }
            self.string(row.get(f.name))?;
            self.raw(b":")?;
            self.raw(row.get(f.raw).as_bytes())?;
        }
        // The stored record holds no fields: those are above.
        self.raw(b"},\"record\":")?;
        match row.record {
            None => self.raw(b"null")?,
            Some(span) if self.without_personal => {
                let mut rec: serde_json::Value = serde_json::from_str(row.get(span))?;
                if let Some(o) = rec.as_object_mut() {
                    o.remove("notes");
                    o.remove("unforeseen");
                }
                serde_json::to_writer(&mut self.w, &rec)?;
            }
            Some(span) => self.raw(row.get(span).as_bytes())?,
        }
        self.raw(b"}")
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.raw(b"\n]\n")?;
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
        // Reading (SQLite, decryption) and writing (formatting) run on two threads,
        // joined by a small bounded queue; emptied batches of rows go back to be
        // refilled. Memory stays bounded by the queue.
        let db = self.reader()?;
        let (send, recv) = std::sync::mpsc::sync_channel::<Result<Msg>>(QUEUE);
        let (give_back, take_back) = std::sync::mpsc::sync_channel::<Vec<Row>>(QUEUE + 2);
        let job = Job {
            session: s,
            format,
            filter,
            out,
        };
        std::thread::scope(|scope| {
            // `move`: the reading thread owns the only sender, so the writing half sees
            // the end of the rows when that thread ends (or dies).
            scope.spawn(move || {
                if let Err(e) = produce(db, format, filter, &send, &take_back) {
                    let _ = send.send(Err(e));
                }
            });
            self.consume(&job, progress, recv, give_back)
        })
    }

    /// The writing half of [`Store::export`].
    fn consume(
        &self,
        job: &Job<'_>,
        progress: &mut dyn FnMut(Progress),
        recv: std::sync::mpsc::Receiver<Result<Msg>>,
        give_back: std::sync::mpsc::SyncSender<Vec<Row>>,
    ) -> Result<ExportSummary> {
        let Job {
            session: s,
            format,
            filter,
            out,
        } = *job;
        let closed = || StoreError::Corrupt("the export's reader stopped".into());
        let Msg::Start {
            total,
            blocked,
            field_cols,
        } = recv.recv().map_err(|_| closed())??
        else {
            return Err(closed());
        };
        let with_contact = !filter.without_personal_data;
        let mut columns: Vec<String> = FIXED.iter().map(|s| (*s).to_owned()).collect();
        if with_contact {
            columns.extend(CONTACT.iter().map(|s| (*s).to_owned()));
        }
        let partial = partial_path(out);
        let create = || std::fs::File::create(&partial).map_err(io_error(&partial));
        let mut sink: Box<dyn Sink> = match format {
            Format::Csv => Box::new(CsvSink {
                w: csv::Writer::from_writer(BufWriter::with_capacity(1 << 16, create()?)),
                num: String::new(),
            }),
            Format::Json => Box::new(JsonSink {
                w: BufWriter::with_capacity(1 << 16, create()?),
                path: partial.clone(),
                first: true,
                header: Vec::new(),
                without_personal: filter.without_personal_data,
                num: String::new(),
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
                    scratch: String::new(),
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
            for msg in recv.iter() {
                let Msg::Rows(rows) = msg? else {
                    return Err(closed());
                };
                for row in &rows {
                    sink.row(row, field_cols.len())?;
                    done += 1;
                    if done % 4096 == 0 {
                        progress(Progress { done, total });
                    }
                }
                // The reader refills it; when it has enough, this one is dropped.
                let _ = give_back.try_send(rows);
            }
            progress(Progress { done, total });
            Ok(done)
        })();
        // Hang up first, so a reader still sending stops.
        drop(recv);
        let rows = match result.and_then(|rows| sink.finish().map(|()| rows)) {
            Ok(rows) => rows,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
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

/// One export, as asked for.
#[derive(Clone, Copy)]
struct Job<'a> {
    session: &'a Session,
    format: Format,
    filter: &'a Filter,
    out: &'a Path,
}

/// What the reading thread of an export sends.
enum Msg {
    /// First: the counts and the field columns.
    Start {
        total: u64,
        blocked: u64,
        field_cols: Vec<String>,
    },
    /// Then rows, a few hundred at a time.
    Rows(Vec<Row>),
}

/// Rows per message from the reading thread.
const ROWS_PER_MSG: usize = 256;

/// Messages of rows in flight between the two threads.
const QUEUE: usize = 4;

/// The reading half of [`Store::export`]: one read transaction (one snapshot) on its own
/// connection. Stops when the writing half hangs up.
fn produce(
    mut db: Connection,
    format: Format,
    filter: &Filter,
    send: &std::sync::mpsc::SyncSender<Result<Msg>>,
    take_back: &std::sync::mpsc::Receiver<Vec<Row>>,
) -> Result<()> {
    // A bigger page cache than the app's connection: the contacts of the runs are read
    // in no particular order, and every page read again is decrypted again.
    db.execute_batch("PRAGMA cache_size = -24576")?;
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
    let agents: std::collections::HashMap<i64, String> = tx
        .prepare("SELECT id, login FROM users")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let (field_cols, personal) = field_columns(&tx, filter)?;
    let columns = field_cols
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), i as u32))
        .collect();
    let start = Msg::Start {
        total: all - blocked.min(all),
        blocked,
        field_cols,
    };
    if send.send(Ok(start)).is_err() {
        return Ok(()); // the writing half hung up
    }
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
        ahead_field: String::new(),
        ahead_value: String::new(),
        personal,
        columns,
        with_contact: !filter.without_personal_data,
        agents,
    };
    loop {
        // A batch the writing half has emptied, or a new one.
        let mut rows = take_back
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(ROWS_PER_MSG));
        let mut n = 0;
        let mut more = true;
        while n < ROWS_PER_MSG {
            if n == rows.len() {
                rows.push(Row::default());
            }
            if !reader.next_into(&mut rows[n])? {
                more = false;
                break;
            }
            n += 1;
        }
        rows.truncate(n);
        if !rows.is_empty() && send.send(Ok(Msg::Rows(rows))).is_err() {
            return Ok(()); // the writing half hung up
        }
        if !more {
            return Ok(());
        }
    }
}

/// Explain a bad date in a filter.
pub fn bad_date(input: &str) -> StoreError {
    StoreError::Invalid(text!(
        "«{input}» is not a date: write 2026-03-31 or 2026-03-31T14:30.";
        "«{input}» — не дата: пишите 2026-03-31 или 2026-03-31T14:30."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_as_people_read_them() {
        let shown = |json: &str| {
            let mut out = String::from("before|");
            let n = shown_value(json, &mut out).map_err(|e| e.code());
            (out, n)
        };
        assert_eq!(shown("\"plain\""), ("before|plain".into(), Ok(None)));
        assert_eq!(
            shown(r#""say \"yes\"\nthen""#),
            ("before|say \"yes\"\nthen".into(), Ok(None))
        );
        assert_eq!(shown(r#"["a","b"]"#), ("before|a; b".into(), Ok(None)));
        assert_eq!(shown("true"), ("before|yes".into(), Ok(None)));
        assert_eq!(shown("false"), ("before|no".into(), Ok(None)));
        assert_eq!(shown("150.0"), ("before|150".into(), Ok(Some(150.0))));
        assert_eq!(shown("1000.5"), ("before|1000.5".into(), Ok(Some(1000.5))));
        assert_eq!(shown("nonsense").1, Err("store.corrupt"));
    }
}
