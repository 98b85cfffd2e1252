//! What the package asks of its backup (`[backup]` in SPEC §2): the archive format, the parallel
//! jobs of the directory format, and the compression — gzip at a level, lz4 or zstd when the
//! client tools were built with them (asked of `pg_dump` itself, never assumed), or none.

use serde::Serialize;
use std::fmt;

/// The archive format of the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpFormat {
    /// One file (`pg_dump -F c`), streamed into the evidence folder and hashed as it is written.
    Custom,
    /// A folder of one file per table (`pg_dump -F d -j N`): dumped and read back in parallel.
    Directory,
}

impl DumpFormat {
    pub fn name(self) -> &'static str {
        match self {
            DumpFormat::Custom => "custom",
            DumpFormat::Directory => "directory",
        }
    }

    pub fn parse(text: &str) -> Option<DumpFormat> {
        match text {
            "custom" => Some(DumpFormat::Custom),
            "directory" => Some(DumpFormat::Directory),
            _ => None,
        }
    }
}

/// The compression method and level handed to `pg_dump --compress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "method", content = "level", rename_all = "lowercase")]
pub enum Compression {
    /// gzip at level 1..=9 (the seed's `-Z 6`).
    Gzip(u8),
    /// lz4 at its default level or the one given.
    Lz4(Option<u8>),
    /// zstd at its default level or the one given.
    Zstd(Option<u8>),
    None,
}

impl Compression {
    /// Reads `6`, `"gzip:6"`, `"lz4"`, `"zstd:3"`, `"none"` (0 is none, as for `pg_dump -Z 0`).
    pub fn parse(text: &str) -> Result<Compression, String> {
        let (method, level) = match text.split_once(':') {
            Some((m, l)) => (m, Some(l)),
            None if text.chars().all(|c| c.is_ascii_digit()) && !text.is_empty() => {
                ("gzip", Some(text))
            }
            None => (text, None),
        };
        let level = match level {
            None => None,
            Some(l) => Some(
                l.parse::<u8>()
                    .map_err(|_| format!("`{l}` is not a compression level"))?,
            ),
        };
        let bounded = |max: u8| match level {
            Some(l) if l == 0 || l > max => Err(format!("{method} level {l}: expected 1..={max}")),
            _ => Ok(level),
        };
        match method {
            "gzip" if level == Some(0) => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip(bounded(9)?.unwrap_or(6))),
            "lz4" => Ok(Compression::Lz4(bounded(12)?)),
            "zstd" => Ok(Compression::Zstd(bounded(22)?)),
            "none" if level.is_none() => Ok(Compression::None),
            _ => Err(format!(
                "`{text}`: expected a gzip level 0..9, or \"gzip[:LEVEL]\", \"lz4[:LEVEL]\", \"zstd[:LEVEL]\" or \"none\""
            )),
        }
    }

    /// The `--compress` value: a bare level for gzip and none (understood by every pg_dump),
    /// `METHOD[:LEVEL]` for lz4 and zstd (pg_dump 16 and newer).
    pub fn pg_dump_arg(self) -> String {
        match self {
            Compression::Gzip(level) => level.to_string(),
            Compression::None => "0".to_string(),
            Compression::Lz4(level) | Compression::Zstd(level) => match level {
                Some(l) => format!("{}:{l}", self.method()),
                None => self.method().to_string(),
            },
        }
    }

    pub(crate) fn method(self) -> &'static str {
        match self {
            Compression::Gzip(_) => "gzip",
            Compression::Lz4(_) => "lz4",
            Compression::Zstd(_) => "zstd",
            Compression::None => "none",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Gzip(l) => write!(f, "gzip:{l}"),
            Compression::None => f.write_str("none"),
            Compression::Lz4(Some(l)) | Compression::Zstd(Some(l)) => {
                write!(f, "{}:{l}", self.method())
            }
            Compression::Lz4(None) | Compression::Zstd(None) => f.write_str(self.method()),
        }
    }
}

/// Everything the dump step needs to know about how to write the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DumpSpec {
    pub format: DumpFormat,
    pub compression: Compression,
    /// Parallel jobs of the directory format, as written: 0 means one per CPU of this machine.
    pub jobs: u32,
}

impl DumpSpec {
    /// The seed's `pg_dump -F c -Z 6`.
    pub const DEFAULT: DumpSpec = DumpSpec {
        format: DumpFormat::Custom,
        compression: Compression::Gzip(6),
        jobs: 0,
    };

    /// The jobs to run: those asked for, or the CPUs of this machine; 1 for the custom format.
    pub(crate) fn effective_jobs(&self) -> u32 {
        match (self.format, self.jobs) {
            (DumpFormat::Custom, _) => 1,
            (DumpFormat::Directory, 0) => {
                std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
            }
            (DumpFormat::Directory, n) => n,
        }
    }
}

/// `custom format, compression gzip:6` or `directory format, 4 jobs, compression gzip:1`.
impl fmt::Display for DumpSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.format, self.jobs) {
            (DumpFormat::Custom, _) => f.write_str("custom format")?,
            (DumpFormat::Directory, 0) => f.write_str("directory format, one job per CPU")?,
            (DumpFormat::Directory, n) => write!(f, "directory format, {n} jobs")?,
        }
        write!(f, ", compression {}", self.compression)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_reads_levels_methods_and_none() {
        assert_eq!(Compression::parse("6"), Ok(Compression::Gzip(6)));
        assert_eq!(Compression::parse("0"), Ok(Compression::None));
        assert_eq!(Compression::parse("gzip"), Ok(Compression::Gzip(6)));
        assert_eq!(Compression::parse("gzip:1"), Ok(Compression::Gzip(1)));
        assert_eq!(Compression::parse("lz4"), Ok(Compression::Lz4(None)));
        assert_eq!(Compression::parse("zstd:3"), Ok(Compression::Zstd(Some(3))));
        assert_eq!(Compression::parse("none"), Ok(Compression::None));
        for bad in ["gzip:10", "zstd:0", "brotli", "none:1", "lz4:x", ""] {
            assert!(Compression::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Compression::Zstd(Some(3)).pg_dump_arg(), "zstd:3");
        assert_eq!(Compression::Gzip(6).pg_dump_arg(), "6");
        assert_eq!(Compression::None.pg_dump_arg(), "0");
        assert_eq!(Compression::Lz4(None).to_string(), "lz4");
    }
}
