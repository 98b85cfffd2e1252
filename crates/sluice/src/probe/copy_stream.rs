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

/// Connects to `target`, imports the exported `snapshot` (after `settings`), tells `ready`, then
/// runs `copy_sql` and sends its bytes to `chunks`; a failure after `ready` is sent as the last
/// chunk. Stops early, closing the connection, when the reader is gone.
fn pump(
    target: crate::target::Target,
    begin: String,
    copy_sql: String,
    ready: SyncSender<Result<(), String>>,
    chunks: SyncSender<Chunk>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start the COPY's runtime: {e}")));
            return;
        }
    };
    let pg = |e: tokio_postgres::Error| crate::target::pg_message(&e);
    runtime.block_on(async {
        let connected = async {
            let (client, driver) = target
                .connect_async("probe rows")
                .await
                .map_err(|e| e.to_string())?;
            client.batch_execute(&begin).await.map_err(pg)?;
            Ok::<_, String>((client, driver))
        };
        let (client, driver) = match connected.await {
            Ok(c) => c,
            Err(message) => {
                let _ = ready.send(Err(message));
                return;
            }
        };
        if ready.send(Ok(())).is_err() {
            return;
        }
        let streamed = async {
            let stream = client.copy_out(copy_sql.as_str()).await.map_err(pg)?;
            futures_util::pin_mut!(stream);
            let mut batch = Vec::with_capacity(CHUNK);
            while let Some(piece) = stream.next().await {
                batch.extend_from_slice(&piece.map_err(pg)?);
                if batch.len() >= CHUNK {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(CHUNK));
                    if chunks.send(Ok(full)).is_err() {
                        return Ok(()); // the reader stopped: dropping the connection ends the COPY
                    }
                }
            }
            if !batch.is_empty() {
                let _ = chunks.send(Ok(batch));
            }
            Ok::<(), String>(())
        };
        if let Err(message) = streamed.await {
            let _ = chunks.send(Err(message));
        }
        let _ = client.batch_execute("ROLLBACK").await;
        drop(client);
        let _ = driver.await;
    });
}

/// The bytes of a COPY as they arrive from the connection's thread.
pub(super) struct ChunkReader {
    chunks: Receiver<Chunk>,
    current: Vec<u8>,
    at: usize,
    thread: Option<std::thread::JoinHandle<()>>,
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
                // the sender is gone: the end of the COPY, unless its thread died
                Err(_) => {
                    return match self.thread.take().map(|t| t.join()) {
                        Some(Err(_)) => Err(io::Error::other("the COPY's thread failed")),
                        _ => Ok(0),
                    }
                }
            }
        }
        let n = (self.current.len() - self.at).min(buf.len());
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Opens a connection of its own for `copy_sql`, in the exported `snapshot` with `settings`,
/// and returns the reader of its bytes once the connection is in the snapshot — or why it could
/// not get there (the caller can then run the COPY on its own session).
pub(super) fn open(
    target: &crate::target::Target,
    snapshot: &str,
    settings: &str,
    copy_sql: &str,
) -> Result<ChunkReader, String> {
    let begin = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {}; {settings}",
        crate::target::import_snapshot_sql(snapshot)
    );
    let (ready_tx, ready) = sync_channel(1);
    let (sender, chunks) = sync_channel(IN_FLIGHT);
    let (target, copy_sql) = (target.clone(), copy_sql.to_string());
    let thread = std::thread::Builder::new()
        .name("sluice-copy".into())
        .spawn(move || pump(target, begin, copy_sql, ready_tx, sender))
        .map_err(|e| format!("cannot start the COPY's thread: {e}"))?;
    match ready.recv() {
        Ok(Ok(())) => Ok(ChunkReader {
            chunks,
            current: Vec::new(),
            at: 0,
            thread: Some(thread),
        }),
        Ok(Err(message)) => Err(message),
        Err(_) => Err("the COPY's thread failed before connecting".into()),
    }
}
