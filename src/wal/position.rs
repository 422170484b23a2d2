//! The acknowledged position on disk: `ack`, the number of the first
//! record the receiver has not accepted yet, so a restart resumes there.
//!
//! The file is kept open and overwritten in place with one fixed-width
//! line. Creating a file and renaming it over `ack` after every batch cost
//! the agent a twentieth of its CPU at 1000 targets, most of it in the file
//! system's inode allocation. A write that a power loss tears leaves the
//! line unreadable: the queue then starts at its oldest record and sends
//! what was sent already, which at-least-once delivery allows (receivers
//! take an identical sample twice).

use std::fs::File;
use std::io;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Digits of the widest `u64`, and the newline.
const ACK_LEN: usize = 21;

/// The file of reader `name`'s position: `ack` for the unnamed reader (the
/// one endpoint), `ack-<name>` for a named one.
fn file_name(name: &str) -> String {
    if name.is_empty() {
        "ack".to_owned()
    } else {
        format!("ack-{name}")
    }
}

/// The reader whose position file is `file` (the inverse of `file_name`).
fn reader_of(file: &str) -> Option<&str> {
    match file {
        "ack" => Some(""),
        other => other.strip_prefix("ack-"),
    }
}

/// The position of reader `name` recorded in `dir`, if it holds a readable
/// one. A reader without a file of its own (an endpoint added, or the
/// queue going from one endpoint to several or back) starts where the
/// reader furthest behind is: nothing an endpoint still needed is skipped,
/// and a receiver takes again what it had (at least once).
pub(super) fn read(dir: &Path, name: &str) -> Option<u64> {
    read_file(&dir.join(file_name(name))).or_else(|| {
        recorded(dir)
            .into_iter()
            .map(|(_, position)| position)
            .min()
    })
}

/// Deletes the position files of readers not in `readers`: an endpoint
/// removed must not hold back what the others have delivered, nor resume
/// from an old place if it comes back. Each of `readers` has written its
/// own file first, so a crash in between loses no position.
pub(super) fn remove_others(dir: &Path, readers: &[String]) -> std::io::Result<()> {
    for (name, _) in recorded(dir) {
        if !readers.contains(&name) {
            std::fs::remove_file(dir.join(file_name(&name)))?;
        }
    }
    Ok(())
}

/// Every reader with a readable position file in `dir`, by name (the
/// unnamed one as ""), sorted by name.
pub(super) fn recorded(dir: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, u64)> = entries
        .filter_map(|entry| {
            let file = entry.ok()?.file_name().into_string().ok()?;
            let name = reader_of(&file)?;
            Some((name.to_owned(), read_file(&dir.join(&file))?))
        })
        .collect();
    found.sort();
    found
}

fn read_file(path: &Path) -> Option<u64> {
    let mut text = String::new();
    super::files::open_read(path)
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok()
}

/// The `ack` file of a queue, opened at its first write.
#[derive(Debug)]
pub(super) struct AckFile {
    path: PathBuf,
    file: Option<File>,
    /// The position last written: a position never goes back, even when
    /// two writers of it (the sender, the disk bound) race.
    written: Option<u64>,
}

impl AckFile {
    pub(super) fn new(dir: &Path, name: &str) -> AckFile {
        AckFile {
            path: dir.join(file_name(name)),
            file: None,
            written: None,
        }
    }

    /// Records `seq` as the position, unless a later one is recorded.
    pub(super) fn write(&mut self, seq: u64) -> io::Result<()> {
        if self.written.is_some_and(|written| written > seq) {
            return Ok(());
        }
        let line = format!("{seq:020}\n");
        let written = self
            .open()
            .and_then(|file| write_at_start(file, line.as_bytes()));
        match written {
            Ok(()) => self.written = Some(seq),
            // Reopened at the next write: the file may have been removed.
            Err(_) => self.file = None,
        }
        written
    }

    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            let file = super::files::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&self.path)?;
            // A line of an earlier version may be shorter or longer.
            file.set_len(ACK_LEN as u64)?;
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("ack file not open"))
    }
}

#[cfg(unix)]
fn write_at_start(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, 0)
}

#[cfg(not(unix))]
fn write_at_start(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    file.seek(SeekFrom::Start(0))?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn the_position_is_overwritten_in_place_and_read_back() {
        let dir = tempfile::TempDir::new().expect("dir");
        assert_eq!(read(dir.path(), ""), None);
        let mut ack = AckFile::new(dir.path(), "");
        ack.write(7).expect("write");
        ack.write(123_456).expect("write");
        assert_eq!(read(dir.path(), ""), Some(123_456));
        ack.write(7).expect("an older position is not written");
        assert_eq!(read(dir.path(), ""), Some(123_456));
        let len = fs::metadata(dir.path().join("ack")).expect("file").len();
        assert_eq!(len, ACK_LEN as u64);
        // A line of another length (an earlier version's) is replaced whole.
        fs::write(dir.path().join("ack"), "12\n").expect("write");
        let mut again = AckFile::new(dir.path(), "");
        again.write(5).expect("write");
        assert_eq!(read(dir.path(), ""), Some(5));
    }

    #[test]
    fn a_reader_without_a_file_starts_where_the_one_furthest_behind_is() {
        let dir = tempfile::TempDir::new().expect("dir");
        assert_eq!(read(dir.path(), "mimir"), None);
        AckFile::new(dir.path(), "").write(40).expect("write");
        assert_eq!(read(dir.path(), "mimir"), Some(40), "from `ack`");
        AckFile::new(dir.path(), "mimir").write(55).expect("write");
        assert_eq!(read(dir.path(), "mimir"), Some(55));
        assert_eq!(read(dir.path(), ""), Some(40));
        assert!(dir.path().join("ack-mimir").exists());
        AckFile::new(dir.path(), "vm").write(30).expect("write");
        assert_eq!(read(dir.path(), "new"), Some(30), "the lowest of all");
        fs::remove_file(dir.path().join("ack")).expect("remove");
        assert_eq!(read(dir.path(), ""), Some(30), "back to one endpoint");
    }

    #[test]
    fn the_positions_of_other_readers_are_removed() {
        let dir = tempfile::TempDir::new().expect("dir");
        for (name, at) in [("", 1), ("vm", 2), ("mimir", 3)] {
            AckFile::new(dir.path(), name).write(at).expect("write");
        }
        fs::write(dir.path().join("00000000000000000000.wal"), "").expect("segment");
        remove_others(dir.path(), &["vm".to_owned()]).expect("remove");
        assert_eq!(recorded(dir.path()), [("vm".to_owned(), 2)]);
        assert!(dir.path().join("00000000000000000000.wal").exists());
    }

    #[test]
    fn a_file_name_names_its_reader() {
        for name in ["", "vm", "mimir-eu"] {
            assert_eq!(reader_of(&file_name(name)), Some(name));
        }
        assert_eq!(reader_of("00000000000000000000.wal"), None);
    }

    #[test]
    fn every_recorded_position_is_found() {
        let dir = tempfile::TempDir::new().expect("dir");
        assert!(recorded(dir.path()).is_empty());
        AckFile::new(dir.path(), "").write(3).expect("write");
        AckFile::new(dir.path(), "vm").write(9).expect("write");
        std::fs::write(dir.path().join("ack-torn"), "x").expect("write");
        assert_eq!(
            recorded(dir.path()),
            [("".to_owned(), 3), ("vm".to_owned(), 9)]
        );
    }
}
