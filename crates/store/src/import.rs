//! Contact import from CSV or JSON.
//!
//! CSV: a header row names the columns; `name`, `phone` and `email` must be among them
//! (Russian headers `имя`/`фио`, `телефон`, `почта` are understood too); any other column
//! becomes a contact field of that name. Commas or semicolons (Excel's choice in Russian
//! locales) separate values. JSON: an array of objects, or one object per line.
//!
//! Each bad row is reported with its line number and why, never with its values (the
//! report may be logged or shown to a support user). The good rows go in one transaction.
//! Contacts are matched by their E.164 phone, so importing the same file again adds
//! nothing. Importing is processing the data of third parties, which the user confirms
//! they have consent for (§4.12).

use std::collections::BTreeMap;
use std::path::Path;

use callhelper_script::{Text, text};
use serde::Serialize;

use crate::access::Permission;
use crate::audit::{self, Audit};
use crate::contacts::{self, NewContact, valid_email};
use crate::error::{Result, StoreError, io_error};
use crate::pii::Pii;
use crate::{Session, Store};

/// The largest JSON file read (CSV is streamed and has no limit).
pub const MAX_JSON_BYTES: u64 = 256 * 1024 * 1024;

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRow {
    /// The line in the file (1-based) where the row begins.
    pub line: u64,
    /// Why.
    pub message: Text,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// New contacts.
    pub added: u64,
    /// Existing contacts that got new values.
    pub updated: u64,
    /// Rows that matched an existing contact exactly.
    pub unchanged: u64,
    /// Lines of rows about blocked people, which were left alone.
    pub blocked: Vec<u64>,
    /// Rows that were not imported, and why.
    pub bad: Vec<BadRow>,
}

/// One row before checking: (line, column → value).
type RawRow = (u64, BTreeMap<String, String>);

fn canonical(header: &str) -> String {
    let h = header.trim().trim_start_matches('\u{feff}').to_lowercase();
    match h.as_str() {
        "имя" | "фио" | "full name" | "full_name" => "name".into(),
        "телефон" | "tel" | "phone number" | "phone_number" => "phone".into(),
        "почта" | "e-mail" | "электронная почта" | "mail" => "email".into(),
        _ => h,
    }
}

fn missing_columns(found: &[String]) -> Option<StoreError> {
    let missing: Vec<&str> = ["name", "phone", "email"]
        .into_iter()
        .filter(|c| !found.iter().any(|f| f == c))
        .collect();
    (!missing.is_empty()).then(|| {
        let m = missing.join(", ");
        StoreError::Invalid(text!(
            "The header row must name the columns name, phone and email; missing: {m}.";
            "В строке заголовка должны быть столбцы name, phone и email; нет: {m}."))
    })
}

fn read_csv(path: &Path, bad: &mut Vec<BadRow>) -> Result<Vec<RawRow>> {
    let bytes_head = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(io_error(path))?;
        let mut buf = vec![0u8; 4096];
        let n = f.read(&mut buf).map_err(io_error(path))?;
        buf.truncate(n);
        buf
    };
    let first_line = bytes_head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let delimiter = if !first_line.contains(&b',') && first_line.contains(&b';') {
        b';'
    } else {
        b','
    };
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_path(path)
        .map_err(|e| StoreError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let headers: Vec<String> = r
        .byte_headers()
        .map_err(|e| StoreError::Invalid(text!("The header row cannot be read: {e}."; "Не удалось прочитать строку заголовка: {e}.")))?
        .iter()
        .map(|h| canonical(&String::from_utf8_lossy(h)))
        .collect();
    if let Some(e) = missing_columns(&headers) {
        return Err(e);
    }
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let line_before = r.position().line();
        match r.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line_before, |p| p.line());
                bad.push(BadRow {
                    line,
                    message: Text::new(
                        "the row cannot be read as CSV",
                        "строку не удалось прочитать как CSV",
                    ),
                });
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        let line = record.position().map_or(line_before, |p| p.line());
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue; // blank line
        }
        if record.len() != headers.len() {
            let (n, m) = (record.len(), headers.len());
            bad.push(BadRow {
                line,
                message: text!("the row has {n} values, the header names {m} columns";
                               "в строке {n} значений, а в заголовке {m} столбцов"),
            });
            continue;
        }
        let mut map = BTreeMap::new();
        let mut utf8 = true;
        for (h, v) in headers.iter().zip(record.iter()) {
            match std::str::from_utf8(v) {
                Ok(s) => {
                    map.insert(h.clone(), s.trim().to_owned());
                }
                Err(_) => utf8 = false,
            }
        }
        if !utf8 {
            bad.push(BadRow {
                line,
                message: Text::new(
                    "the row is not UTF-8 text (save the file as UTF-8)",
                    "строка не в кодировке UTF-8 (сохраните файл в UTF-8)",
                ),
            });
            continue;
        }
        rows.push((line, map));
    }
    Ok(rows)
}

fn json_object(line: u64, v: serde_json::Value, bad: &mut Vec<BadRow>) -> Option<RawRow> {
    let serde_json::Value::Object(o) = v else {
        bad.push(BadRow {
            line,
            message: Text::new(
                "the entry is not an object with name, phone and email",
                "запись не объект с name, phone и email",
            ),
        });
        return None;
    };
    let map = o
        .into_iter()
        .filter_map(|(k, v)| {
            let v = match v {
                serde_json::Value::Null => return None,
                serde_json::Value::String(s) => s.trim().to_owned(),
                other => other.to_string(),
            };
            Some((canonical(&k), v))
        })
        .collect();
    Some((line, map))
}

fn read_json(path: &Path, bad: &mut Vec<BadRow>) -> Result<Vec<RawRow>> {
    let len = std::fs::metadata(path).map_err(io_error(path))?.len();
    if len > MAX_JSON_BYTES {
        let mb = MAX_JSON_BYTES >> 20;
        return Err(StoreError::Invalid(text!(
            "The JSON file is larger than {mb} MB; split it, or use CSV (read as a stream).";
            "Файл JSON больше {mb} МБ; разделите его или используйте CSV (читается потоком).")));
    }
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    let text = text.trim_start_matches('\u{feff}');
    let line_of = |offset: usize| text[..offset].bytes().filter(|b| *b == b'\n').count() as u64 + 1;
    let mut rows = Vec::new();
    if text.trim_start().starts_with('[') {
        let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(text).map_err(|e| {
            let (l, c) = (e.line(), e.column());
            StoreError::Invalid(text!(
                "The file is not a JSON array of contacts (line {l}, column {c}).";
                "Файл не является массивом контактов JSON (строка {l}, столбец {c})."))
        })?;
        for raw in items {
            let offset = raw.get().as_ptr() as usize - text.as_ptr() as usize;
            let line = line_of(offset);
            match serde_json::from_str(raw.get()) {
                Ok(v) => rows.extend(json_object(line, v, bad)),
                Err(_) => bad.push(BadRow {
                    line,
                    message: Text::new(
                        "the entry is not valid JSON",
                        "запись не является правильным JSON",
                    ),
                }),
            }
        }
    } else {
        // One object per line.
        for (i, l) in text.lines().enumerate() {
            let line = i as u64 + 1;
            if l.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(l) {
                Ok(v) => rows.extend(json_object(line, v, bad)),
                Err(_) => bad.push(BadRow {
                    line,
                    message: Text::new(
                        "the line is not valid JSON",
                        "строка не является правильным JSON",
                    ),
                }),
            }
        }
    }
    Ok(rows)
}

impl Store {
    /// Import contacts from a CSV or JSON file. See the module docs. Managers and
    /// administrators only; audited with the counts.
    pub fn import_contacts(&self, s: &Session, path: &Path) -> Result<ImportReport> {
        {
            let db = self.db();
            self.require(&db, s, Permission::Import, "import contacts")?;
        }
        let mut report = ImportReport::default();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let is_json = match ext.as_str() {
            "json" | "jsonl" | "ndjson" => true,
            "csv" | "txt" => false,
            _ => {
                use std::io::Read;
                let mut buf = [0u8; 64];
                let n = std::fs::File::open(path)
                    .and_then(|mut f| f.read(&mut buf))
                    .map_err(io_error(path))?;
                buf[..n]
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_some_and(|b| *b == b'[' || *b == b'{')
            }
        };
        let rows = if is_json {
            read_json(path, &mut report.bad)?
        } else {
            read_csv(path, &mut report.bad)?
        };
        let country = self.default_country()?;
        let now = self.now();
        let mut db = self.db();
        let tx = db.transaction()?;
        for (line, mut map) in rows {
            let raw_phone = map.remove("phone").unwrap_or_default();
            let name = map.remove("name").unwrap_or_default();
            let email = map.remove("email").unwrap_or_default();
            let fail = |message: Text| BadRow { line, message };
            if raw_phone.is_empty() {
                report.bad.push(fail(Text::new(
                    "the phone is missing",
                    "нет номера телефона",
                )));
                continue;
            }
            let Some(phone) = crate::phone::normalise(&raw_phone, country) else {
                report.bad.push(fail(Text::new(
                    "the phone is not a valid number (10 to 15 digits, with the country code or in the default country's format)",
                    "номер телефона неправильный (от 10 до 15 цифр, с кодом страны или в формате страны по умолчанию)",
                )));
                continue;
            };
            if !valid_email(&email) {
                report.bad.push(fail(Text::new(
                    "the e-mail address is not valid",
                    "адрес электронной почты неправильный",
                )));
                continue;
            }
            if name.chars().count() > 300 || map.values().any(|v| v.chars().count() > 2000) {
                report.bad.push(fail(Text::new(
                    "a value is too long",
                    "значение слишком длинное",
                )));
                continue;
            }
            if contacts::by_phone(&tx, &phone)?.is_some_and(|c| c.blocked_at.is_some()) {
                report.blocked.push(line);
                continue;
            }
            map.retain(|_, v| !v.is_empty());
            let c = NewContact {
                phone: Pii::new(raw_phone),
                name: Pii::new(name),
                email: Pii::new(email),
                extra: Pii::new(map),
            };
            match contacts::upsert(&tx, now, &phone, &c)?.1 {
                None => report.added += 1,
                Some(true) => report.updated += 1,
                Some(false) => report.unchanged += 1,
            }
        }
        report.bad.sort_by_key(|b| b.line);
        audit::write(
            &tx,
            now,
            Some(s.user()),
            Audit::Imported {
                added: report.added,
                updated: report.updated,
                bad: report.bad.len() as u64,
            },
        )?;
        tx.commit()?;
        log::info!(
            "store: import added {}, updated {}, {} bad row(s)",
            report.added,
            report.updated,
            report.bad.len()
        );
        Ok(report)
    }
}
