//! A dump file that is read while it is still being written: the writer says how far the file
//! has grown and when it ended; a follower copies it into a sink (pg_restore's stdin) as it
//! grows. The file is the buffer between the two, so the dump never waits for the restore,
//! and a restore that fails stops the dump instead of letting it run to its end.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard};

/// The state the writer and the follower share.
#[derive(Debug, Default)]
struct Shared {
    /// Bytes written to the file so far (visible to a reader).
    written: u64,
    /// `Some(true)` once the file is complete, `Some(false)` when the writer failed.
    ended: Option<bool>,
    /// The follower stopped (its sink failed): the writer should stop too.
    follower_gone: bool,
}

/// A file being written, and a follower of it.
#[derive(Debug, Default)]
pub(crate) struct Growing {
    shared: Mutex<Shared>,
    changed: Condvar,
}

/// Why the follower stopped before the file's end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FollowError {
    #[error("the dump being read ended unfinished")]
    WriterFailed,
    #[error("reading the dump as it was written: {0}")]
    Read(std::io::Error),
    #[error("{0}")]
    Sink(std::io::Error),
}

impl Growing {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // a panicking holder leaves plain counters behind: still meaningful
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer: the file now holds `bytes`. False when the follower is gone, and the
    /// writer should stop.
    pub(crate) fn grew_to(&self, bytes: u64) -> bool {
        let mut shared = self.lock();
        shared.written = bytes;
        self.changed.notify_all();
        !shared.follower_gone
    }

    /// The writer: the file is complete (`true`) or will never be (`false`). Only the first
    /// call counts.
    pub(crate) fn end(&self, complete: bool) {
        let mut shared = self.lock();
        shared.ended.get_or_insert(complete);
        self.changed.notify_all();
    }

    /// Ends the file as failed when dropped before [`Growing::end`] (the writer returned early
    /// or panicked), so that the follower never waits for bytes that will not come.
    pub(crate) fn end_on_drop(&self) -> EndOnDrop<'_> {
        EndOnDrop(self)
    }

    /// The follower stopped of its own accord (its sink failed, or its owner gave up before
    /// following): the writer is told to stop. Not when the writer had already failed.
    pub(crate) fn abandon(&self) {
        let mut shared = self.lock();
        if shared.ended != Some(false) {
            shared.follower_gone = true;
        }
    }

    /// Whether the follower stopped of its own accord: then its failure is the cause of the
    /// writer's.
    pub(crate) fn follower_quit(&self) -> bool {
        self.lock().follower_gone
    }

    /// Waits until the file holds more than `fed` bytes or has ended; returns how many bytes
    /// it holds and whether (and how) it ended.
    fn wait_past(&self, fed: u64) -> (u64, Option<bool>) {
        let mut shared = self.lock();
        while shared.written <= fed && shared.ended.is_none() {
            shared = self.changed.wait(shared).unwrap_or_else(|e| e.into_inner());
        }
        (shared.written, shared.ended)
    }

    /// The follower: copies the file at `path` into `sink` as it grows, until the writer says
    /// it is complete and every byte has been copied. Returns the bytes copied.
    pub(crate) fn follow(&self, path: &Path, sink: &mut dyn Write) -> Result<u64, FollowError> {
        let followed = self.copy_as_it_grows(path, sink);
        if matches!(followed, Err(FollowError::Read(_) | FollowError::Sink(_))) {
            self.abandon();
        }
        followed
    }

    fn copy_as_it_grows(&self, path: &Path, sink: &mut dyn Write) -> Result<u64, FollowError> {
        let mut fed = 0u64;
        let mut file: Option<File> = None;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let (written, ended) = self.wait_past(fed);
            if ended == Some(false) {
                return Err(FollowError::WriterFailed);
            }
            if written > fed {
                let reader = match file.as_mut() {
                    Some(f) => f,
                    None => file.insert(open_at(path, fed)?),
                };
                fed += copy_range(reader, written - fed, sink, &mut buf)?;
            } else if ended == Some(true) {
                sink.flush().map_err(FollowError::Sink)?;
                return Ok(fed);
            }
        }
    }
}

/// See [`Growing::end_on_drop`].
pub(crate) struct EndOnDrop<'a>(&'a Growing);

impl Drop for EndOnDrop<'_> {
    fn drop(&mut self) {
        self.0.end(false);
    }
}

fn open_at(path: &Path, offset: u64) -> Result<File, FollowError> {
    let mut file = File::open(path).map_err(FollowError::Read)?;
    file.seek(SeekFrom::Start(offset))
        .map_err(FollowError::Read)?;
    Ok(file)
}

/// Copies `len` bytes from `reader` into `sink`.
fn copy_range(
    reader: &mut File,
    len: u64,
    sink: &mut dyn Write,
    buf: &mut [u8],
) -> Result<u64, FollowError> {
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = reader.read(&mut buf[..want]).map_err(FollowError::Read)?;
        if n == 0 {
            return Err(FollowError::Read(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file is shorter than its writer said",
            )));
        }
        sink.write_all(&buf[..n]).map_err(FollowError::Sink)?;
        left -= n as u64;
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_follower_copies_every_byte_written_while_it_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump");
        let growing = Growing::default();
        let expected: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let copied = std::thread::scope(|scope| {
            let follower = scope.spawn(|| {
                let mut sink = Vec::new();
                growing.follow(&path, &mut sink).map(|_| sink)
            });
            let _end = growing.end_on_drop();
            let mut file = File::create(&path).unwrap();
            let mut written = 0;
            for chunk in expected.chunks(7_000) {
                file.write_all(chunk).unwrap();
                written += chunk.len() as u64;
                assert!(growing.grew_to(written));
            }
            growing.end(true);
            follower.join().unwrap()
        });
        assert_eq!(copied.unwrap(), expected);
    }

    #[test]
    fn a_writer_that_fails_stops_the_follower() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump");
        std::fs::write(&path, b"half").unwrap();
        let growing = Growing::default();
        growing.grew_to(4);
        drop(growing.end_on_drop());
        let mut sink = Vec::new();
        assert!(matches!(
            growing.follow(&path, &mut sink),
            Err(FollowError::WriterFailed)
        ));
    }

    #[test]
    fn a_follower_whose_sink_fails_tells_the_writer_to_stop() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump");
        std::fs::write(&path, b"bytes").unwrap();
        let growing = Growing::default();
        assert!(growing.grew_to(5));
        assert!(matches!(
            growing.follow(&path, &mut Broken),
            Err(FollowError::Sink(_))
        ));
        assert!(!growing.grew_to(5), "the writer is told to stop");
    }
}
