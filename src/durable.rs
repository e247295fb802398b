//! Writing files so that a crash leaves either the old or the new content: temporary file in the same folder,
//! fsync, rename over, fsync the folder; and appending lines that are on disk when the call returns.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary name `path` is written under first: hidden (readers of Parquet folders skip dot files) and
/// in the same folder (a rename never crosses file systems).
pub fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Replaces `path` with what `write` writes, atomically and durably.
pub fn replace_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = temp_name(path);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        sync_folder_of(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Replaces `path` with `bytes`, atomically and durably.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_with(path, |file| file.write_all(bytes))
}

/// Appends `line` (and a newline) to `path`, creating it, and returns once it is on disk.
pub fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    let created = !path.exists();
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    file.write_all(&buf)?;
    file.sync_all()?;
    if created {
        sync_folder_of(path)?;
    }
    Ok(())
}

/// Makes a rename or a new file in `path`'s folder durable (a no-op where folders cannot be opened).
fn sync_folder_of(path: &Path) -> std::io::Result<()> {
    sync_folder(match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    })
}

/// Makes the entries of `folder` (creations, renames, removals) durable (a no-op where folders cannot be opened).
pub fn sync_folder(folder: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(folder)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = folder;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_appends() {
        let dir = std::env::temp_dir().join(format!("crmscore-durable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("list.json");
        replace(&file, b"one").unwrap();
        replace(&file, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "two");
        assert!(!temp_name(&file).exists());
        assert_eq!(temp_name(&file).file_name().unwrap(), ".list.json.tmp");
        let log = dir.join("audit.jsonl");
        append_line(&log, "a").unwrap();
        append_line(&log, "b").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "a\nb\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
