//! What the writer asks of the disk: a segment file to append frames to,
//! cut back after a failed write, and fsync'd. The agent's is the file
//! system ([`FileSystem`]); the queue's model test puts one in front of it
//! that fails writes on command, which a real disk does only when it is
//! full or broken.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Where segment files are written.
pub trait Disk: Send + Sync {
    /// Opens `path` for appending, empty (created if missing).
    fn create(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;

    /// Bytes free for this user on the file system of `dir`; `None` when
    /// that cannot be told.
    fn available(&self, dir: &Path) -> Option<u64> {
        let _ = dir;
        None
    }
}

/// A segment file open for appending.
pub trait SegmentFile: Send {
    /// Appends `bytes` at the end.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Cuts the file back to `len` bytes (a partial frame off its end).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Makes what was appended durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
}

/// The file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileSystem;

impl Disk for FileSystem {
    fn create(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let file = super::files::options()
            .create(true)
            .append(true)
            .open(path)?;
        file.set_len(0)?;
        Ok(Box::new(file))
    }

    fn available(&self, dir: &Path) -> Option<u64> {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
            // SAFETY: statvfs reads a NUL-terminated path and writes the
            // struct it is given; a zeroed statvfs is a valid value.
            let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
            if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
                return None;
            }
            #[allow(clippy::useless_conversion)] // the field types differ by platform
            Some(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
        }
        #[cfg(not(unix))]
        {
            let _ = dir;
            None
        }
    }
}

impl SegmentFile for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        // In append mode: after a truncate the next write lands at the new end.
        self.write_all(bytes)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}
