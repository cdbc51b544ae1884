//! Files and folders private from birth: what a node writes holds names,
//! ID numbers, keys and passwords, so it is created with mode 0600 (folders
//! 0700) in the same system call that creates it, never chmod-ed after a
//! moment in which others could open it. The `migrex` binary also sets its
//! umask to 077, so files made by SQLite (the database, its WAL and shared
//! memory, backups) are private too; the store creates its database file
//! itself where it can.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` and any missing parents with mode 0700 (existing folders
/// keep theirs).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes `bytes` to `path` (replacing what was there) in a file created
/// with mode 0600; an existing file keeps its mode.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Reads a text file of at most `max` bytes; a larger one is refused
/// before more than `max + 1` bytes are read.
pub fn read_bounded(path: &Path, max: u64) -> io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(text)
}

/// Replaces `path` with `bytes` all at once: written whole (mode 0600) and
/// synced beside it, then renamed over it, so a reader or a crash sees the
/// old file or the new one, never half of one.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Creates `path` empty with mode 0600 if it does not exist.
pub fn create_empty(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets the process's umask to 077: whatever it creates from now on is its
/// owner's alone. For the binary's `main`, before any file is made.
pub fn private_umask() {
    // SAFETY: umask only swaps the process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
}
