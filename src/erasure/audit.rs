//! The erasure audit log: one JSON line per erasure or lift (time, hashed id, what changed), fsynced before the
//! caller hears back.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{ErasureError, RewrittenFile};
use crate::durable;

/// Name of the audit log inside the state folder.
pub const AUDIT_FILE: &str = "erasure-audit.jsonl";

/// One line of the audit log.
#[derive(Debug, Serialize)]
pub struct AuditEntry<'a> {
    /// UTC time, RFC 3339.
    pub time: String,
    /// `erase` or `lift`.
    pub action: &'static str,
    /// The salted hash of the customer id.
    pub customer: String,
    /// `http` (the server) or `cli` (`crmscore erase`).
    pub via: &'static str,
    /// Whether the list changed (false: erased already, or a lift of someone not erased).
    pub changed: bool,
    /// Rows hidden in the served snapshot.
    pub snapshot_rows_hidden: usize,
    /// Files rewritten without the customer, with the rows removed from each.
    pub files: &'a [RewrittenFile],
}

/// The append-only audit log of one state folder.
pub struct AuditLog {
    file: PathBuf,
}

impl AuditLog {
    /// The log in `dir` (created with its first entry).
    pub fn new(dir: &Path) -> AuditLog {
        AuditLog {
            file: dir.join(AUDIT_FILE),
        }
    }

    /// Appends `entry`; once this returns, it is on disk.
    pub fn record(&self, entry: &AuditEntry<'_>) -> Result<(), ErasureError> {
        let line = serde_json::to_string(entry).map_err(|e| ErasureError::io(&self.file, e))?;
        durable::append_line(&self.file, &line).map_err(|e| ErasureError::io(&self.file, e))
    }
}

/// `time` as RFC 3339 UTC with seconds (`2026-12-02T07:05:09Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_590_309);
        assert_eq!(rfc3339(t), "2026-11-25T07:05:09Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
