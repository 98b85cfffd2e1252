//! The OpenSSH `allowed_signers` file, as `ssh-keygen -Y verify` and git read it: which public
//! keys may sign for which principals, in which namespaces, and when.
//!
//! Each line is `PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]`; blank lines and lines starting
//! with `#` are ignored. `PRINCIPALS` is a comma-separated pattern list (`*` and `?` wildcards,
//! `!` negation), matched as OpenSSH's `match_pattern_list` does, case-sensitively. `OPTIONS` is a
//! comma-separated list of `cert-authority`, `namespaces="PATTERN-LIST"`,
//! `valid-after="TIME"` and `valid-before="TIME"` (names case-insensitive, values quoted or not).
//!
//! Two differences from OpenSSH, both on the safe side:
//! - a `TIME` (`YYYYMMDD[HHMM[SS]][Z]`) is read as UTC; OpenSSH reads it in the local time zone
//!   unless it ends in `Z`. Write the `Z` to mean the same thing to both;
//! - `cert-authority` lines are kept but never match: sluice verifies signatures made by plain
//!   keys, not by certificates, so a key trusted only as a certificate authority allows nothing.

use ssh_key::{Algorithm, PublicKey};
use time::{Date, Month, OffsetDateTime, Time};

/// A parsed `allowed_signers` file.
#[derive(Debug, Clone, Default)]
pub struct AllowedSigners {
    pub entries: Vec<AllowedSigner>,
}

/// One line of the file.
#[derive(Debug, Clone)]
pub struct AllowedSigner {
    /// 1-based line number in the file.
    pub line: usize,
    /// Principal patterns, e.g. `alice@example.com`, `*@example.com`, `!mallory@example.com`.
    pub principals: Vec<String>,
    /// `cert-authority`: the key signs certificates; it never matches a plain key here.
    pub cert_authority: bool,
    /// `namespaces=`: namespace patterns the key may sign in; `None` means any namespace.
    pub namespaces: Option<Vec<String>>,
    pub valid_after: Option<OffsetDateTime>,
    pub valid_before: Option<OffsetDateTime>,
    pub key: PublicKey,
}

/// A line of the file that cannot be read, with what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct AllowedSignersError {
    /// 1-based line number.
    pub line: usize,
    pub problem: String,
}

/// The option names OpenSSH accepts in an allowed_signers line.
const OPTION_NAMES: &str =
    "cert-authority, namespaces=\"…\", valid-after=\"…\" or valid-before=\"…\"";

/// Parses the text of an allowed_signers file.
pub fn parse(text: &str) -> Result<AllowedSigners, AllowedSignersError> {
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let entry = parse_line(index + 1, line).map_err(|problem| AllowedSignersError {
            line: index + 1,
            problem,
        })?;
        entries.push(entry);
    }
    Ok(AllowedSigners { entries })
}

impl AllowedSigners {
    /// The plain keys that may sign as `principal` in `namespace` at the moment `at`: the
    /// principal matches the line's patterns, the line's `namespaces` (if any) match the
    /// namespace, and `at` lies within `valid-after`..=`valid-before`. `cert-authority` lines
    /// never match.
    pub(crate) fn keys_for(
        &self,
        principal: &str,
        namespace: &str,
        at: OffsetDateTime,
    ) -> Vec<&PublicKey> {
        self.entries
            .iter()
            .filter(|e| e.allows(principal, namespace, at))
            .map(|e| &e.key)
            .collect()
    }

    /// Why [`AllowedSigners::keys_for`] finds no key, in one sentence naming the first
    /// condition that excluded every line listing the principal.
    pub(crate) fn explain_no_key(
        &self,
        principal: &str,
        namespace: &str,
        at: OffsetDateTime,
    ) -> String {
        let listed: Vec<&AllowedSigner> = self
            .entries
            .iter()
            .filter(|e| matches_pattern_list(principal, &e.principals))
            .collect();
        if listed.is_empty() {
            return format!("signer {principal} is not in allowed_signers");
        }
        let plain: Vec<&AllowedSigner> = listed.into_iter().filter(|e| !e.cert_authority).collect();
        if plain.is_empty() {
            return format!(
                "allowed_signers lists {principal} only as a cert-authority, which sluice does not support"
            );
        }
        let in_namespace: Vec<&AllowedSigner> = plain
            .into_iter()
            .filter(|e| e.allows_namespace(namespace))
            .collect();
        if in_namespace.is_empty() {
            return format!(
                "allowed_signers does not let {principal} sign in namespace \"{namespace}\" (see its namespaces= option)"
            );
        }
        format!(
            "allowed_signers lists no key for {principal} valid at {} (see its valid-after/valid-before options)",
            super::format_utc(at)
        )
    }
}

impl AllowedSigner {
    fn allows(&self, principal: &str, namespace: &str, at: OffsetDateTime) -> bool {
        !self.cert_authority
            && matches_pattern_list(principal, &self.principals)
            && self.allows_namespace(namespace)
            && self.valid_at(at)
    }

    fn allows_namespace(&self, namespace: &str) -> bool {
        match &self.namespaces {
            Some(patterns) => matches_pattern_list(namespace, patterns),
            None => true,
        }
    }

    fn valid_at(&self, at: OffsetDateTime) -> bool {
        let too_early = matches!(self.valid_after, Some(after) if at < after);
        let too_late = matches!(self.valid_before, Some(before) if at > before);
        !too_early && !too_late
    }
}

/// Parses one non-blank, non-comment line (already trimmed).
fn parse_line(number: usize, line: &str) -> Result<AllowedSigner, String> {
    let (principals_field, rest) = split_field(line)?;
    let principals_field = principals_field.trim_matches('"');
    if principals_field.is_empty() {
        return Err(
            "expected PRINCIPALS [OPTIONS] KEYTYPE BASE64, found an empty principal list".into(),
        );
    }
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Err(format!(
            "expected a key (KEYTYPE BASE64) after the principals `{principals_field}`, found nothing"
        ));
    }
    let (options, key_text) = if starts_with_options(rest) {
        let (options_field, after) = split_field(rest)?;
        (parse_options(options_field)?, after.trim_start())
    } else {
        (Options::default(), rest)
    };
    Ok(AllowedSigner {
        line: number,
        principals: principals_field.split(',').map(str::to_string).collect(),
        cert_authority: options.cert_authority,
        namespaces: options.namespaces,
        valid_after: options.valid_after,
        valid_before: options.valid_before,
        key: parse_key(key_text)?,
    })
}

/// Splits off the first field: up to the first whitespace outside double quotes.
fn split_field(text: &str) -> Result<(&str, &str), String> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Ok((&text[..i], &text[i..])),
            _ => {}
        }
    }
    if quoted {
        return Err(format!("expected a closing `\"` in `{text}`"));
    }
    Ok((text, ""))
}

/// Whether the field after the principals is an options list rather than a key type.
fn starts_with_options(rest: &str) -> bool {
    let first = rest.split_whitespace().next().unwrap_or_default();
    first.contains('=') || first.contains(',') || first.eq_ignore_ascii_case("cert-authority")
}

/// `KEYTYPE BASE64 [COMMENT]`.
fn parse_key(text: &str) -> Result<PublicKey, String> {
    let mut words = text.split_whitespace();
    let (Some(kind), Some(base64)) = (words.next(), words.next()) else {
        return Err(format!("expected a key (KEYTYPE BASE64), found `{text}`"));
    };
    if Algorithm::new(kind).is_err() {
        return Err(format!(
            "expected options ({OPTION_NAMES}) or a key type such as ssh-ed25519, found `{kind}`"
        ));
    }
    PublicKey::from_openssh(&format!("{kind} {base64}"))
        .map_err(|err| format!("expected a valid {kind} public key after the key type: {err}"))
}

#[derive(Debug, Default)]
struct Options {
    cert_authority: bool,
    namespaces: Option<Vec<String>>,
    valid_after: Option<OffsetDateTime>,
    valid_before: Option<OffsetDateTime>,
}

/// Parses `opt[,opt…]`, as OpenSSH's `sshsigopt_parse` does.
fn parse_options(field: &str) -> Result<Options, String> {
    let mut options = Options::default();
    let mut rest = field;
    loop {
        let (name, value, after) = next_option(rest)?;
        apply_option(&mut options, &name, value)?;
        match after.strip_prefix(',') {
            Some("") => {
                return Err(format!(
                    "expected another option after the last `,` in `{field}`"
                ))
            }
            Some(next) => rest = next,
            None if after.is_empty() => break,
            None => return Err(format!("expected `,` between options, found `{after}`")),
        }
    }
    if let (Some(after), Some(before)) = (options.valid_after, options.valid_before) {
        if before <= after {
            return Err("valid-before must be later than valid-after".into());
        }
    }
    Ok(options)
}

/// One `name` or `name=value` (value quoted, or up to the next `,`); returns the rest.
fn next_option(text: &str) -> Result<(String, Option<String>, &str), String> {
    let name_end = text.find(['=', ',']).unwrap_or(text.len());
    let name = text[..name_end].to_ascii_lowercase();
    let Some(value_text) = text[name_end..].strip_prefix('=') else {
        return Ok((name, None, &text[name_end..]));
    };
    let Some(quoted) = value_text.strip_prefix('"') else {
        let end = value_text.find(',').unwrap_or(value_text.len());
        return Ok((
            name,
            Some(value_text[..end].to_string()),
            &value_text[end..],
        ));
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((name, Some(value), &quoted[i + 1..])),
            '\\' if quoted[i + 1..].starts_with('"') => {
                value.push('"');
                chars.next();
            }
            c => value.push(c),
        }
    }
    Err(format!("expected a closing `\"` for the value of {name}"))
}

fn apply_option(options: &mut Options, name: &str, value: Option<String>) -> Result<(), String> {
    match (name, value) {
        ("cert-authority", None) => options.cert_authority = true,
        ("namespaces", Some(value)) => set_once(
            &mut options.namespaces,
            name,
            value.split(',').map(str::to_string).collect(),
        )?,
        ("valid-after", Some(value)) => {
            set_once(&mut options.valid_after, name, parse_time(name, &value)?)?
        }
        ("valid-before", Some(value)) => {
            set_once(&mut options.valid_before, name, parse_time(name, &value)?)?
        }
        ("cert-authority", Some(_)) => return Err("cert-authority takes no value".into()),
        ("namespaces" | "valid-after" | "valid-before", None) => {
            return Err(format!("expected {name}=\"…\" with a value"))
        }
        (other, _) => {
            return Err(format!(
                "unsupported option `{other}`: expected {OPTION_NAMES}"
            ))
        }
    }
    Ok(())
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("{name} is given twice"));
    }
    *slot = Some(value);
    Ok(())
}

/// `YYYYMMDD[HHMM[SS]][Z]`, read as UTC.
fn parse_time(name: &str, value: &str) -> Result<OffsetDateTime, String> {
    let expected = || format!("{name}: expected YYYYMMDD[HHMM[SS]][Z], found `{value}`");
    let digits = value.strip_suffix(['Z', 'z']).unwrap_or(value);
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(expected());
    }
    let number = |range: std::ops::Range<usize>| {
        digits
            .get(range)
            .and_then(|d| d.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let month = Month::try_from(number(4..6) as u8).map_err(|_| expected())?;
    let date = Date::from_calendar_date(number(0..4) as i32, month, number(6..8) as u8)
        .map_err(|_| expected())?;
    let time = Time::from_hms(
        number(8..10) as u8,
        number(10..12) as u8,
        number(12..14) as u8,
    )
    .map_err(|_| expected())?;
    Ok(date.with_time(time).assume_utc())
}

/// OpenSSH's `match_pattern_list`: false if any `!pattern` matches, else true if any pattern
/// matches.
pub(crate) fn matches_pattern_list(text: &str, patterns: &[String]) -> bool {
    let mut matched = false;
    for pattern in patterns {
        match pattern.strip_prefix('!') {
            Some(negated) if matches_pattern(text, negated) => return false,
            Some(_) => {}
            None => matched |= matches_pattern(text, pattern),
        }
    }
    matched
}

/// A glob with `*` (any run of characters) and `?` (any one character), over the whole text.
pub(crate) fn matches_pattern(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    let (mut t, mut p) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            t += 1;
            p += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            last_star = Some((p + 1, t));
            p += 1;
        } else if let Some((after_star, from)) = last_star {
            p = after_star;
            t = from + 1;
            last_star = Some((after_star, from + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    fn at(text: &str) -> OffsetDateTime {
        super::super::parse_utc(text).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn reads_principals_options_key_and_comment() {
        let text = format!(
            "# team\n\nalice@example.com,bob@example.com NameSpaces=\"git,sluice-approval\",valid-after=\"20240101\" {KEY} alice's laptop\n"
        );
        let signers = parse(&text).expect("parses");
        assert_eq!(signers.entries.len(), 1);
        let entry = &signers.entries[0];
        assert_eq!(entry.line, 3);
        assert_eq!(entry.principals, ["alice@example.com", "bob@example.com"]);
        assert_eq!(
            entry.namespaces.as_deref(),
            Some(&["git".to_string(), "sluice-approval".to_string()][..])
        );
        assert_eq!(entry.valid_after, Some(at("2024-01-01T00:00:00Z")));
        assert_eq!(
            signers
                .keys_for(
                    "bob@example.com",
                    "sluice-approval",
                    at("2025-01-01T00:00:00Z")
                )
                .len(),
            1
        );
        assert!(signers
            .keys_for("bob@example.com", "file", at("2025-01-01T00:00:00Z"))
            .is_empty());
        assert!(signers
            .keys_for("bob@example.com", "git", at("2023-12-31T23:59:59Z"))
            .is_empty());
    }

    #[test]
    fn wildcards_and_negation_match_like_openssh() {
        let list = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
        assert!(matches_pattern_list(
            "alice@example.com",
            &list("*@example.com")
        ));
        assert!(!matches_pattern_list(
            "alice@example.org",
            &list("*@example.com")
        ));
        assert!(matches_pattern_list("bob1@x", &list("bob?@x")));
        assert!(!matches_pattern_list("bob12@x", &list("bob?@x")));
        assert!(!matches_pattern_list(
            "mallory@example.com",
            &list("*@example.com,!mallory@*")
        ));
        assert!(!matches_pattern_list("anyone", &list("!mallory")));
        assert!(matches_pattern("a*b*c", "a**?*c"));
        assert!(!matches_pattern("Alice", "alice"));
    }

    #[test]
    fn valid_before_and_after_bound_the_window_inclusively() {
        let text = format!("carol valid-after=20240101,valid-before=\"20240201120000Z\" {KEY}");
        let signers = parse(&text).expect("parses");
        let keys = |t: &str| signers.keys_for("carol", "sluice-approval", at(t)).len();
        assert_eq!(keys("2023-12-31T23:59:59Z"), 0);
        assert_eq!(keys("2024-01-01T00:00:00Z"), 1);
        assert_eq!(keys("2024-02-01T12:00:00Z"), 1);
        assert_eq!(keys("2024-02-01T12:00:01Z"), 0);
        assert!(signers
            .explain_no_key("carol", "sluice-approval", at("2030-01-01T00:00:00Z"))
            .contains("no key for carol valid at 2030-01-01T00:00:00Z"));
    }

    #[test]
    fn cert_authority_lines_are_kept_but_never_match() {
        let signers = parse(&format!("*@example.com cert-authority {KEY}")).expect("parses");
        assert!(signers.entries[0].cert_authority);
        assert!(signers
            .keys_for(
                "a@example.com",
                "sluice-approval",
                at("2025-01-01T00:00:00Z")
            )
            .is_empty());
        assert!(signers
            .explain_no_key(
                "a@example.com",
                "sluice-approval",
                at("2025-01-01T00:00:00Z")
            )
            .contains("only as a cert-authority"));
    }

    #[test]
    fn errors_name_the_line_and_what_was_expected() {
        let cases = [
            (
                "alice@example.com\n",
                "line 1: expected a key (KEYTYPE BASE64) after the principals",
            ),
            (
                &format!("# c\nalice {KEY}\nbob ssh-ed25519 AAAAnotbase64\n"),
                "line 3: expected a valid ssh-ed25519 public key",
            ),
            (
                &format!("\nalice trusted=yes {KEY}\n"),
                "line 2: unsupported option `trusted`",
            ),
            (
                &format!("alice valid-before=2024 {KEY}\n"),
                "line 1: valid-before: expected YYYYMMDD[HHMM[SS]][Z], found `2024`",
            ),
            (
                &format!("alice namespaces=\"git {KEY}\n"),
                "line 1: expected a closing `\"`",
            ),
            (
                &format!("alice valid-after=20250101,valid-before=20240101 {KEY}\n"),
                "line 1: valid-before must be later than valid-after",
            ),
            (
                &format!("alice namespaces=git,namespaces=x {KEY}\n"),
                "line 1: namespaces is given twice",
            ),
            ("alice sha-foo AAAA\n", "line 1: expected options"),
        ];
        for (text, expected) in cases {
            let message = match parse(text) {
                Ok(_) => "parsed".to_string(),
                Err(err) => err.to_string(),
            };
            assert!(message.starts_with(expected), "{text:?}: {message}");
        }
    }
}
