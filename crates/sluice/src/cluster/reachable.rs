//! Server binaries the unprivileged OS user can run. When sluice is root, the throwaway server
//! runs as `postgres`/`nobody`; binaries under a folder that user cannot traverse (a clone in
//! root's 0700 home, say) are copied once into a root-owned, world-readable cache and run from
//! there. The user's folders are never chmod-ed.

use super::{ClusterError, OsUser};
use std::path::{Path, PathBuf};

/// The bindir to run the server from as `user`: the given one when `user` can run its
/// `postgres`, else a readable copy of its installation.
pub(super) fn bindir_for(bindir: &Path, user: OsUser) -> Result<PathBuf, ClusterError> {
    if runs_as(bindir, user) {
        return Ok(bindir.to_path_buf());
    }
    let install = installation_root(bindir);
    let relative = bindir.strip_prefix(&install).unwrap_or(Path::new("bin"));
    let copy = readable_copy(&install)?;
    let copied_bindir = copy.join(relative);
    if runs_as(&copied_bindir, user) {
        Ok(copied_bindir)
    } else {
        Err(ClusterError::Command {
            step: "reach the server binaries".into(),
            message: format!(
                "the OS user the server runs as (uid {}) cannot run {} nor its copy in {}",
                user.uid,
                bindir.join("postgres").display(),
                copied_bindir.display()
            ),
        })
    }
}

/// Whether `user` can run `postgres --version` from `bindir` (traversal, exec and the shared
/// libraries it loads, exactly as the server will need them).
fn runs_as(bindir: &Path, user: OsUser) -> bool {
    use std::os::unix::process::CommandExt;
    crate::target::child_command(bindir.join("postgres"))
        .arg("--version")
        .current_dir("/")
        .uid(user.uid)
        .gid(user.gid)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The folder holding everything the binaries need: the `.pg/ENTRY` folder `scripts/pg-install`
/// made (its layouts keep libraries beside `bin`, or reach them by RPATH from a sibling), else
/// the bindir's parent (the usual `PREFIX/{bin,lib,share}`).
fn installation_root(bindir: &Path) -> PathBuf {
    bindir
        .ancestors()
        .find(|a| a.parent().and_then(Path::file_name) == Some(std::ffi::OsStr::new(".pg")))
        .or_else(|| bindir.parent())
        .unwrap_or(bindir)
        .to_path_buf()
}

/// A copy of `install` in `/var/tmp/sluice-pg-bin/`, named by what it was copied from; reused
/// only when it is complete, root-owned and writable by nobody else.
fn readable_copy(install: &Path) -> Result<PathBuf, ClusterError> {
    let cache = Path::new("/var/tmp/sluice-pg-bin");
    ensure_private_dir(cache)?;
    let name = format!("{:016x}", fingerprint(install)?);
    let dest = cache.join(&name);
    if dest.join(".complete").is_file() && trusted(&dest) {
        return Ok(dest);
    }
    let staging = tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir_in(cache)?;
    let tree = staging.path().join("tree");
    copy_tree(install, &tree)?;
    std::fs::write(tree.join(".complete"), b"")?;
    open_up(&tree)?;
    publish(&tree, &dest)?;
    Ok(dest)
}

/// Moves a finished copy into place. Another process (a parallel test, a second sluice) may
/// have put its own there meanwhile and be running a server from it: a complete, trusted copy
/// in place is kept and ours dropped — never removed under a running server. Only a copy that
/// is incomplete or not trusted is replaced.
fn publish(tree: &Path, dest: &Path) -> Result<(), ClusterError> {
    for _ in 0..3 {
        match std::fs::rename(tree, dest) {
            Ok(()) => return Ok(()),
            Err(_) if dest.join(".complete").is_file() && trusted(dest) => return Ok(()),
            Err(e) if !dest.exists() => return Err(e.into()),
            Err(_) => {
                let _ = std::fs::remove_dir_all(dest);
            }
        }
    }
    Err(ClusterError::Command {
        step: "reach the server binaries".into(),
        message: format!(
            "could not put the copy of the binaries in {}",
            dest.display()
        ),
    })
}

/// The cache folder: created 0755 by root; refused when someone else owns it or may write it.
fn ensure_private_dir(dir: &Path) -> Result<(), ClusterError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.into()),
    }
    if trusted(dir) {
        Ok(())
    } else {
        Err(ClusterError::Command {
            step: "reach the server binaries".into(),
            message: format!(
                "{} is not a folder owned by this user and writable by no one else; remove it",
                dir.display()
            ),
        })
    }
}

fn trusted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.is_dir() && m.uid() == me && m.mode() & 0o022 == 0)
}

/// Names a copy by its source path and its `postgres` binary's size and modification time, so
/// that a reinstalled version is copied again.
fn fingerprint(install: &Path) -> Result<u64, ClusterError> {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    install.hash(&mut hasher);
    for entry in walk(install)? {
        if entry.file_name() == Some(std::ffi::OsStr::new("postgres")) {
            let meta = std::fs::metadata(&entry)?;
            (meta.len(), meta.mtime(), meta.mtime_nsec()).hash(&mut hasher);
        }
    }
    Ok(hasher.finish())
}

fn walk(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    Ok(out)
}

/// Copies files, folders and symbolic links (kept as links) with their permissions.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&source)?, &dest)?;
        } else if kind.is_dir() {
            copy_tree(&source, &dest)?;
        } else {
            std::fs::copy(&source, &dest)?;
        }
    }
    Ok(())
}

/// `chmod -R a+rX` of the copy (never of the user's own folders).
fn open_up(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut paths = walk(root)?;
    paths.push(root.to_path_buf());
    for path in paths {
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        let exec = if meta.is_dir() || mode & 0o100 != 0 {
            0o111
        } else {
            0
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode | 0o444 | exec))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_with(root: &Path, name: &str, file: &str, complete: bool) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(file), b"x").unwrap();
        if complete {
            std::fs::write(dir.join(".complete"), b"").unwrap();
        }
        dir
    }

    #[test]
    fn a_complete_copy_in_place_is_kept_and_an_incomplete_one_replaced() {
        let root = tempfile::tempdir().unwrap();
        // another process's finished copy, maybe running a server: ours is dropped
        let dest = tree_with(root.path(), "dest", "theirs", true);
        let ours = tree_with(root.path(), "ours", "ours", true);
        publish(&ours, &dest).unwrap();
        assert!(dest.join("theirs").is_file() && !dest.join("ours").exists());
        // a half copy left by a killed process: replaced
        let half = tree_with(root.path(), "half", "partial", false);
        let ours = tree_with(root.path(), "ours2", "ours", true);
        publish(&ours, &half).unwrap();
        assert!(half.join("ours").is_file() && !half.join("partial").exists());
        // nothing in place: moved there
        let ours = tree_with(root.path(), "ours3", "ours", true);
        let empty = root.path().join("none");
        publish(&ours, &empty).unwrap();
        assert!(empty.join("ours").is_file());
    }
}
