//! The proof that a dump holds its data (`backup-restorable`): `pg_restore` reads every byte of
//! it back into `/dev/null` — every table-of-contents entry, every data block decompressed —
//! not only its table of contents (`pg_restore --list` reads a truncated dump without a word).
//! A directory-format dump is read by parallel `pg_restore` processes, each given a share of
//! the data entries (`-L`) balanced by the size of their files: pg_restore itself runs
//! serially when it writes to a file.

use super::spec::DumpFormat;
use super::{BackupError, ClientTools};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

/// How a dump was read back.
#[derive(Debug, Clone, Serialize)]
pub struct ReadBack {
    /// Table-of-contents entries read.
    pub entries: usize,
    /// Of those, the entries with a data file (directory format) or data (custom format).
    pub data_entries: usize,
    /// pg_restore processes that read it at once.
    pub processes: u32,
    pub ms: u64,
}

/// One table-of-contents line of `pg_restore --list`: its dump id and the line itself.
struct TocEntry<'a> {
    dump_id: u64,
    line: &'a str,
    data: bool,
}

fn toc_entries(listing: &str) -> Vec<TocEntry<'_>> {
    listing
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|line| {
            let dump_id = line.split(';').next()?.trim().parse().ok()?;
            let data = line.contains(" TABLE DATA ")
                || line.contains(" BLOBS ")
                || line.contains(" BLOB DATA ")
                || line.contains(" SEQUENCE SET ");
            Some(TocEntry {
                dump_id,
                line,
                data,
            })
        })
        .collect()
}

/// Reads every byte of the dump at `path` back with `processes` pg_restore processes at most.
pub fn read_back(
    tools: &ClientTools,
    path: &Path,
    format: DumpFormat,
    processes: u32,
) -> Result<ReadBack, BackupError> {
    let started = Instant::now();
    if format == DumpFormat::Custom {
        return read_back_custom(tools, path, started);
    }
    let listing = super::restore_listing(tools, path)?;
    let entries = toc_entries(&listing);
    let data_entries = entries.iter().filter(|e| e.data).count();
    let shares = match format {
        // one process scans the one file: a dump written to a pipe has no data offsets to seek
        DumpFormat::Custom => vec![None],
        DumpFormat::Directory => shares(path, &entries, processes.max(1) as usize)
            .into_iter()
            .map(Some)
            .collect(),
    };
    let scratch = tempfile::Builder::new()
        .prefix("sluice-readback-")
        .tempdir()
        .map_err(|source| BackupError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let results: Vec<Result<(), BackupError>> = std::thread::scope(|scope| {
        let readers: Vec<_> = shares
            .iter()
            .enumerate()
            .map(|(i, share)| {
                let list = share
                    .as_ref()
                    .map(|lines| (scratch.path().join(format!("share-{i}.list")), lines));
                scope.spawn(move || restore_to_null(tools, path, list))
            })
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for result in results {
        result?;
    }
    if format == DumpFormat::Directory {
        rows_end_whole(path)?;
    }
    Ok(ReadBack {
        entries: entries.len(),
        data_entries,
        processes: shares.len() as u32,
        ms: started.elapsed().as_millis() as u64,
    })
}

/// A custom-format dump: one process reads it all (a dump written to a pipe has no data
/// offsets to seek), while another lists its table of contents for the counts.
fn read_back_custom(
    tools: &ClientTools,
    path: &Path,
    started: Instant,
) -> Result<ReadBack, BackupError> {
    let (listing, read) = std::thread::scope(|scope| {
        let reading = scope.spawn(|| restore_to_null(tools, path, None));
        let listing = super::restore_listing(tools, path);
        let read = reading
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (listing, read)
    });
    read?;
    let listing = listing?;
    let entries = toc_entries(&listing);
    Ok(ReadBack {
        entries: entries.len(),
        data_entries: entries.iter().filter(|e| e.data).count(),
        processes: 1,
        ms: started.elapsed().as_millis() as u64,
    })
}

/// The entries split into at most `n` shares of about equal data bytes (largest file first to
/// the lightest share); every entry without a data file goes to the first share.
fn shares(dir: &Path, entries: &[TocEntry<'_>], n: usize) -> Vec<String> {
    let sizes = data_file_sizes(dir);
    let mut with_size: Vec<(u64, &TocEntry)> = entries
        .iter()
        .map(|e| (sizes.get(&e.dump_id).copied().unwrap_or(0), e))
        .collect();
    with_size.sort_by_key(|(size, e)| (std::cmp::Reverse(*size), e.dump_id));
    let mut shares: Vec<(u64, Vec<&str>)> = vec![(0, Vec::new()); n];
    for (size, entry) in with_size {
        let lightest = if size == 0 {
            0
        } else {
            (0..n).min_by_key(|&i| shares[i].0).unwrap_or(0)
        };
        shares[lightest].0 += size;
        shares[lightest].1.push(entry.line);
    }
    shares
        .into_iter()
        .filter(|(_, lines)| !lines.is_empty())
        .map(|(_, lines)| lines.join("\n") + "\n")
        .collect()
}

/// `dump id → bytes` of a directory dump's data files (`3342.dat`, `3342.dat.gz`, …).
fn data_file_sizes(dir: &Path) -> BTreeMap<u64, u64> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    read.flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (id, rest) = name.split_once('.')?;
            if !rest.starts_with("dat") {
                return None;
            }
            Some((id.parse().ok()?, e.metadata().ok()?.len()))
        })
        .collect()
}

/// An uncompressed data file of a folder dump (`N.dat`) has no length or checksum that
/// pg_restore could check: at least its last row must be whole (COPY rows end with a newline),
/// so that a file cut in the middle of a row is refused. A compressed file's own trailer (gzip's
/// CRC and length, lz4's and zstd's frames) proves more, and pg_restore checks it.
fn rows_end_whole(dir: &Path) -> Result<(), BackupError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        // a table's data file is named by its dump id (`3342.dat`); `toc.dat` is not one
        let is_data = path.extension().is_some_and(|e| e == "dat")
            && path
                .file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| s.parse::<u64>().is_ok());
        if !is_data {
            continue;
        }
        let mut file = std::fs::File::open(&path).map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        if len == 0 {
            continue;
        }
        let mut last = [0u8; 1];
        file.seek(SeekFrom::End(-1)).map_err(io(&path))?;
        file.read_exact(&mut last).map_err(io(&path))?;
        if last[0] != b'\n' {
            return Err(BackupError::NotReadable(format!(
                "{} ends in the middle of a row: the file was cut short",
                path.display()
            )));
        }
    }
    Ok(())
}

/// `pg_restore [-L LIST] -f /dev/null DUMP`; its stderr is the error when it fails.
fn restore_to_null(
    tools: &ClientTools,
    dump: &Path,
    list: Option<(std::path::PathBuf, &String)>,
) -> Result<(), BackupError> {
    let mut cmd = crate::target::child_command(tools.bindir.join("pg_restore"));
    if let Some((file, lines)) = list {
        std::fs::write(&file, lines).map_err(|source| BackupError::Io {
            path: file.clone(),
            source,
        })?;
        cmd.arg("--use-list").arg(file);
    }
    let out = cmd
        .args(["--file", "/dev/null"])
        .arg(dump)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .map_err(|e| BackupError::NotReadable(format!("cannot run pg_restore: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BackupError::NotReadable(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_entries_are_balanced_over_the_shares_and_the_rest_go_to_the_first() {
        let dir = tempfile::tempdir().unwrap();
        for (id, size) in [(10, 900), (11, 500), (12, 400), (13, 100)] {
            std::fs::write(dir.path().join(format!("{id}.dat.gz")), vec![0u8; size]).unwrap();
        }
        let listing = ";\n; Archive created at …\n;\n\
             5; 2615 2200 SCHEMA - app postgres\n\
             10; 0 1 TABLE DATA app a postgres\n\
             11; 0 2 TABLE DATA app b postgres\n\
             12; 0 3 TABLE DATA app c postgres\n\
             13; 0 4 TABLE DATA app d postgres\n";
        let entries = toc_entries(listing);
        assert_eq!(entries.len(), 5);
        assert_eq!(entries.iter().filter(|e| e.data).count(), 4);
        let split = shares(dir.path(), &entries, 2);
        assert_eq!(split.len(), 2);
        // largest first to the lightest share: 900 + 100 against 500 + 400; the schema entry
        // (no data file) with the first share
        assert!(
            split[0].contains("10; ") && split[0].contains("13; ") && split[0].contains("5; 2615"),
            "{split:?}"
        );
        assert!(
            split[1].contains("11; ") && split[1].contains("12; "),
            "{split:?}"
        );
        // every entry exactly once
        let all: Vec<&str> = split.iter().flat_map(|s| s.lines()).collect();
        assert_eq!(all.len(), 5);
    }
}
