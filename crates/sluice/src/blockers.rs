//! Who blocks the migration: while an attempt runs, a second session (the lock session, idle
//! otherwise) asks the server every so often which sessions block the working one
//! (`pg_blocking_pids`), so that a lock timeout can name the blocker — its pid, application,
//! user, state and query — on the terminal and in the evidence. Polled no more often than a
//! quarter of `lock_timeout` (at least 100 ms, at most 1 s): `pg_blocking_pids` briefly takes
//! the lock manager's locks, which a busy production server should not pay for in a tight loop.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A session that blocked the migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    pub pid: i32,
    pub application: String,
    pub user: String,
    /// `active`, `idle in transaction`, …
    pub state: String,
    /// The start of its current or last query.
    pub query: String,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} ({}{}, {}): {}",
            self.pid,
            if self.application.is_empty() {
                "no application_name"
            } else {
                &self.application
            },
            if self.user.is_empty() {
                String::new()
            } else {
                format!(" as {}", self.user)
            },
            self.state,
            self.query
        )
    }
}

const BLOCKERS_SQL: &str =
    "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), \
     coalesce(a.state, ''), left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 160) \
     FROM pg_catalog.pg_stat_activity a \
     WHERE a.pid = ANY (pg_catalog.pg_blocking_pids($1)) ORDER BY a.pid";

/// How often to ask, for a lock timeout of `lock_timeout_ms`.
fn interval(lock_timeout_ms: u64) -> Duration {
    Duration::from_millis((lock_timeout_ms / 4).clamp(100, 1000))
}

/// The sessions blocking `pid`, asked on `watcher`.
fn blocking(watcher: &mut postgres::Client, pid: i32) -> Result<Vec<Blocker>, postgres::Error> {
    Ok(watcher
        .query(BLOCKERS_SQL, &[&pid])?
        .iter()
        .map(|r| Blocker {
            pid: r.get(0),
            application: r.get(1),
            user: r.get(2),
            state: r.get(3),
            query: r.get(4),
        })
        .collect())
}

/// Asks on `watcher` which sessions block `pid` until `done`; the last non-empty answer (the
/// sessions that held the lock when the attempt gave up, or close to it).
pub fn watch(
    watcher: &mut postgres::Client,
    pid: i32,
    lock_timeout_ms: u64,
    done: &AtomicBool,
) -> Vec<Blocker> {
    let step = interval(lock_timeout_ms);
    let mut seen = Vec::new();
    while !done.load(Ordering::Acquire) {
        sleep_unless(done, step);
        if done.load(Ordering::Acquire) {
            break;
        }
        match blocking(watcher, pid) {
            Ok(now) if !now.is_empty() => seen = now,
            Ok(_) => {}
            Err(_) => break, // the watcher is a help, never a reason to fail
        }
    }
    seen
}

/// Sleeps `total`, waking early when `done`.
fn sleep_unless(done: &AtomicBool, total: Duration) {
    let tick = Duration::from_millis(20);
    let mut slept = Duration::ZERO;
    while slept < total && !done.load(Ordering::Acquire) {
        std::thread::sleep(tick);
        slept += tick;
    }
}
