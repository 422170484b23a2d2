//! How the queue opens its files and directories: the state directory must
//! be this user's alone, files are opened without following symlinks and
//! created readable by this user only.
//!
//! Why: the agent may run as root with a state directory under `/tmp`. If
//! another user could create entries in it, a symlink planted at `wal/ack`
//! or at a segment's name would make the agent overwrite whatever file the
//! link points to. So a directory is used only when it is owned by the
//! agent's user and not writable by group or others, and no file is opened
//! through a symlink (`O_NOFOLLOW`). Queued samples describe the monitored
//! servers: directories are created 0700, files 0600.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates `dir` (and missing parents) 0700, then checks it is this
/// user's alone (see the module's comment). `follow`: whether `dir` itself
/// may be a symlink (a state directory an operator linked elsewhere);
/// what the link points to is checked either way.
pub(crate) fn private_dir(dir: &Path, follow: bool) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let meta = if follow {
            fs::metadata(dir)?
        } else {
            fs::symlink_metadata(dir)?
        };
        if !meta.is_dir() {
            return Err(refused(
                "is not a directory (a symlink is not followed here)",
            ));
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(refused(&format!(
                "is owned by uid {}, not by this user (uid {me}); another user could plant \
                 links in it. Use a directory this user owns, mode 0700",
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(refused(&format!(
                "is writable by group or others (mode {:o}); another user could plant links \
                 in it. `chmod 700` it or use another directory",
                meta.mode() & 0o7777
            )));
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = follow;
        fs::create_dir_all(dir)
    }
}

fn refused(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why.to_owned())
}

/// Options for opening a queue file: never through a symlink, created
/// 0600. Add the access mode (`read`, `write`, `append`, `create`).
pub(crate) fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW).mode(0o600);
    }
    options
}

/// Opens the queue file at `path` for reading (not through a symlink).
pub(crate) fn open_read(path: &Path) -> io::Result<File> {
    options().read(true).open(path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_directory_is_private_and_a_shared_one_refused() {
        let root = tempfile::TempDir::new().expect("dir");
        let dir = root.path().join("state/wal");
        private_dir(&dir, false).expect("created");
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("state")), 0o700);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
        let e = private_dir(&dir, false).expect_err("world-writable");
        assert!(
            e.to_string()
                .contains("writable by group or others (mode 777)"),
            "{e}"
        );
    }

    #[test]
    fn symlinks_are_not_followed() {
        let root = tempfile::TempDir::new().expect("dir");
        let target = root.path().join("elsewhere");
        fs::write(&target, "keep").expect("write");
        let link = root.path().join("ack");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(options().write(true).create(true).open(&link).is_err());
        assert!(open_read(&link).is_err());
        assert_eq!(fs::read_to_string(&target).expect("read"), "keep");
        let linked_dir = root.path().join("wal");
        std::os::unix::fs::symlink(root.path(), &linked_dir).expect("symlink");
        assert!(private_dir(&linked_dir, false).is_err());
        private_dir(&linked_dir, true).expect("a linked state directory is followed");
    }

    #[test]
    fn files_are_created_for_this_user_only() {
        let root = tempfile::TempDir::new().expect("dir");
        let path = root.path().join("segment");
        options()
            .write(true)
            .create(true)
            .open(&path)
            .expect("create");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
