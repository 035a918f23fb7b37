//! A file-backed outbox: an append-only journal of JSON lines, replayed on open.
//!
//! For development and tests only — it keeps the jobs (personal data) in plain text. Each
//! change is one line written with one `write` call, so a process killed at any moment
//! leaves at worst a partial last line, which is dropped on the next open.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use callhelper_script::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, FailureNote};
use crate::job::{ItemId, Progress, Receipt, SyncJob};
use crate::outbox::{ItemState, ItemView, Outbox, QueuedItem, Summary};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Line {
    Enqueue {
        id: u64,
        at: Timestamp,
        job: Box<SyncJob>,
    },
    Progress {
        id: u64,
        progress: Progress,
    },
    Sent {
        id: u64,
        at: Timestamp,
        receipt: Receipt,
    },
    Failed {
        id: u64,
        at: Timestamp,
        failure: FailureNote,
        next: Timestamp,
    },
    Retry {
        id: u64,
        at: Timestamp,
    },
    Block {
        person: String,
    },
    Unblock {
        person: String,
    },
    RemovePerson {
        person: String,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    job: SyncJob,
    queued_at: Timestamp,
    progress: Progress,
    failures: u32,
    next_at: Timestamp,
    sent_at: Option<Timestamp>,
    last_error: Option<FailureNote>,
}

/// A journal outbox.
#[derive(Debug)]
pub struct JournalOutbox {
    path: PathBuf,
    file: File,
    items: BTreeMap<u64, Entry>,
    blocked: BTreeSet<String>,
    next_id: u64,
}

fn err(e: impl std::fmt::Display) -> CrmError {
    CrmError::Outbox {
        detail: e.to_string(),
    }
}

impl JournalOutbox {
    /// Open (or create) the journal at `path`, replaying it.
    pub fn open(path: impl AsRef<Path>) -> Result<JournalOutbox, CrmError> {
        let path = path.as_ref().to_path_buf();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(err)?;
        let mut ob = JournalOutbox {
            path,
            file: file.try_clone().map_err(err)?,
            items: BTreeMap::new(),
            blocked: BTreeSet::new(),
            next_id: 1,
        };
        file.seek(SeekFrom::Start(0)).map_err(err)?;
        let mut good_len = 0u64;
        let mut reader = BufReader::new(&mut file);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(err)?;
            if n == 0 || buf.last() != Some(&b'\n') {
                break;
            }
            let line: Line = serde_json::from_slice(&buf)
                .map_err(|e| err(format!("line after byte {good_len}: {e}")))?;
            ob.apply(line);
            good_len += n as u64;
        }
        drop(reader);
        // Drop a partial last line left by a kill.
        if file.metadata().map_err(err)?.len() != good_len {
            file.set_len(good_len).map_err(err)?;
        }
        Ok(ob)
    }

    /// Where the journal is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn apply(&mut self, line: Line) {
        match line {
            Line::Enqueue { id, at, job } => {
                self.next_id = self.next_id.max(id + 1);
                self.items.insert(
                    id,
                    Entry {
                        job: *job,
                        queued_at: at,
                        progress: Progress::default(),
                        failures: 0,
                        next_at: at,
                        sent_at: None,
                        last_error: None,
                    },
                );
            }
            Line::Progress { id, progress } => {
                if let Some(e) = self.items.get_mut(&id) {
                    e.progress = progress;
                }
            }
            Line::Sent { id, at, .. } => {
                if let Some(e) = self.items.get_mut(&id) {
                    e.sent_at = Some(at);
                }
            }
            Line::Failed {
                id, failure, next, ..
            } => {
                if let Some(e) = self.items.get_mut(&id) {
                    e.failures += 1;
                    e.next_at = next;
                    e.last_error = Some(failure);
                }
            }
            Line::Retry { id, at } => {
                if let Some(e) = self.items.get_mut(&id) {
                    if e.sent_at.is_none() {
                        e.next_at = at;
                    }
                }
            }
            Line::Block { person } => {
                self.blocked.insert(person);
            }
            Line::Unblock { person } => {
                self.blocked.remove(&person);
            }
            Line::RemovePerson { person } => {
                self.items
                    .retain(|_, e| e.job.person_id != person || e.sent_at.is_some());
                self.blocked.remove(&person);
            }
        }
    }

    fn write(&mut self, line: Line) -> Result<(), CrmError> {
        let mut bytes = serde_json::to_vec(&line).map_err(err)?;
        bytes.push(b'\n');
        self.file.write_all(&bytes).map_err(err)?;
        self.apply(line);
        Ok(())
    }

    /// Queue a job (the store does this in the transaction that saves the run).
    pub fn enqueue(&mut self, job: SyncJob, at: Timestamp) -> Result<ItemId, CrmError> {
        let id = self.next_id;
        self.write(Line::Enqueue {
            id,
            at,
            job: Box::new(job),
        })?;
        Ok(ItemId(id))
    }

    /// Try every unsent item now ("retry now"); returns how many.
    pub fn retry_now(&mut self, at: Timestamp) -> Result<usize, CrmError> {
        let ids: Vec<u64> = self
            .items
            .iter()
            .filter(|(_, e)| e.sent_at.is_none())
            .map(|(i, _)| *i)
            .collect();
        for id in &ids {
            self.write(Line::Retry { id: *id, at })?;
        }
        Ok(ids.len())
    }

    /// Stop all sending of a person's items until unblocked.
    pub fn block(&mut self, person: &str) -> Result<(), CrmError> {
        self.write(Line::Block {
            person: person.into(),
        })
    }

    /// Lift a block.
    pub fn unblock(&mut self, person: &str) -> Result<(), CrmError> {
        self.write(Line::Unblock {
            person: person.into(),
        })
    }

    /// Remove a destroyed person's queued work.
    pub fn remove_person(&mut self, person: &str) -> Result<(), CrmError> {
        self.write(Line::RemovePerson {
            person: person.into(),
        })
    }

    /// Every item, for the status screen.
    pub fn list(&self) -> Vec<ItemView> {
        self.items
            .iter()
            .map(|(id, e)| ItemView {
                id: ItemId(*id),
                run_id: e.job.run_id.0.clone(),
                script_id: e.job.run.script_id.clone(),
                state: match (e.sent_at, &e.last_error) {
                    (Some(_), _) => ItemState::Sent,
                    (None, Some(_)) => ItemState::Failed,
                    (None, None) => ItemState::Queued,
                },
                failures: e.failures,
                queued_at: e.queued_at,
                next_attempt: e.sent_at.is_none().then_some(e.next_at),
                sent_at: e.sent_at,
                last_error: if e.sent_at.is_none() {
                    e.last_error.clone()
                } else {
                    None
                },
            })
            .collect()
    }

    /// Counts by state.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for v in self.list() {
            match v.state {
                ItemState::Queued => s.queued += 1,
                ItemState::Sent => s.sent += 1,
                ItemState::Failed => s.failed += 1,
            }
        }
        s
    }

    /// The progress of an item (tests).
    pub fn progress(&self, id: ItemId) -> Option<&Progress> {
        self.items.get(&id.0).map(|e| &e.progress)
    }

    fn sendable(&self, e: &Entry) -> bool {
        e.sent_at.is_none() && !self.blocked.contains(&e.job.person_id)
    }
}

impl Outbox for JournalOutbox {
    fn claim_due(&mut self, now: Timestamp, limit: usize) -> Result<Vec<QueuedItem>, CrmError> {
        Ok(self
            .items
            .iter()
            .filter(|(_, e)| self.sendable(e) && e.next_at <= now)
            .take(limit)
            .map(|(id, e)| QueuedItem {
                id: ItemId(*id),
                job: e.job.clone(),
                progress: e.progress.clone(),
                failures: e.failures,
            })
            .collect())
    }

    fn still_sendable(&mut self, ids: &[ItemId]) -> Result<Vec<bool>, CrmError> {
        Ok(ids
            .iter()
            .map(|id| self.items.get(&id.0).is_some_and(|e| self.sendable(e)))
            .collect())
    }

    fn save_progress(&mut self, items: &[(ItemId, &Progress)]) -> Result<(), CrmError> {
        for (id, p) in items {
            if self.items.get(&id.0).is_some_and(|e| &e.progress != *p) {
                self.write(Line::Progress {
                    id: id.0,
                    progress: (*p).clone(),
                })?;
            }
        }
        Ok(())
    }

    fn mark_sent(&mut self, id: ItemId, at: Timestamp, receipt: &Receipt) -> Result<(), CrmError> {
        self.write(Line::Sent {
            id: id.0,
            at,
            receipt: receipt.clone(),
        })
    }

    fn mark_failed(
        &mut self,
        id: ItemId,
        at: Timestamp,
        failure: &FailureNote,
        next: Timestamp,
    ) -> Result<(), CrmError> {
        self.write(Line::Failed {
            id: id.0,
            at,
            failure: failure.clone(),
            next,
        })
    }

    fn next_due(&mut self) -> Result<Option<Timestamp>, CrmError> {
        Ok(self
            .items
            .values()
            .filter(|e| self.sendable(e))
            .map(|e| e.next_at)
            .min())
    }
}
