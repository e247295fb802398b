//! `crmscore erase`: the same erasure with the server down — the list and audit log in the state folder, the
//! feedback logs, and the Parquet outputs it is pointed at.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use super::audit::{self, AuditEntry, AuditLog};
use super::{ErasureError, ErasureList, RewrittenFile, check_id, lock_state, rewrite};
use crate::config::EraseArgs;

/// Runs `crmscore erase` (or `--lift`) and returns what it did, as lines for the terminal.
pub fn run(args: &EraseArgs) -> Result<String, ErasureError> {
    check_id(&args.id)?;
    if args.state_dir.as_os_str().is_empty() {
        return Err(ErasureError::BadId(
            "--state-dir is empty: the erasure list needs a folder (the server's --state-dir)"
                .into(),
        ));
    }
    // Refuses at once when a server holds the folder: its own copy of the list would overwrite this change.
    let _lock = lock_state(&args.state_dir, Duration::ZERO)?;
    let mut list = ErasureList::open(&args.state_dir)?;
    let hash = list.hash(&args.id);
    let audit = AuditLog::new(&args.state_dir);
    let mut out = String::new();
    if args.lift {
        let lifted = list.remove(&hash)?;
        audit.record(&AuditEntry {
            time: audit::rfc3339(SystemTime::now()),
            action: "lift",
            customer: hash.to_string(),
            via: "cli",
            changed: lifted,
            snapshot_rows_hidden: 0,
            files: &[],
        })?;
        let _ = match lifted {
            true => writeln!(
                out,
                "lifted the erasure of {hash}: served again from the next snapshot load"
            ),
            false => writeln!(out, "{hash} was not erased: nothing to lift"),
        };
        return Ok(out);
    }
    let newly_listed = list.add(hash)?;
    let _ = match newly_listed {
        true => writeln!(out, "listed {hash} in {}", list.file().display()),
        false => writeln!(out, "{hash} was erased already ({})", list.file().display()),
    };
    let mut files: Vec<RewrittenFile> = Vec::new();
    if let Some(dir) = &args.feedback_dir {
        // The write-ahead log as well as the Parquet day files: the server may have stopped before compacting.
        files.extend(super::rewritten(crate::feedback::erase_customer(
            dir, &args.id,
        )?));
    }
    let sweep = rewrite::sweep(&args.outputs, &args.id)?;
    files.extend(sweep.rewritten);
    for file in &files {
        let _ = writeln!(
            out,
            "rewrote {} ({} rows removed)",
            file.path, file.rows_removed
        );
    }
    for file in &sweep.without_id_column {
        let _ = writeln!(out, "skipped {} (no customer_id column)", file.display());
    }
    let rows: usize = files.iter().map(|f| f.rows_removed).sum();
    let _ = writeln!(
        out,
        "{} file(s) rewritten, {rows} row(s) removed, {} file(s) without the customer left as they were",
        files.len(),
        sweep.untouched
    );
    audit.record(&AuditEntry {
        time: audit::rfc3339(SystemTime::now()),
        action: "erase",
        customer: hash.to_string(),
        via: "cli",
        changed: newly_listed || !files.is_empty(),
        snapshot_rows_hidden: 0,
        files: &files,
    })?;
    let _ = writeln!(
        out,
        "audited in {}",
        args.state_dir.join(audit::AUDIT_FILE).display()
    );
    Ok(out)
}
