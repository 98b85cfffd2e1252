//! Connection service files (`service=NAME` or `PGSERVICE`): `PGSERVICEFILE` (or the
//! `servicefile` keyword), else `~/.pg_service.conf`, then `PGSYSCONFDIR/pg_service.conf`; the
//! first file holding the service is the one used, as in libpq. Its keywords fill only what the
//! connection string did not set.

use super::conninfo::Pairs;
use super::keyword::Keyword;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("definition of service \"{name}\" not found (looked in {})", looked.join(", "))]
    NotFound { name: String, looked: Vec<String> },
    #[error("syntax error in service file \"{file}\", line {line}: {what}")]
    Syntax {
        file: String,
        line: usize,
        what: String,
    },
    #[error("cannot read service file \"{file}\": {message}")]
    Read { file: String, message: String },
}

/// The files to look in, in order.
pub fn files(
    servicefile: Option<&str>,
    sysconfdir: Option<&str>,
    home: Option<&Path>,
) -> Vec<PathBuf> {
    let mut files = Vec::new();
    match servicefile {
        Some(f) => files.push(PathBuf::from(f)),
        None => files.extend(home.map(|h| h.join(".pg_service.conf"))),
    }
    let sysconf = sysconfdir
        .filter(|d| !d.is_empty())
        .unwrap_or("/etc/postgresql-common");
    files.push(Path::new(sysconf).join("pg_service.conf"));
    files
}

/// The keywords service `name` sets, from the first of `files` that defines it.
pub fn read(name: &str, files: &[PathBuf]) -> Result<(PathBuf, Pairs), ServiceError> {
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ServiceError::Read {
                    file: file.display().to_string(),
                    message: e.to_string(),
                })
            }
        };
        if let Some(pairs) = section(&text, name, &file.display().to_string())? {
            return Ok((file.clone(), pairs));
        }
    }
    Err(ServiceError::NotFound {
        name: name.to_string(),
        looked: files.iter().map(|f| f.display().to_string()).collect(),
    })
}

/// The keywords of `[name]` in one file's text, or `None` when it has no such section.
fn section(text: &str, name: &str, file: &str) -> Result<Option<Pairs>, ServiceError> {
    let mut found: Option<Pairs> = None;
    let mut inside = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(group) = line.strip_prefix('[') {
            if found.is_some() && inside {
                break;
            }
            inside = group.strip_suffix(']') == Some(name);
            if inside {
                found = Some(Pairs::new());
            }
            continue;
        }
        let Some(pairs) = found.as_mut().filter(|_| inside) else {
            continue;
        };
        let syntax = |what: String| ServiceError::Syntax {
            file: file.to_string(),
            line: i + 1,
            what,
        };
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| syntax("expected keyword=value".into()))?;
        match Keyword::from_name(key) {
            Some(Keyword::Service) => {
                return Err(syntax(
                    "nested service specifications are not supported".into(),
                ))
            }
            Some(k) => pairs.push((k, value.to_string())),
            None => return Err(syntax(format!("unknown keyword \"{key}\""))),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_file_defining_the_service_wins() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.conf");
        let system = dir.path().join("system.conf");
        std::fs::write(
            &user,
            "# mine\n[prod]\nhost=db1\nport=5433\n\n[other]\nhost=x\n",
        )
        .unwrap();
        std::fs::write(
            &system,
            "[prod]\nhost=sys\n[sysonly]\ndbname=d\nsslmode=verify-full\n",
        )
        .unwrap();
        let files = vec![user, system];
        assert_eq!(
            read("prod", &files).unwrap().1,
            vec![
                (Keyword::Host, "db1".into()),
                (Keyword::Port, "5433".into())
            ]
        );
        assert_eq!(
            read("sysonly", &files).unwrap().1,
            vec![
                (Keyword::Dbname, "d".into()),
                (Keyword::Sslmode, "verify-full".into())
            ]
        );
        let err = read("nope", &files).unwrap_err();
        assert!(err.to_string().contains("\"nope\" not found"), "{err}");
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.conf");
        std::fs::write(&file, "[a]\nhost=x\nhots=y\n").unwrap();
        let err = read("a", &[file]).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("\"hots\""), "{err}");
    }
}
