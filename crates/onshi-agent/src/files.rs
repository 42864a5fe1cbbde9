//! The few file operations whose order makes the agent crash-safe: a file is replaced by
//! writing a temporary file beside it, syncing it, renaming it over the old one, and syncing
//! the directory, so a reader (or the agent after a crash) sees the old content or the new one,
//! never a mix.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes` atomically and durably.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true, false)
}

/// [`atomic_write`] for a file that holds a secret (the device token): readable and writable
/// by its owner only (0600) from the moment it is created, so that no other user of the
/// terminal can read it, not even before the rename.
pub fn atomic_write_secret(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true, true)
}

/// Replaces `path` with `bytes` atomically, without waiting for the disk: for files that are
/// rebuilt when a power cut leaves them empty or damaged.
pub fn quick_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool, secret: bool) -> io::Result<()> {
    let dir = parent(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = create(&tmp, secret)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    if durable { sync_dir(dir) } else { Ok(()) }
}

/// A fresh file at `path` (a temporary one left by a crash is replaced), owner-only if `secret`.
fn create(path: &Path, secret: bool) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    match options.open(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path)?;
            options.open(path)
        }
        other => other,
    }
}

/// Makes a rename or a new entry in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent(path: &Path) -> io::Result<&Path> {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .or(Some(Path::new(".")))
        .ok_or_else(|| io::Error::other("path has no directory"))
}

/// A one-line explanation of an I/O failure for people: "disk full" first, since that is the
/// fault a site can act on.
pub fn explain(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::StorageFull => format!("no space left on the device's disk ({e})"),
        io::ErrorKind::PermissionDenied => format!("permission denied ({e})"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("current");
        atomic_write(&p, b"1.0.0").expect("first write");
        atomic_write(&p, b"2.0.0").expect("second write");
        assert_eq!(fs::read_to_string(&p).expect("read"), "2.0.0");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("current")]);
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_is_owner_only_from_its_creation_even_over_a_stale_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("agent.json");
        // A temporary file a crash left behind, readable by everyone: not reused as it is.
        let stale = dir
            .path()
            .join(format!(".agent.json.tmp-{}", std::process::id()));
        fs::write(&stale, b"old").expect("stale file");
        fs::set_permissions(&stale, fs::Permissions::from_mode(0o644)).expect("mode");
        atomic_write_secret(&p, b"{\"device_token\":\"x\"}").expect("written");
        let mode = fs::metadata(&p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        assert!(!stale.exists());
    }

    #[test]
    fn a_failed_write_keeps_the_old_content() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("current");
        atomic_write(&p, b"1.0.0").expect("first write");
        // A directory in the way of the rename makes the replacement fail.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).expect("dir");
        fs::write(blocked.join("x"), b"x").expect("file");
        assert!(atomic_write(&blocked, b"2.0.0").is_err());
        assert_eq!(fs::read_to_string(&p).expect("read"), "1.0.0");
    }

    #[test]
    fn disk_full_is_named_plainly() {
        let e = io::Error::from(io::ErrorKind::StorageFull);
        assert!(explain(&e).starts_with("no space left"));
    }
}
