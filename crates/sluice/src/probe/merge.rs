//! The comparison of two captures: a one-pass merge of two key-ordered CSV streams, record by
//! record.
//!
//! Records are compared as the raw bytes PostgreSQL's CSV gives them (so a NULL, an empty
//! field, and `""`, an empty string, stay different), and only the key fields are unquoted, to
//! follow the order the rows were captured in. A record ends at a newline outside quotes; a
//! quoted field may hold newlines.

use super::{KeyOrder, RowDiff};
use std::cmp::Ordering;
use std::io::{self, BufRead, BufReader, Read};

/// The records of a CSV stream, one at a time, with their key fields unquoted.
struct Records<R> {
    input: BufReader<R>,
    key_len: usize,
    /// The current record without its final newline.
    record: Vec<u8>,
    /// The key fields' unquoted bytes, one after the other, and where each ends.
    keys: Vec<u8>,
    key_ends: Vec<usize>,
}

impl<R: Read> Records<R> {
    fn new(input: R, key_len: usize) -> Self {
        Records {
            input: BufReader::with_capacity(1 << 16, input),
            key_len,
            record: Vec::with_capacity(256),
            keys: Vec::with_capacity(64),
            key_ends: Vec::with_capacity(key_len),
        }
    }

    /// Reads the next record; false at the end of the stream.
    fn advance(&mut self) -> io::Result<bool> {
        self.record.clear();
        loop {
            let n = self.input.read_until(b'\n', &mut self.record)?;
            if n == 0 {
                if self.record.is_empty() {
                    return Ok(false);
                }
                if !balanced(&self.record) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the CSV ends inside a quoted field",
                    ));
                }
                break;
            }
            if balanced(&self.record) {
                break;
            }
        }
        if self.record.last() == Some(&b'\n') {
            self.record.pop();
        }
        self.split_keys();
        Ok(true)
    }

    fn split_keys(&mut self) {
        self.keys.clear();
        self.key_ends.clear();
        let mut at = 0;
        for _ in 0..self.key_len {
            at = unquote_field(&self.record, at, &mut self.keys);
            self.key_ends.push(self.keys.len());
            at += 1; // the comma
        }
    }

    fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.key_ends[i - 1] };
        &self.keys[start..self.key_ends[i]]
    }
}

/// Whether the quotes in a (partial) record are balanced: inside a quoted field a quote is
/// doubled, so a record is complete when it holds an even number of them.
fn balanced(record: &[u8]) -> bool {
    record.iter().filter(|&&b| b == b'"').count() % 2 == 0
}

/// Appends the unquoted value of the field starting at `at` to `out`; returns where the field
/// ends (its comma, or the end of the record).
fn unquote_field(record: &[u8], mut at: usize, out: &mut Vec<u8>) -> usize {
    if record.get(at) != Some(&b'"') {
        let end = record[at.min(record.len())..]
            .iter()
            .position(|&b| b == b',')
            .map_or(record.len(), |p| at + p);
        out.extend_from_slice(&record[at.min(end)..end]);
        return end;
    }
    at += 1;
    while at < record.len() {
        match (record[at], record.get(at + 1)) {
            (b'"', Some(b'"')) => {
                out.push(b'"');
                at += 2;
            }
            (b'"', _) => return at + 1,
            (b, _) => {
                out.push(b);
                at += 1;
            }
        }
    }
    at
}

/// Merges two key-ordered CSV streams (each with a header) in one pass.
pub(super) fn compare_readers<A: Read, B: Read>(
    pre: A,
    post: B,
    key_len: usize,
    order: KeyOrder,
) -> io::Result<RowDiff> {
    let mut a = Records::new(pre, key_len);
    let mut b = Records::new(post, key_len);
    // the headers
    a.advance()?;
    b.advance()?;
    let mut has_a = a.advance()?;
    let mut has_b = b.advance()?;
    let mut diff = RowDiff::default();
    while has_a || has_b {
        let side = match (has_a, has_b) {
            (true, true) => compare_keys(&a, &b, order),
            (true, false) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match side {
            Ordering::Less => {
                diff.removed += 1;
                has_a = a.advance()?;
            }
            Ordering::Greater => {
                diff.added += 1;
                has_b = b.advance()?;
            }
            Ordering::Equal => {
                if a.record == b.record {
                    diff.unchanged += 1;
                } else {
                    diff.changed += 1;
                }
                has_a = a.advance()?;
                has_b = b.advance()?;
            }
        }
    }
    Ok(diff)
}

/// Key order as PostgreSQL sorted the captures.
fn compare_keys<A: Read, B: Read>(a: &Records<A>, b: &Records<B>, order: KeyOrder) -> Ordering {
    (0..a.key_len)
        .map(|i| {
            let (x, y) = (a.key(i), b.key(i));
            match order {
                KeyOrder::Bytes => x.cmp(y),
                KeyOrder::Numeric => parse_int(x).cmp(&parse_int(y)).then(x.cmp(y)),
            }
        })
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

/// A decimal integer as PostgreSQL prints one; anything else sorts first.
fn parse_int(field: &[u8]) -> i64 {
    let (negative, digits) = match field.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, field),
    };
    if digits.is_empty() {
        return i64::MIN;
    }
    let mut magnitude: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return i64::MIN;
        }
        magnitude = match magnitude
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(d - b'0')))
        {
            Some(m) => m,
            None => return i64::MIN,
        };
    }
    if negative {
        i64::try_from(-(i128::from(magnitude))).unwrap_or(i64::MIN)
    } else {
        i64::try_from(magnitude).unwrap_or(i64::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(pre: &str, post: &str, order: KeyOrder) -> RowDiff {
        compare_readers(pre.as_bytes(), post.as_bytes(), 1, order).unwrap()
    }

    #[test]
    fn merge_counts_changed_added_removed() {
        let want = RowDiff {
            changed: 1,
            added: 1,
            removed: 1,
            unchanged: 2,
        };
        // keys in byte order, as ORDER BY id::text COLLATE "C" gives them: 1, 10, 2, 3
        let pre = "id,u\n1,a\n10,b\n2,c\n3,d\n";
        let post = "id,u\n1,a\n10,x\n3,d\n4,e\n";
        assert_eq!(diff(pre, post, KeyOrder::Bytes), want);
        // the same rows in integer order, as ORDER BY id gives them
        let pre = "id,u\n1,a\n2,c\n3,d\n10,b\n";
        let post = "id,u\n1,a\n3,d\n4,e\n10,x\n";
        assert_eq!(diff(pre, post, KeyOrder::Numeric), want);
        // byte order would misread the integer order
        assert_ne!(diff(pre, post, KeyOrder::Bytes), want);
    }

    #[test]
    fn null_and_empty_text_differ_and_quoted_newlines_stay_in_their_record() {
        let pre = "id,u\n1,\n2,\"two\nlines\"\n3,\"a,b\"\n";
        let post = "id,u\n1,\"\"\n2,\"two\nlines\"\n3,\"a,b\"\n";
        let d = diff(pre, post, KeyOrder::Numeric);
        assert_eq!((d.changed, d.unchanged, d.added, d.removed), (1, 2, 0, 0));
    }

    #[test]
    fn quoted_keys_are_compared_unquoted() {
        // "a,b" sorts between "a" and "b" by its text, not by its quote
        let pre = "k,u\na,1\n\"a,b\",2\nb,3\n";
        let post = "k,u\na,1\n\"a,b\",9\nb,3\n";
        let d = diff(pre, post, KeyOrder::Bytes);
        assert_eq!((d.changed, d.unchanged), (1, 2));
    }

    #[test]
    fn integers_parse_like_postgres_prints_them() {
        assert_eq!(parse_int(b"-9223372036854775808"), i64::MIN);
        assert_eq!(parse_int(b"9223372036854775807"), i64::MAX);
        assert_eq!(parse_int(b"-42"), -42);
        assert_eq!(parse_int(b"x"), i64::MIN);
        assert_eq!(parse_int(b"99999999999999999999"), i64::MIN);
    }

    #[test]
    fn a_csv_ending_inside_quotes_is_an_error() {
        assert!(compare_readers(
            "id,u\n1,\"open".as_bytes(),
            "id,u\n".as_bytes(),
            1,
            KeyOrder::Numeric
        )
        .is_err());
    }
}
