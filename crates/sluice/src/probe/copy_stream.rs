//! A capture's rows over a connection of their own.
//!
//! The synchronous client hands a COPY's rows over one message at a time, entering its runtime
//! for each — for ten million rows that costs more than the rows themselves. Here one thread
//! drives the COPY on an async connection that imports the capture's exported snapshot, and
//! passes the bytes on in large chunks through a bounded channel; the capture reads them as a
//! plain [`Read`] while the server is still sending.

use futures_util::StreamExt;
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// How many bytes go over the channel at a time.
const CHUNK: usize = 1 << 18;

/// Chunks in flight between the connection's thread and the reader.
const IN_FLIGHT: usize = 8;

type Chunk = Result<Vec<u8>, String>;

/// Runs `copy_sql` in the exported `snapshot` on a new connection from `config` (after
/// `settings`), sending its bytes to `chunks`; a failure is sent as the last chunk. Stops early,
/// closing the connection, when the reader is gone.
fn pump(
    config: &tokio_postgres::Config,
    snapshot: &str,
    settings: &str,
    copy_sql: &str,
    chunks: SyncSender<Chunk>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = chunks.send(Err(format!("cannot start the COPY's runtime: {e}")));
            return;
        }
    };
    let result = runtime.block_on(async {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| crate::target::pg_message(&e))?;
        let driver = tokio::spawn(connection);
        let begin = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'; {settings}",
            snapshot.replace('\'', "")
        );
        client
            .batch_execute(&begin)
            .await
            .map_err(|e| crate::target::pg_message(&e))?;
        let stream = client
            .copy_out(copy_sql)
            .await
            .map_err(|e| crate::target::pg_message(&e))?;
        futures_util::pin_mut!(stream);
        let mut batch = Vec::with_capacity(CHUNK);
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| crate::target::pg_message(&e))?;
            batch.extend_from_slice(&piece);
            if batch.len() >= CHUNK {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(CHUNK));
                if chunks.send(Ok(full)).is_err() {
                    return Ok(()); // the reader stopped: dropping the connection ends the COPY
                }
            }
        }
        if !batch.is_empty() && chunks.send(Ok(batch)).is_err() {
            return Ok(());
        }
        let _ = client.batch_execute("ROLLBACK").await;
        drop(client);
        let _ = driver.await;
        Ok::<(), String>(())
    });
    if let Err(message) = result {
        let _ = chunks.send(Err(message));
    }
}

/// The bytes of a COPY as they arrive from the connection's thread.
pub(super) struct ChunkReader {
    chunks: Receiver<Chunk>,
    current: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.chunks.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Ok(Err(message)) => return Err(io::Error::other(message)),
                Err(_) => return Ok(0), // the sender is done: end of the COPY
            }
        }
        let n = (self.current.len() - self.at).min(buf.len());
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Runs `copy_sql` on its own connection in the exported `snapshot` and hands its bytes to
/// `consume` as a reader, while they arrive.
pub(super) fn read_copy<T>(
    config: &tokio_postgres::Config,
    snapshot: &str,
    settings: &str,
    copy_sql: &str,
    consume: impl FnOnce(&mut ChunkReader) -> T,
) -> T {
    let (sender, receiver) = sync_channel(IN_FLIGHT);
    std::thread::scope(|scope| {
        scope.spawn(move || pump(config, snapshot, settings, copy_sql, sender));
        let mut reader = ChunkReader {
            chunks: receiver,
            current: Vec::new(),
            at: 0,
        };
        let out = consume(&mut reader);
        drop(reader); // lets the connection's thread stop if `consume` ended early
        out
    })
}
