//! Test-only fault injection, compiled in only with the `fault-injection` cargo feature (the
//! tests enable it; release builds never have it). Without the feature every function here is a
//! no-op the compiler removes.
//!
//! - `SLUICE_FAULT_KILL_AT=STEP` (or `STEP:end`): the process SIGKILLs itself when that step
//!   starts (or ends), as `kill -9` would, with no destructor or cleanup running.
//! - `SLUICE_FAULT_BACKUP_AGE_S=N`: the backup-fresh gate sees the backup N seconds older.
//! - `SLUICE_FAULT_EVIDENCE_FULL=NAME`: writing the evidence file NAME (`SHA256SUMS`,
//!   `report.md`, …) fails as on a full disk (ENOSPC), after the file was created.

/// Kills the process at a step boundary when asked to.
pub fn step_boundary(step: &str, end: bool) {
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
pub fn backup_age_offset() -> std::time::Duration {
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
pub fn evidence_write(name: &std::path::Path) -> std::io::Result<()> {
    #[cfg(feature = "fault-injection")]
    if let Ok(want) = std::env::var("SLUICE_FAULT_EVIDENCE_FULL") {
        if name.file_name().is_some_and(|n| n == want.as_str()) {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
    }
    let _ = name;
    Ok(())
}
