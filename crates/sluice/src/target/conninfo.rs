//! `--target` as libpq reads it: a keyword/value string (`host=db port=5432 sslmode=require`,
//! values optionally single-quoted with `\` escapes) or a URL
//! (`postgresql://user@host1:5432,host2/db?sslmode=verify-full`, percent-encoded). Unknown
//! keywords are errors that name themselves; a password never appears in an error.

use super::keyword::Keyword;

/// The keywords a string sets, in the order it sets them (a later one wins, as in libpq).
pub type Pairs = Vec<(Keyword, String)>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConninfoError {
    #[error("unknown connection keyword \"{0}\" (libpq's keywords are listed in SPEC §10)")]
    UnknownKeyword(String),
    #[error("missing \"=\" after \"{keyword}\" in the connection string")]
    MissingEquals { keyword: String },
    #[error("unterminated quoted value of \"{keyword}\" in the connection string")]
    UnterminatedQuote { keyword: String },
    #[error("invalid connection URL: {0}")]
    BadUrl(String),
    #[error("invalid percent-encoding in the connection URL: {0}")]
    BadPercent(String),
}

/// Parses `--target`: a URL when it starts with `postgresql://` or `postgres://`.
pub fn parse(text: &str) -> Result<Pairs, ConninfoError> {
    let trimmed = text.trim_start();
    for prefix in ["postgresql://", "postgres://"] {
        if let Some(rest) = trimmed.strip_prefix(prefix) {
            return parse_url(rest);
        }
    }
    parse_keywords(text)
}

fn keyword(name: &str) -> Result<Keyword, ConninfoError> {
    Keyword::from_name(name).ok_or_else(|| ConninfoError::UnknownKeyword(name.to_string()))
}

/// `keyword = value` pairs separated by whitespace.
fn parse_keywords(text: &str) -> Result<Pairs, ConninfoError> {
    let mut pairs = Pairs::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            name.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(ConninfoError::MissingEquals { keyword: name });
        }
        let key = keyword(&name)?;
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(ConninfoError::UnterminatedQuote { keyword: name }),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// What follows `postgresql://`: `[user[:password]@][netloc][/dbname][?k=v&…]`.
fn parse_url(rest: &str) -> Result<Pairs, ConninfoError> {
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], Some(&before_query[i + 1..])),
        None => (before_query, None),
    };
    let mut pairs = Pairs::new();
    let hostlist = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                pairs.push((Keyword::User, decode(user)?));
            }
            if let Some(p) = password {
                pairs.push((
                    Keyword::Password,
                    decode(p).map_err(|_| {
                        ConninfoError::BadPercent("in the password (not shown)".into())
                    })?,
                ));
            }
            hosts
        }
        None => authority,
    };
    let (hosts, ports) = split_hosts(hostlist)?;
    if hosts.iter().any(|h| !h.is_empty()) {
        pairs.push((Keyword::Host, hosts.join(",")));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        pairs.push((Keyword::Port, ports.join(",")));
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        pairs.push((Keyword::Dbname, decode(db)?));
    }
    for param in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (name, value) = param.split_once('=').ok_or_else(|| {
            ConninfoError::BadUrl(format!("query parameter \"{param}\" has no \"=\""))
        })?;
        let (name, value) = (decode(name)?, decode(value)?);
        // libpq takes JDBC's ssl=true as sslmode=require
        if name == "ssl" && value == "true" {
            pairs.push((Keyword::Sslmode, "require".into()));
            continue;
        }
        pairs.push((keyword(&name)?, value));
    }
    Ok(pairs)
}

/// `host[:port]` items separated by commas; IPv6 addresses in brackets.
fn split_hosts(list: &str) -> Result<(Vec<String>, Vec<String>), ConninfoError> {
    let (mut hosts, mut ports) = (Vec::new(), Vec::new());
    if list.is_empty() {
        return Ok((hosts, ports));
    }
    for item in list.split(',') {
        let (host, port) = if let Some(v6) = item.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(|| {
                ConninfoError::BadUrl(format!("unterminated IPv6 address \"{item}\""))
            })?;
            let port = match after {
                "" => "",
                p => p.strip_prefix(':').ok_or_else(|| {
                    ConninfoError::BadUrl(format!("unexpected \"{p}\" after an IPv6 address"))
                })?,
            };
            (addr.to_string(), port)
        } else {
            match item.rsplit_once(':') {
                Some((h, p)) => (decode(h)?, p),
                None => (decode(item)?, ""),
            }
        };
        if !port.is_empty() && port.parse::<u16>().is_err() {
            return Err(ConninfoError::BadUrl(format!("invalid port \"{port}\"")));
        }
        hosts.push(host);
        ports.push(port.to_string());
    }
    Ok((hosts, ports))
}

fn decode(text: &str) -> Result<String, ConninfoError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ConninfoError::BadPercent(format!("\"{text}\"")))?;
            if hex == 0 {
                return Err(ConninfoError::BadPercent("%00 is not allowed".into()));
            }
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ConninfoError::BadPercent(format!("\"{text}\" is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Keyword::*;

    fn pairs(text: &str) -> Pairs {
        parse(text).unwrap()
    }

    #[test]
    fn keyword_value_strings_with_quotes_and_escapes() {
        assert_eq!(
            pairs(
                "host=db.example  port = 5433 dbname='my db' password='it\\'s' sslmode=verify-full"
            ),
            vec![
                (Host, "db.example".into()),
                (Port, "5433".into()),
                (Dbname, "my db".into()),
                (Password, "it's".into()),
                (Sslmode, "verify-full".into()),
            ]
        );
        assert_eq!(
            pairs("options=-c\\ search_path=x"),
            vec![(Options, "-c search_path=x".into())]
        );
        assert_eq!(pairs("password=''"), vec![(Password, String::new())]);
    }

    #[test]
    fn an_unknown_keyword_names_itself() {
        let err = parse("host=x sslrootcrt=/ca.pem").unwrap_err();
        assert_eq!(err, ConninfoError::UnknownKeyword("sslrootcrt".into()));
        assert!(err.to_string().contains("\"sslrootcrt\""));
        let err = parse("postgresql://h/db?sslmod=require").unwrap_err();
        assert!(err.to_string().contains("\"sslmod\""), "{err}");
    }

    #[test]
    fn errors_never_show_a_password() {
        for text in [
            "password='s3cret",
            "host=x password=s3cret bogus",
            "postgresql://u:s3cret%zz@h/",
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn urls_with_users_hosts_ports_and_parameters() {
        assert_eq!(
            pairs("postgresql://app:p%40ss@db1:5433,[::1]:5434,db3/prod%20db?sslmode=require&application_name=x"),
            vec![
                (User, "app".into()),
                (Password, "p@ss".into()),
                (Host, "db1,::1,db3".into()),
                (Port, "5433,5434,".into()),
                (Dbname, "prod db".into()),
                (Sslmode, "require".into()),
                (ApplicationName, "x".into()),
            ]
        );
        assert_eq!(
            pairs("postgres://%2Fvar%2Frun%2Fpostgresql/db"),
            vec![(Host, "/var/run/postgresql".into()), (Dbname, "db".into())]
        );
        assert_eq!(
            pairs("postgresql:///db?host=/tmp&port=5999&ssl=true"),
            vec![
                (Dbname, "db".into()),
                (Host, "/tmp".into()),
                (Port, "5999".into()),
                (Sslmode, "require".into()),
            ]
        );
        assert_eq!(pairs("postgresql://"), vec![]);
    }
}
