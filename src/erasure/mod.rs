//! Erasure of a customer (GDPR art. 17): the list of erased customers (salted hashes), hiding them in the served
//! snapshot and every later one, removing their rows from logs and Parquet outputs, and the audit log.

pub mod audit;
pub mod list;
pub mod offline;
pub mod rewrite;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use utoipa::ToSchema;

use crate::feedback::{ErasedFiles, FeedbackLog};
use crate::snapshot::{CustomerId, Prepare, SnapshotStore};
use audit::{AuditEntry, AuditLog};
pub use list::{ErasureList, IdHash};

/// Name of the lock file that keeps one process at a time on a state folder's erasure list.
pub const LOCK_FILE: &str = "erasures.lock";

/// Longest customer id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 512;

/// Why an erasure could not be done or its state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error(
        "the erasure list {path} is unreadable ({message}); refusing to go on rather than serve erased customers \
         again: restore the file from a backup"
    )]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "another crmscore process holds {path} (a running server erases through DELETE /v1/customers/{{id}}; \
         `crmscore erase` is for when it is down)"
    )]
    InUse { path: PathBuf },
    #[error("{0}")]
    BadId(String),
    #[error("{path}: {message}")]
    Parquet { path: PathBuf, message: String },
    /// The outcome and decision logs could not be rewritten without the customer.
    #[error("feedback logs: {0}")]
    Feedback(#[from] crate::feedback::FeedbackError),
}

impl ErasureError {
    fn io(path: &Path, e: impl std::fmt::Display) -> ErasureError {
        ErasureError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// One file rewritten without an erased customer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RewrittenFile {
    /// The file.
    pub path: String,
    /// Rows of the customer removed from it.
    pub rows_removed: usize,
}

/// What one erasure did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EraseReport {
    /// The salted hash of the customer id (what the erasure list and the audit log hold).
    pub customer: String,
    /// Whether the customer was erased already (nothing new was listed).
    pub already_erased: bool,
    /// Rows hidden in the served snapshot by this call (0 or 1).
    pub snapshot_rows_hidden: usize,
    /// Files rewritten without the customer's rows.
    pub files_rewritten: Vec<RewrittenFile>,
    /// Rows removed from those files in all.
    pub rows_removed: usize,
}

/// What lifting an erasure did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiftReport {
    /// The salted hash of the customer id.
    pub customer: String,
    /// Whether the customer was erased (false: nothing to lift).
    pub lifted: bool,
}

/// Checks a customer id given to erase or lift: not empty, not too long, no control characters.
pub fn check_id(id: &str) -> Result<(), ErasureError> {
    if id.is_empty() {
        return Err(ErasureError::BadId("the customer id is empty".into()));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(ErasureError::BadId(format!(
            "the customer id is longer than {MAX_ID_BYTES} bytes"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(ErasureError::BadId(
            "the customer id contains control characters".into(),
        ));
    }
    Ok(())
}

/// Takes the state folder's erasure lock, waiting up to `wait` for a process that is letting go of it (a
/// server shutting down); the lock lasts as long as the file stays open.
fn lock_state(dir: &Path, wait: Duration) -> Result<File, ErasureError> {
    std::fs::create_dir_all(dir).map_err(|e| ErasureError::io(dir, e))?;
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ErasureError::io(&path, e))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(ErasureError::InUse { path }),
            Err(std::fs::TryLockError::Error(e)) => return Err(ErasureError::io(&path, e)),
        }
    }
}

/// The erasure state of a running server: the list (shared with the snapshot loader), the audit log, and the
/// state folder's lock.
pub struct Erasures {
    list: Arc<RwLock<ErasureList>>,
    audit: AuditLog,
    _lock: File,
}

impl Erasures {
    /// Opens the erasure list and audit log in the state folder `dir`. An unreadable list is an error (the
    /// server must not start), as is another process holding the folder.
    pub fn open(dir: &Path) -> Result<Erasures, ErasureError> {
        let lock = lock_state(dir, Duration::from_secs(10))?;
        let list = ErasureList::open(dir)?;
        if !list.is_empty() {
            tracing::info!(erased = list.len(), file = %list.file().display(), "erasure list read: erased customers are kept out of every snapshot");
        }
        Ok(Erasures {
            list: Arc::new(RwLock::new(list)),
            audit: AuditLog::new(dir),
            _lock: lock,
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, ErasureList> {
        self.list.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, ErasureList> {
        self.list.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of erased customers.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether nobody is erased.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// What the snapshot loader runs on every snapshot before serving it: hides (and blanks) erased customers.
    pub fn prepare(&self) -> Arc<Prepare> {
        let list = self.list.clone();
        Arc::new(move |snapshot| {
            let list = list.read().unwrap_or_else(|p| p.into_inner());
            let rows = list.rows_in(snapshot);
            if !rows.is_empty() {
                snapshot.erase_rows(&rows);
                // A count, never the ids.
                tracing::info!(snapshot = %snapshot.version, rows = rows.len(), "erased customers kept out of the snapshot");
            }
        })
    }

    /// Erases `customer_id` everywhere the server keeps it. See [`erase_everywhere`].
    pub fn erase(
        &self,
        store: &SnapshotStore,
        feedback: Option<&FeedbackLog>,
        customer_id: &str,
    ) -> Result<EraseReport, ErasureError> {
        erase_everywhere(self, store, feedback, customer_id)
    }

    /// Lifts the erasure of `customer_id`: listed no more, served again from the next snapshot load (the
    /// served snapshot keeps them hidden). Audited.
    pub fn lift(&self, customer_id: &str) -> Result<LiftReport, ErasureError> {
        check_id(customer_id)?;
        let mut list = self.write();
        let hash = list.hash(customer_id);
        let lifted = list.remove(&hash)?;
        drop(list);
        self.audit.record(&AuditEntry {
            time: audit::rfc3339(SystemTime::now()),
            action: "lift",
            customer: hash.to_string(),
            via: "http",
            changed: lifted,
            snapshot_rows_hidden: 0,
            files: &[],
        })?;
        tracing::info!(customer = %hash, lifted, "erasure lifted");
        Ok(LiftReport {
            customer: hash.to_string(),
            lifted,
        })
    }
}

/// The feedback log's rewritten files, as the audit log and the reply list them.
pub(crate) fn rewritten(erased: ErasedFiles) -> Vec<RewrittenFile> {
    erased
        .files
        .into_iter()
        .map(|(path, rows_removed)| RewrittenFile {
            path: path.display().to_string(),
            rows_removed,
        })
        .collect()
}

/// The steps of one erasure in a running server, in order: list the salted hash (durably: from here on no
/// snapshot load serves the customer), hide the customer in the served snapshot (both while no snapshot is
/// being swapped in, so none slips through), remove their rows from the feedback logs, and audit what was done.
/// Erasing someone already erased does the steps again (they find nothing new) and says so.
pub fn erase_everywhere(
    erasures: &Erasures,
    store: &SnapshotStore,
    feedback: Option<&FeedbackLog>,
    customer_id: &str,
) -> Result<EraseReport, ErasureError> {
    check_id(customer_id)?;
    let (hash, newly_listed, hidden) = {
        let _swaps = store.hold_swaps();
        let mut list = erasures.write();
        let hash = list.hash(customer_id);
        let newly_listed = list.add(hash)?;
        let hidden = match store.current() {
            Some(snapshot) => {
                let id = CustomerId::Str(customer_id.to_string());
                snapshot.lookup(&id).map_or(0, |row| snapshot.hide(&[row]))
            }
            None => 0,
        };
        (hash, newly_listed, hidden)
    };
    // The writer serialises this with its appends: no row of the customer is half-way to a file meanwhile.
    let files_rewritten: Vec<RewrittenFile> = match feedback {
        Some(log) => rewritten(log.erase_customer(customer_id)?),
        None => Vec::new(),
    };
    let rows_removed = files_rewritten.iter().map(|f| f.rows_removed).sum();
    erasures.audit.record(&AuditEntry {
        time: audit::rfc3339(SystemTime::now()),
        action: "erase",
        customer: hash.to_string(),
        via: "http",
        changed: newly_listed || hidden > 0 || rows_removed > 0,
        snapshot_rows_hidden: hidden,
        files: &files_rewritten,
    })?;
    tracing::info!(customer = %hash, newly_listed, snapshot_rows_hidden = hidden, files = files_rewritten.len(), rows_removed, "customer erased");
    Ok(EraseReport {
        customer: hash.to_string(),
        already_erased: !newly_listed,
        snapshot_rows_hidden: hidden,
        files_rewritten,
        rows_removed,
    })
}
