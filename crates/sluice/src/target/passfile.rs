//! The password file (`passfile`, `PGPASSFILE`, else `~/.pgpass`) with libpq's rules: lines of
//! `host:port:database:user:password`, `*` matching anything, `\` escaping `:` and `\`, `#`
//! comments, the first matching line winning; a file that group or others may read is ignored
//! with a warning, as libpq does.

use std::path::Path;

/// What a connection attempt is matched on.
#[derive(Debug, Clone, Copy)]
pub struct Want<'a> {
    /// The host as given (`localhost` for the default socket folder, as libpq matches it).
    pub host: &'a str,
    pub port: &'a str,
    pub database: &'a str,
    pub user: &'a str,
}

/// Why a passfile was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Group or others may read it: ignored, as libpq does.
    TooOpen {
        path: String,
        mode: u32,
    },
    NotAFile {
        path: String,
    },
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skipped::TooOpen { path, mode } => write!(
                f,
                "password file \"{path}\" has group or world access (mode {mode:04o}); permissions should be u=rw (0600) or less — it is ignored"
            ),
            Skipped::NotAFile { path } => {
                write!(f, "password file \"{path}\" is not a plain file — it is ignored")
            }
        }
    }
}

/// The password the file at `path` holds for `want`; `Err` when the file exists but may not be
/// used. A missing file is `Ok(None)`.
pub(crate) fn lookup(path: &Path, want: Want<'_>) -> Result<Option<String>, Skipped> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display().to_string();
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Err(Skipped::NotAFile { path: shown });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Skipped::TooOpen { path: shown, mode });
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    Ok(find(&text, want))
}

/// The first line of `text` matching `want`.
pub fn find(text: &str, want: Want<'_>) -> Option<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(fields)
        .find(|f| {
            matches(&f[0], want.host)
                && matches(&f[1], want.port)
                && matches(&f[2], want.database)
                && matches(&f[3], want.user)
        })
        .map(|mut f| f.swap_remove(4))
}

fn matches(field: &str, value: &str) -> bool {
    field == "*" || field == value
}

/// The five fields of a line, unescaped; `None` for a line with fewer.
fn fields(line: &str) -> Option<Vec<String>> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        let last = fields.len() - 1;
        match c {
            '\\' => fields[last].extend(chars.next()),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields[last].push(c),
        }
    }
    (fields.len() == 5).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# comment line: a:b:c:d:e
db.example:5432:prod:app:first
db.example:*:*:app:second
*:*:*:ops:ops\\:pw\\\\x
localhost:5432:*:*:local
h\\:colon:5432:*:*:escaped
short:line
";

    fn want<'a>(host: &'a str, port: &'a str, database: &'a str, user: &'a str) -> Want<'a> {
        Want {
            host,
            port,
            database,
            user,
        }
    }

    #[test]
    fn first_matching_line_with_wildcards_and_escapes() {
        assert_eq!(
            find(FILE, want("db.example", "5432", "prod", "app")).as_deref(),
            Some("first")
        );
        assert_eq!(
            find(FILE, want("db.example", "6543", "other", "app")).as_deref(),
            Some("second")
        );
        assert_eq!(
            find(FILE, want("anything", "1", "x", "ops")).as_deref(),
            Some("ops:pw\\x")
        );
        assert_eq!(
            find(FILE, want("localhost", "5432", "x", "y")).as_deref(),
            Some("local")
        );
        assert_eq!(
            find(FILE, want("h:colon", "5432", "x", "y")).as_deref(),
            Some("escaped")
        );
        assert_eq!(find(FILE, want("elsewhere", "5432", "prod", "app")), None);
        assert_eq!(
            find(FILE, want("a", "b", "c", "d")),
            None,
            "a comment never matches"
        );
    }

    #[test]
    fn a_file_others_may_read_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:pw\n").unwrap();
        let any = want("h", "1", "d", "u");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = lookup(&path, any).unwrap_err();
        assert!(err.to_string().contains("group or world access"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(lookup(&path, any).unwrap().as_deref(), Some("pw"));
        assert_eq!(lookup(&dir.path().join("absent"), any).unwrap(), None);
    }
}
