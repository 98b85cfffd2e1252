//! Probe rows read with binary COPY and written out as the CSV a text COPY would have produced.
//!
//! Formatting values as text is most of what a text COPY costs the server (a timestamp's text
//! is several times the work of reading its row). For the types whose text form sluice can
//! produce byte for byte — integers, booleans, text, uuid, date, timestamp, and timestamptz in
//! UTC (the capture pins `TimeZone` and `DateStyle`) — the server sends binary values and this
//! reader writes the CSV. Any other type keeps the text COPY, so a capture never depends on
//! sluice knowing a type. The tests compare both paths byte for byte on the server's own output.

use std::io::{self, BufRead, BufReader, Read};

/// A column type whose binary value this reader formats itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire {
    Int2,
    Int4,
    Int8,
    Bool,
    Text,
    Uuid,
    Date,
    Timestamp,
    TimestampTz,
}

impl Wire {
    /// The wire type of a column from its `regtype` text, if this reader formats it.
    pub(super) fn of(type_name: &str) -> Option<Wire> {
        Some(match type_name {
            "smallint" => Wire::Int2,
            "integer" => Wire::Int4,
            "bigint" => Wire::Int8,
            "boolean" => Wire::Bool,
            "text" | "character varying" => Wire::Text,
            "uuid" => Wire::Uuid,
            "date" => Wire::Date,
            "timestamp without time zone" => Wire::Timestamp,
            "timestamp with time zone" => Wire::TimestampTz,
            _ => return None,
        })
    }
}

/// The 11-byte signature a binary COPY stream starts with.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;

const MICROS_PER_DAY: i64 = 86_400_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Header,
    Rows,
    Done,
}

/// Reads a binary COPY stream of rows with columns `names` of types `types`, and yields the
/// CSV text (header first) that `COPY … TO STDOUT WITH (FORMAT csv, HEADER)` would have.
pub(super) struct CsvFromBinary<R> {
    input: BufReader<R>,
    names: Vec<String>,
    types: Vec<Wire>,
    stage: Stage,
    /// The CSV of the current row, and how much of it has been read.
    line: Vec<u8>,
    at: usize,
    /// A field's bytes.
    field: Vec<u8>,
}

impl<R: Read> CsvFromBinary<R> {
    pub(super) fn new(input: R, names: Vec<String>, types: Vec<Wire>) -> Self {
        CsvFromBinary {
            input: BufReader::with_capacity(1 << 16, input),
            names,
            types,
            stage: Stage::Header,
            line: Vec::with_capacity(256),
            at: 0,
            field: Vec::with_capacity(64),
        }
    }

    /// Fills `line` with the next CSV line; leaves it empty at the end of the stream.
    fn next_line(&mut self) -> io::Result<()> {
        self.line.clear();
        self.at = 0;
        match self.stage {
            Stage::Header => {
                self.read_header()?;
                let single = self.names.len() == 1;
                for (i, name) in self.names.iter().enumerate() {
                    if i > 0 {
                        self.line.push(b',');
                    }
                    csv_text(&mut self.line, name.as_bytes(), single);
                }
                self.line.push(b'\n');
                self.stage = Stage::Rows;
            }
            Stage::Rows => {
                if !self.read_row()? {
                    self.stage = Stage::Done;
                }
            }
            Stage::Done => {}
        }
        Ok(())
    }

    fn read_header(&mut self) -> io::Result<()> {
        let mut signature = [0u8; 11];
        self.input.read_exact(&mut signature)?;
        if &signature != SIGNATURE {
            return Err(invalid(
                "the stream does not start with the binary COPY signature",
            ));
        }
        let _flags = read_i32(&mut self.input)?;
        let extension = read_i32(&mut self.input)?;
        let extension =
            usize::try_from(extension).map_err(|_| invalid("negative header extension"))?;
        skip(&mut self.input, extension)
    }

    /// Formats the next row into `line`; false at the trailer.
    fn read_row(&mut self) -> io::Result<bool> {
        let count = read_i16(&mut self.input)?;
        if count == -1 {
            return Ok(false);
        }
        if usize::try_from(count).ok() != Some(self.types.len()) {
            return Err(invalid(&format!(
                "a row has {count} fields, {} were expected",
                self.types.len()
            )));
        }
        let single = self.types.len() == 1;
        for i in 0..self.types.len() {
            if i > 0 {
                self.line.push(b',');
            }
            let len = read_i32(&mut self.input)?;
            if len == -1 {
                continue; // NULL: an empty, unquoted field
            }
            let len = usize::try_from(len).map_err(|_| invalid("negative field length"))?;
            self.field.resize(len, 0);
            self.input.read_exact(&mut self.field)?;
            format_value(&mut self.line, self.types[i], &self.field, single)?;
        }
        self.line.push(b'\n');
        Ok(true)
    }
}

impl<R: Read> Read for CsvFromBinary<R> {
    /// Fills `buf` with as many rows as fit (the last one maybe in part).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            if self.at == self.line.len() {
                if self.stage == Stage::Done {
                    break;
                }
                self.next_line()?;
                continue;
            }
            let rest = &self.line[self.at..];
            let n = rest.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&rest[..n]);
            self.at += n;
            filled += n;
        }
        Ok(filled)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("binary COPY: {what}"))
}

fn read_i16(r: &mut impl Read) -> io::Result<i16> {
    let mut b = [0u8; 2];
    r.read_exact(&mut b)?;
    Ok(i16::from_be_bytes(b))
}

fn read_i32(r: &mut impl Read) -> io::Result<i32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(i32::from_be_bytes(b))
}

fn skip(r: &mut impl BufRead, mut n: usize) -> io::Result<()> {
    while n > 0 {
        let available = r.fill_buf()?.len();
        if available == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let step = available.min(n);
        r.consume(step);
        n -= step;
    }
    Ok(())
}

/// Appends one non-null value as PostgreSQL's CSV output writes it.
fn format_value(out: &mut Vec<u8>, wire: Wire, v: &[u8], single: bool) -> io::Result<()> {
    let fixed = |n: usize| -> io::Result<&[u8]> {
        if v.len() == n {
            Ok(v)
        } else {
            Err(invalid(&format!("a {wire:?} value of {} bytes", v.len())))
        }
    };
    match wire {
        Wire::Int2 => push_int(out, i16::from_be_bytes(array(fixed(2)?)) as i64),
        Wire::Int4 => push_int(out, i32::from_be_bytes(array(fixed(4)?)) as i64),
        Wire::Int8 => push_int(out, i64::from_be_bytes(array(fixed(8)?))),
        Wire::Bool => out.push(if fixed(1)?[0] != 0 { b't' } else { b'f' }),
        Wire::Text => csv_text(out, v, single),
        Wire::Uuid => push_uuid(out, fixed(16)?),
        Wire::Date => push_date(out, i32::from_be_bytes(array(fixed(4)?))),
        Wire::Timestamp => push_timestamp(out, i64::from_be_bytes(array(fixed(8)?)), false),
        Wire::TimestampTz => push_timestamp(out, i64::from_be_bytes(array(fixed(8)?)), true),
    }
    Ok(())
}

fn array<const N: usize>(v: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(v);
    a
}

fn push_int(out: &mut Vec<u8>, v: i64) {
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(digits.format(v).as_bytes());
}

/// A text value: quoted when it holds a comma, a quote, CR or LF, when it is empty (an empty
/// unquoted field is NULL), or when it is `\.` alone on its line; quotes inside are doubled.
fn csv_text(out: &mut Vec<u8>, v: &[u8], single: bool) {
    let quote = v.is_empty()
        || (single && v == b"\\.")
        || v.iter().any(|&c| matches!(c, b',' | b'"' | b'\n' | b'\r'));
    if !quote {
        out.extend_from_slice(v);
        return;
    }
    out.push(b'"');
    for &c in v {
        if c == b'"' {
            out.push(b'"');
        }
        out.push(c);
    }
    out.push(b'"');
}

fn push_uuid(out: &mut Vec<u8>, v: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in v.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[(byte >> 4) as usize]);
        out.push(HEX[(byte & 0xf) as usize]);
    }
}

/// A date, `YYYY-MM-DD` (DateStyle ISO), ` BC` for years before 1.
fn push_date(out: &mut Vec<u8>, days: i32) {
    match days {
        i32::MAX => out.extend_from_slice(b"infinity"),
        i32::MIN => out.extend_from_slice(b"-infinity"),
        _ => {
            let (year, month, day) = civil_from_days(days as i64 + PG_EPOCH_DAYS);
            push_ymd(out, year, month, day);
            push_era(out, year);
        }
    }
}

/// A timestamp, `YYYY-MM-DD HH:MM:SS[.ffffff]` with trailing zeros of the fraction dropped,
/// then `+00` for timestamptz (UTC), then ` BC` for years before 1.
fn push_timestamp(out: &mut Vec<u8>, micros: i64, utc_offset: bool) {
    match micros {
        i64::MAX => return out.extend_from_slice(b"infinity"),
        i64::MIN => return out.extend_from_slice(b"-infinity"),
        _ => {}
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let of_day = micros.rem_euclid(MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days + PG_EPOCH_DAYS);
    push_ymd(out, year, month, day);
    let seconds = of_day / 1_000_000;
    let fraction = of_day % 1_000_000;
    out.push(b' ');
    push_two(out, seconds / 3600);
    out.push(b':');
    push_two(out, seconds / 60 % 60);
    out.push(b':');
    push_two(out, seconds % 60);
    if fraction != 0 {
        let mut digits = [b'0'; 6];
        let mut rest = fraction;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let kept = 6 - digits.iter().rev().take_while(|&&d| d == b'0').count();
        out.push(b'.');
        out.extend_from_slice(&digits[..kept]);
    }
    if utc_offset {
        out.extend_from_slice(b"+00");
    }
    push_era(out, year);
}

/// `YYYY-MM-DD` of an astronomical year (0 is 1 BC), the year in at least four digits.
fn push_ymd(out: &mut Vec<u8>, year: i64, month: u32, day: u32) {
    let shown = if year <= 0 { 1 - year } else { year };
    if shown < 10_000 {
        push_two(out, shown / 100);
        push_two(out, shown % 100);
    } else {
        push_int(out, shown);
    }
    out.push(b'-');
    push_two(out, month as i64);
    out.push(b'-');
    push_two(out, day as i64);
}

fn push_era(out: &mut Vec<u8>, year: i64) {
    if year <= 0 {
        out.extend_from_slice(b" BC");
    }
}

fn push_two(out: &mut Vec<u8>, v: i64) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// (year, month, day) in the proleptic Gregorian calendar of a count of days since
/// 1970-01-01; years are astronomical (0 is 1 BC). Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(wire: Wire, v: &[u8]) -> String {
        let mut out = Vec::new();
        format_value(&mut out, wire, v, false).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn days_map_to_gregorian_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(PG_EPOCH_DAYS), (2000, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-719_528), (0, 1, 1));
    }

    #[test]
    fn values_format_as_postgres_writes_them() {
        assert_eq!(text(Wire::Int8, &(-42i64).to_be_bytes()), "-42");
        assert_eq!(text(Wire::Bool, &[1]), "t");
        assert_eq!(text(Wire::Text, b"a,b"), "\"a,b\"");
        assert_eq!(text(Wire::Text, b"say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(text(Wire::Text, b""), "\"\"");
        assert_eq!(text(Wire::Date, &0i32.to_be_bytes()), "2000-01-01");
        assert_eq!(
            text(Wire::TimestampTz, &1_500_000i64.to_be_bytes()),
            "2000-01-01 00:00:01.5+00"
        );
        assert_eq!(
            text(Wire::Timestamp, &(-1i64).to_be_bytes()),
            "1999-12-31 23:59:59.999999"
        );
        assert_eq!(text(Wire::Date, &i32::MAX.to_be_bytes()), "infinity");
    }

    #[test]
    fn a_short_value_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        assert!(format_value(&mut out, Wire::Int8, &[1, 2], false).is_err());
    }
}
