//! Where PostgreSQL's parser stopped in a text it could not parse: the error cursor, which
//! PostgreSQL reports as `POSITION` and psql draws as `^`. The `pg_query` crate keeps only the
//! message of a parse error; libpg_query (which that crate links in) also returns `cursorpos`,
//! so this module asks libpg_query's C interface directly, on the error path only.

use std::ffi::{c_char, c_int, CString};

/// libpg_query's `PgQueryError` (pg_query.h).
#[repr(C)]
struct PgQueryError {
    message: *mut c_char,
    funcname: *mut c_char,
    filename: *mut c_char,
    lineno: c_int,
    /// 1-based character position of the error in the input; 0 when there is none.
    cursorpos: c_int,
    context: *mut c_char,
}

/// libpg_query's `PgQueryParseResult` (pg_query.h).
#[repr(C)]
struct PgQueryParseResult {
    parse_tree: *mut c_char,
    stderr_buffer: *mut c_char,
    error: *mut PgQueryError,
}

extern "C" {
    fn pg_query_parse(input: *const c_char) -> PgQueryParseResult;
    fn pg_query_free_parse_result(result: PgQueryParseResult);
}

/// The byte offset in `text` of the character PostgreSQL's parse error points at, or `None`
/// when `text` parses, holds a NUL byte, or the error carries no position.
pub(crate) fn error_offset(text: &str) -> Option<usize> {
    let input = CString::new(text).ok()?;
    // SAFETY: `input` is a NUL-terminated string that outlives the call; the result is freed
    // exactly once, by libpg_query's own function, after its error (when any) has been read.
    let cursorpos = unsafe {
        let result = pg_query_parse(input.as_ptr());
        let cursorpos = match result.error.as_ref() {
            Some(error) => error.cursorpos,
            None => 0,
        };
        pg_query_free_parse_result(result);
        cursorpos
    };
    let position = usize::try_from(cursorpos).ok().filter(|&p| p > 0)?;
    // PostgreSQL counts characters from 1; a cursor past the last one is the end of the input
    Some(
        text.char_indices()
            .nth(position - 1)
            .map_or(text.len(), |(offset, _)| offset),
    )
}

#[cfg(test)]
mod tests {
    use super::error_offset;

    #[test]
    fn the_cursor_is_a_byte_offset_counted_in_characters() {
        let text = "SELECT 'αβγ';\nCREATE TABLE t (a int;\n";
        // at the `;` where `)` was due, past three two-byte characters
        assert_eq!(error_offset(text), text.find("int;").map(|i| i + 3));
        assert_eq!(error_offset("SELECT 1"), None);
        let open = "SELECT (1";
        assert_eq!(error_offset(open), Some(open.len()));
    }
}
