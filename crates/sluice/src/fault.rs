//! Test-only fault injection, compiled in only with the `fault-injection` cargo feature (the
//! tests enable it; release builds never have it). Without the feature every function here is a
//! no-op the compiler removes.
//!
//! - `SLUICE_FAULT_KILL_AT=STEP` (or `STEP:end`): the process SIGKILLs itself when that step
//!   starts (or ends), as `kill -9` would, with no destructor or cleanup running.
//! - `SLUICE_FAULT_BACKUP_AGE_S=N`: the backup-fresh gate sees the backup N seconds older.
//! - `SLUICE_FAULT_EVIDENCE_FULL=NAME`: writing the evidence file NAME (`SHA256SUMS`,
//!   `report.md`, …) fails as on a full disk (ENOSPC), after the file was created.
//! - `SLUICE_FAULT_DUMP_DAMAGE=1`: the dump just written loses the last tenth of its largest
//!   file, as a disk or a network filesystem might do, before it is read back.

/// Kills the process at a step boundary when asked to.
pub(crate) fn step_boundary(step: &str, end: bool) {
    #[cfg(feature = "fault-injection")]
    if let Ok(want) = std::env::var("SLUICE_FAULT_KILL_AT") {
        let here = if end {
            format!("{step}:end")
        } else {
            step.to_string()
        };
        if want == here {
            // SAFETY: sending SIGKILL to ourselves; nothing runs after it.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }
    let _ = (step, end);
}

/// Extra age added to the backup for the backup-fresh gate.
pub(crate) fn backup_age_offset() -> std::time::Duration {
    #[cfg(feature = "fault-injection")]
    if let Some(secs) = std::env::var("SLUICE_FAULT_BACKUP_AGE_S")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return std::time::Duration::from_secs(secs);
    }
    std::time::Duration::ZERO
}

/// A full disk when writing the evidence file `name`, when asked to.
pub(crate) fn evidence_write(name: &std::path::Path) -> std::io::Result<()> {
    #[cfg(feature = "fault-injection")]
    if let Ok(want) = std::env::var("SLUICE_FAULT_EVIDENCE_FULL") {
        if name.file_name().is_some_and(|n| n == want.as_str()) {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
    }
    let _ = name;
    Ok(())
}

/// Damages the dump at `path` (a file, or a folder's largest file) when asked to: its last
/// tenth is cut off. The table of contents (a custom dump's head, a folder's `toc.dat`) stays.
pub(crate) fn damage_dump(path: &std::path::Path) {
    #[cfg(feature = "fault-injection")]
    if std::env::var_os("SLUICE_FAULT_DUMP_DAMAGE").is_some() {
        let victim = if path.is_dir() {
            std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name() != "toc.dat")
                .max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                .map(|e| e.path())
        } else {
            Some(path.to_path_buf())
        };
        if let Some(file) = victim {
            let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&file) {
                let _ = f.set_len(len - len / 10);
            }
        }
    }
    let _ = path;
}
