//! From the raw manifest to a [`Package`]: every value checked, every problem located.

use super::manifest::{self, RawCheck, RawManifest, S};
use super::*;
use crate::backup::{Compression, DumpFormat, DumpSpec};
use crate::gate;
use crate::sql;

/// The largest file a package may name: a migration is code a person reviews, not data.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Collects located problems while the manifest is checked.
struct Problems<'a> {
    source: &'a SourceFile,
    list: Vec<Problem>,
}

impl Problems<'_> {
    fn at(&mut self, span: &std::ops::Range<usize>, message: impl Into<String>) {
        self.list.push(Problem {
            location: self.source.locate(span.start),
            message: message.into(),
        });
    }

    /// A problem inside a string value, at `offset` bytes into its content.
    fn in_string(
        &mut self,
        span: &std::ops::Range<usize>,
        offset: usize,
        message: impl Into<String>,
    ) {
        let start = string_content_start(&self.source.text, span.start) + offset;
        self.at(&(start..start), message);
    }
}

/// Where a TOML string's content starts, after its opening quotes (and the newline a multi-line
/// string may begin with).
fn string_content_start(text: &str, start: usize) -> usize {
    let rest = &text[start..];
    if rest.starts_with("\"\"\"") || rest.starts_with("'''") {
        let after = start + 3;
        if text[after..].starts_with("\r\n") {
            after + 2
        } else if text[after..].starts_with('\n') {
            after + 1
        } else {
            after
        }
    } else if rest.starts_with('"') || rest.starts_with('\'') {
        start + 1
    } else {
        start
    }
}

/// The problem for a file that is not UTF-8, at its first invalid byte.
pub(crate) fn not_utf8(path: &Path, bytes: &[u8]) -> Problem {
    let valid = std::str::from_utf8(bytes).map_or_else(|e| e.valid_up_to(), |_| bytes.len());
    let prefix = String::from_utf8_lossy(&bytes[..valid]).into_owned();
    Problem {
        location: SourceFile::new(path, prefix).locate(valid),
        message: "the file is not valid UTF-8 text (expected UTF-8 SQL/TOML)".into(),
    }
}

pub fn package(
    dir: PathBuf,
    display_dir: PathBuf,
    source: SourceFile,
) -> Result<Package, PackageError> {
    let unknown = unknown_tables(&source);
    if !unknown.is_empty() {
        return Err(PackageError::Invalid { problems: unknown });
    }
    let raw: RawManifest = match toml::from_str(&source.text) {
        Ok(raw) => raw,
        Err(err) => {
            let span = err.span().unwrap_or(0..0);
            return Err(PackageError::Invalid {
                problems: vec![Problem {
                    location: source.locate(span.start),
                    message: toml_message(err.message()),
                }],
            });
        }
    };
    let mut p = Problems {
        source: &source,
        list: Vec::new(),
    };
    let info = package_info(&raw.package, &mut p);
    let target = target_spec(raw.target.unwrap_or_default(), &mut p);
    let migration = migration(&dir, &raw.migration, &mut p);
    let scope = raw.scope.map(|s| scope(&s, &mut p));
    let preflight = checks(&raw.preflight, "preflight", &mut p);
    let verify = checks(&raw.verify, "verify", &mut p);
    unique_check_ids(&raw.preflight, &raw.verify, &mut p);
    let probes = raw
        .probe
        .iter()
        .map(|probe| self::probe(probe, &target.search_path, &mut p))
        .collect();
    let backup = backup(raw.backup.as_ref(), &mut p);
    let schema_diff = SchemaDiffPolicy {
        allow_removed: raw
            .schema_diff
            .as_ref()
            .and_then(|s| s.allow_removed)
            .unwrap_or(false),
        ignore_schemas: raw
            .schema_diff
            .map(|s| {
                s.ignore_schemas
                    .into_iter()
                    .map(|v| v.into_inner())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let rollback = raw
        .rollback
        .as_ref()
        .and_then(|r| pinned_file(&dir, &r.get_ref().file, &r.get_ref().sha256, true, &mut p));
    let approvals = approvals(&dir, raw.approvals.as_ref(), &mut p);
    let rehearsal = rehearsal_policy(raw.rehearsal.as_ref(), &mut p);
    if !p.list.is_empty() {
        return Err(PackageError::Invalid { problems: p.list });
    }
    Ok(Package {
        dir,
        display_dir,
        manifest: source.clone(),
        info,
        target,
        migration: migration.expect("a migration without problems"),
        scope,
        preflight,
        verify,
        probes,
        backup,
        schema_diff,
        rollback,
        approvals,
        rehearsal,
    })
}

/// toml's messages, with serde's wording of unknown keys made to say what is allowed.
/// Every top-level key of the manifest that is not one of its tables, located at the key (a TOML
/// syntax error is left to the full read, which reports it).
fn unknown_tables(source: &SourceFile) -> Vec<Problem> {
    let Ok(doc) = toml::de::DeTable::parse(&source.text) else {
        return Vec::new();
    };
    let expected = manifest::TABLES
        .iter()
        .map(|t| header(t))
        .collect::<Vec<_>>()
        .join(", ");
    doc.get_ref()
        .iter()
        .filter(|(key, _)| !manifest::TABLES.contains(&key.get_ref().as_ref()))
        .map(|(key, value)| {
            let name = key.get_ref().as_ref();
            let (what, open, close) = match value.get_ref() {
                toml::de::DeValue::Table(_) => ("table", "[", "]"),
                toml::de::DeValue::Array(items)
                    if items.iter().all(|i| i.get_ref().is_table()) =>
                {
                    ("table", "[[", "]]")
                }
                _ => ("key", "", ""),
            };
            let hint = closest_table(name)
                .map(|t| format!(" (did you mean `{}`?)", header(t)))
                .unwrap_or_default();
            Problem {
                location: source.locate(key.span().start),
                message: format!(
                    "unknown {what} `{open}{name}{close}`{hint}: expected one of the tables {expected}"
                ),
            }
        })
        .collect()
}

/// How a known table is written: `[[preflight]]` for the arrays of tables, `[target]` else.
fn header(table: &str) -> String {
    if manifest::ARRAY_TABLES.contains(&table) {
        format!("[[{table}]]")
    } else {
        format!("[{table}]")
    }
}

/// The known table a misspelt name most likely means: at most two edits away.
fn closest_table(name: &str) -> Option<&'static str> {
    manifest::TABLES
        .iter()
        .map(|t| (edit_distance(name, t), *t))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, t)| t)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

fn toml_message(message: &str) -> String {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("unknown field ") {
        return format!("unknown key {rest}");
    }
    message.replace("missing field", "missing key")
}

fn package_info(raw: &S<manifest::RawPackage>, p: &mut Problems) -> PackageInfo {
    let pkg = raw.get_ref();
    let id = pkg.id.get_ref();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    {
        p.at(
            &pkg.id.span(),
            format!("package.id `{id}` is not valid: expected [a-z0-9._-]+"),
        );
    }
    for (field, value) in [("revision", &pkg.revision), ("title", &pkg.title)] {
        if value.get_ref().trim().is_empty() {
            p.at(
                &value.span(),
                format!("package.{field} is empty: expected text"),
            );
        }
    }
    PackageInfo {
        id: id.clone(),
        revision: pkg.revision.get_ref().clone(),
        title: pkg.title.get_ref().clone(),
        summary: pkg.summary.clone(),
        non_scope: pkg.non_scope.clone(),
    }
}

fn target_spec(raw: manifest::RawTarget, p: &mut Problems) -> TargetSpec {
    let server_major = raw.server_major.as_ref().and_then(|v| {
        let n = *v.get_ref();
        if (9..=99).contains(&n) {
            Some(n as u32)
        } else {
            p.at(
                &v.span(),
                format!(
                    "target.server_major = {n}: expected a PostgreSQL major version such as 16"
                ),
            );
            None
        }
    });
    if let Some(id) = raw.system_identifier.as_ref() {
        if id.get_ref().is_empty() || !id.get_ref().chars().all(|c| c.is_ascii_digit()) {
            p.at(&id.span(), "target.system_identifier: expected the decimal digits of pg_control_system().system_identifier, as a string");
        }
    }
    let search_path_text = raw
        .search_path
        .map(|s| s.into_inner())
        .unwrap_or_else(|| "public".to_string());
    TargetSpec {
        database: raw.database.map(|v| v.into_inner()),
        role: raw.role.map(|v| v.into_inner()),
        server_major,
        system_identifier: raw.system_identifier.map(|v| v.into_inner()),
        search_path: SearchPath::parse(&search_path_text),
        search_path_text,
    }
}

/// The longest lock budget: a day.
const MAX_LOCK_BUDGET_MS: u64 = 86_400_000;

fn rehearsal_policy(raw: Option<&manifest::RawRehearsal>, p: &mut Problems) -> RehearsalPolicy {
    let required = raw.and_then(|r| r.required).unwrap_or(true);
    let budget = raw.and_then(|r| r.lock_budget_ms.as_ref());
    let lock_budget_ms = non_negative(budget, "rehearsal.lock_budget_ms", 0, MAX_LOCK_BUDGET_MS, p);
    if let Some(b) = budget.filter(|_| lock_budget_ms > 0 && !required) {
        p.at(
            &b.span(),
            format!("rehearsal.lock_budget_ms = {lock_budget_ms} needs required = true: the budget is measured against the passing rehearsal the rehearsal gate requires"),
        );
    }
    RehearsalPolicy {
        required,
        lock_budget_ms,
    }
}

fn non_negative(v: Option<&S<i64>>, key: &str, default: u64, max: u64, p: &mut Problems) -> u64 {
    match v {
        None => default,
        Some(v) if (0..=max as i64).contains(v.get_ref()) => *v.get_ref() as u64,
        Some(v) => {
            p.at(
                &v.span(),
                format!(
                    "{key} = {}: expected a whole number from 0 to {max}",
                    v.get_ref()
                ),
            );
            default
        }
    }
}

fn migration(dir: &Path, raw: &S<manifest::RawMigration>, p: &mut Problems) -> Option<Migration> {
    let m = raw.get_ref();
    let file = pinned_file(dir, &m.file, &m.sha256, true, p);
    let transaction = match m
        .transaction
        .as_ref()
        .map(|t| (t.get_ref().as_str(), t.span()))
    {
        None | Some(("single", _)) => TransactionMode::Single,
        Some(("none", _)) => TransactionMode::None,
        Some((other, span)) => {
            p.at(
                &span,
                format!("migration.transaction = \"{other}\": expected \"single\" or \"none\""),
            );
            TransactionMode::Single
        }
    };
    let expect = m.expect.as_ref().map(|table| {
        let cols = table
            .get_ref()
            .iter()
            .filter_map(|(k, v)| match ExpectValue::from_toml(v) {
                Some(value) => Some((k.clone(), value)),
                None => {
                    p.at(&table.span(), format!("migration.expect.{k}: expected an integer, boolean, string or \"NULL\""));
                    None
                }
            })
            .collect();
        Expectation::Row(cols)
    });
    Some(Migration {
        file: file?,
        transaction,
        lock_timeout_ms: non_negative(
            m.lock_timeout_ms.as_ref(),
            "migration.lock_timeout_ms",
            5000,
            86_400_000,
            p,
        ),
        statement_timeout_ms: non_negative(
            m.statement_timeout_ms.as_ref(),
            "migration.statement_timeout_ms",
            0,
            86_400_000,
            p,
        ),
        lock_retries: non_negative(m.lock_retries.as_ref(), "migration.lock_retries", 3, 100, p)
            as u32,
        expect,
    })
}

/// Resolves a package-relative path and reads the file, refusing anything that leaves the folder.
fn read_inside(dir: &Path, rel: &S<String>, p: &mut Problems) -> Option<(PathBuf, Vec<u8>)> {
    let text = rel.get_ref();
    let path = Path::new(text);
    let span = rel.span();
    if text.is_empty() {
        p.at(
            &span,
            "expected a path relative to the package folder, got an empty string",
        );
        return None;
    }
    if path.is_absolute() {
        p.at(
            &span,
            format!("`{text}` is an absolute path: expected a path relative to the package folder"),
        );
        return None;
    }
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        p.at(
            &span,
            format!("`{text}` contains `..`: the file must be inside the package folder"),
        );
        return None;
    }
    let full = dir.join(path);
    let real = match full.canonicalize() {
        Ok(real) => real,
        Err(_) => {
            p.at(
                &span,
                format!("file not found: `{text}` (looked for {})", full.display()),
            );
            return None;
        }
    };
    if !real.starts_with(dir) {
        p.at(
            &span,
            format!(
                "`{text}` leads outside the package folder (through a symlink, to {})",
                real.display()
            ),
        );
        return None;
    }
    let meta = match std::fs::metadata(&real) {
        Ok(m) if m.is_file() => m,
        _ => {
            p.at(&span, format!("`{text}` is not a regular file"));
            return None;
        }
    };
    if meta.len() > MAX_FILE_BYTES {
        p.at(
            &span,
            format!(
                "`{text}` is {} bytes: the limit is {MAX_FILE_BYTES}",
                meta.len()
            ),
        );
        return None;
    }
    match std::fs::read(&real) {
        Ok(bytes) => Some((path.to_path_buf(), bytes)),
        Err(err) => {
            p.at(&span, format!("cannot read `{text}`: {err}"));
            None
        }
    }
}

fn pinned_file(
    dir: &Path,
    file: &S<String>,
    sha: &S<String>,
    utf8: bool,
    p: &mut Problems,
) -> Option<PinnedFile> {
    let digest = sha.get_ref().to_ascii_lowercase();
    let sha_ok = digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit());
    if !sha_ok {
        p.at(
            &sha.span(),
            format!(
                "sha256 must be 64 hexadecimal characters, got {} character(s){}",
                sha.get_ref().chars().count(),
                if digest.chars().all(|c| c.is_ascii_hexdigit()) {
                    ""
                } else {
                    " with non-hex characters"
                }
            ),
        );
    }
    let (rel, bytes) = read_inside(dir, file, p)?;
    if utf8 && std::str::from_utf8(&bytes).is_err() {
        p.list
            .push(not_utf8(&p.source.path.with_file_name(&rel), &bytes));
        return None;
    }
    sha_ok.then(|| PinnedFile {
        rel,
        sha256: digest,
        bytes,
        sha256_span: sha.span(),
    })
}

fn scope(raw: &manifest::RawScope, p: &mut Problems) -> Vec<Spanned<Operation>> {
    raw.operations
        .iter()
        .filter_map(|s| match Operation::parse(s.get_ref()) {
            Ok(op) => Some(Spanned {
                value: op,
                span: s.span(),
            }),
            Err(message) => {
                p.in_string(&s.span(), 0, format!("scope operation: {message}"));
                None
            }
        })
        .collect()
}

fn expectation(check: &RawCheck, section: &str, p: &mut Problems) -> Option<Expectation> {
    match (&check.expect, &check.expect_rows) {
        (Some(_), Some(rows)) => {
            p.at(
                &rows.span(),
                format!(
                    "{section} {}: give `expect` or `expect_rows`, not both",
                    check.id.get_ref()
                ),
            );
            None
        }
        (None, None) => {
            p.at(
                &check.id.span(),
                format!(
                    "{section} {}: expected `expect = …` or `expect_rows = N`",
                    check.id.get_ref()
                ),
            );
            None
        }
        (None, Some(rows)) if *rows.get_ref() >= 0 => {
            Some(Expectation::Rows(*rows.get_ref() as u64))
        }
        (None, Some(rows)) => {
            p.at(&rows.span(), "expect_rows: expected a whole number of rows");
            None
        }
        (Some(v), None) => {
            let bad = "expected an integer, boolean, string, \"NULL\", or an inline table of those";
            match v.get_ref() {
                toml::Value::Table(t) => {
                    let mut cols = Vec::new();
                    for (k, val) in t {
                        match ExpectValue::from_toml(val) {
                            Some(e) => cols.push((k.clone(), e)),
                            None => p.at(&v.span(), format!("expect.{k}: {bad}")),
                        }
                    }
                    if cols.is_empty() {
                        p.at(&v.span(), format!("expect: {bad}, got an empty table"));
                    }
                    Some(Expectation::Row(cols))
                }
                other => match ExpectValue::from_toml(other) {
                    Some(e) => Some(Expectation::Scalar(e)),
                    None => {
                        p.at(
                            &v.span(),
                            format!("expect: {bad}, got a {}", other.type_str()),
                        );
                        None
                    }
                },
            }
        }
    }
}

fn checks(raw: &[S<RawCheck>], section: &str, p: &mut Problems) -> Vec<Check> {
    raw.iter()
        .filter_map(|spanned| {
            let c = spanned.get_ref();
            let id = c.id.get_ref().clone();
            if id.trim().is_empty() {
                p.at(&c.id.span(), format!("{section}: id is empty"));
            }
            let body = if let Some(gate_id) = &c.covered_by {
                if c.sql.is_some() || c.expect.is_some() || c.expect_rows.is_some() {
                    p.at(
                        &gate_id.span(),
                        format!("{section} {id}: a check covered by a gate has no sql or expect"),
                    );
                }
                if gate::by_id(gate_id.get_ref()).is_none() {
                    p.in_string(
                        &gate_id.span(),
                        0,
                        format!(
                        "{section} {id}: covered_by = \"{}\" is not a gate; expected one of: {}",
                        gate_id.get_ref(),
                        gate::ids().join(", ")
                    ),
                    );
                }
                CheckBody::CoveredBy {
                    gate: gate_id.get_ref().clone(),
                }
            } else {
                let Some(sql_text) = &c.sql else {
                    p.at(
                        &c.id.span(),
                        format!(
                            "{section} {id}: expected `sql = \"…\"` (or `covered_by = \"GATE\"`)"
                        ),
                    );
                    return None;
                };
                check_sql(sql_text, section, &id, p);
                let expect = expectation(c, section, p)?;
                CheckBody::Sql {
                    sql: sql_text.get_ref().clone(),
                    expect,
                }
            };
            Some(Check {
                id,
                title: c.title.get_ref().clone(),
                body,
                span: spanned.span(),
            })
        })
        .collect()
}

fn check_sql(sql_text: &S<String>, section: &str, id: &str, p: &mut Problems) {
    match sql::parse_one(sql_text.get_ref()) {
        Err(message) => p.in_string(&sql_text.span(), 0, format!("{section} {id}: {message}")),
        Ok(node) => {
            if let Some(why) = sql::read_only_violation(&node) {
                p.in_string(&sql_text.span(), 0, format!("{section} {id}: {why}"));
            }
        }
    }
}

fn unique_check_ids(pre: &[S<RawCheck>], post: &[S<RawCheck>], p: &mut Problems) {
    let mut seen = std::collections::BTreeSet::new();
    for c in pre.iter().chain(post) {
        let id = c.get_ref().id.get_ref();
        if id.contains('=') {
            p.at(
                &c.get_ref().id.span(),
                format!("check id `{id}` has a `=`: expected an id without one (an acknowledgement names a check as CHECK=OBSERVED)"),
            );
        }
        if !seen.insert(id.clone()) {
            p.at(
                &c.get_ref().id.span(),
                format!("check id `{id}` is used twice: expected unique ids"),
            );
        }
    }
}

fn probe(raw: &S<manifest::RawProbe>, path: &SearchPath, p: &mut Problems) -> Probe {
    let r = raw.get_ref();
    let parts: Vec<&str> = r.table.get_ref().split('.').collect();
    let table = match parts.as_slice() {
        [t] if !t.is_empty() => format!("{}.{t}", path.creation_schema()),
        [s, t] if !s.is_empty() && !t.is_empty() => format!("{s}.{t}"),
        _ => {
            p.at(
                &r.table.span(),
                format!(
                    "probe.table `{}`: expected `schema.table`",
                    r.table.get_ref()
                ),
            );
            String::new()
        }
    };
    for (key, list) in [("key", &r.key), ("columns", &r.columns)] {
        if list.get_ref().is_empty() || list.get_ref().iter().any(|c| c.trim().is_empty()) {
            p.at(
                &list.span(),
                format!("probe.{key}: expected one or more column names"),
            );
        }
    }
    Probe {
        id: r.id.get_ref().clone(),
        table,
        key: r.key.get_ref().clone(),
        columns: r.columns.get_ref().clone(),
        expect_changed: r.expect_changed.as_ref().map(|v| {
            if *v.get_ref() < 0 {
                p.at(
                    &v.span(),
                    "probe.expect_changed: expected a whole number of rows",
                );
            }
            (*v.get_ref()).max(0) as u64
        }),
    }
}

fn backup(raw: Option<&S<manifest::RawBackup>>, p: &mut Problems) -> BackupPolicy {
    let Some(raw) = raw else {
        return BackupPolicy {
            required: true,
            reason: None,
            max_age_minutes: 60,
            dump: DumpSpec::DEFAULT,
        };
    };
    let b = raw.get_ref();
    let required = b.required.unwrap_or(true);
    if !required && b.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        p.at(
            &raw.span(),
            "backup.required = false needs a `reason = \"…\"` (it is shown in the review)",
        );
    }
    let max_age = non_negative(
        b.max_age_minutes.as_ref(),
        "backup.max_age_minutes",
        60,
        10_080,
        p,
    );
    if max_age == 0 {
        p.at(&raw.span(), "backup.max_age_minutes: expected at least 1");
    }
    BackupPolicy {
        required,
        reason: b.reason.clone(),
        max_age_minutes: max_age,
        dump: dump_spec(b, p),
    }
}

/// `[backup]`'s format, compression and jobs.
fn dump_spec(b: &manifest::RawBackup, p: &mut Problems) -> DumpSpec {
    let format = match &b.format {
        None => DumpFormat::Custom,
        Some(f) => DumpFormat::parse(f.get_ref()).unwrap_or_else(|| {
            p.at(
                &f.span(),
                format!(
                    "backup.format = \"{}\": expected \"custom\" or \"directory\"",
                    f.get_ref()
                ),
            );
            DumpFormat::Custom
        }),
    };
    let compression = match &b.compress {
        None => DumpSpec::DEFAULT.compression,
        Some(c) => {
            let text = match c.get_ref() {
                manifest::RawCompress::Level(level) => level.to_string(),
                manifest::RawCompress::Method(method) => method.clone(),
            };
            Compression::parse(&text).unwrap_or_else(|why| {
                p.at(&c.span(), format!("backup.compress = {text}: {why}"));
                DumpSpec::DEFAULT.compression
            })
        }
    };
    let jobs = non_negative(b.jobs.as_ref(), "backup.jobs", 0, 256, p) as u32;
    if jobs > 1 && format == DumpFormat::Custom {
        if let Some(j) = &b.jobs {
            p.at(
                &j.span(),
                "backup.jobs: parallel jobs need format = \"directory\" (a custom-format dump is written by one process)",
            );
        }
    }
    DumpSpec {
        format,
        compression,
        jobs,
    }
}

fn approvals(
    dir: &Path,
    raw: Option<&S<manifest::RawApprovals>>,
    p: &mut Problems,
) -> ApprovalPolicy {
    let required = raw
        .and_then(|a| a.get_ref().required.as_ref())
        .map_or(1, |r| {
            non_negative(Some(r), "approvals.required", 1, 100, p) as u32
        });
    let rollback_required = raw
        .and_then(|a| a.get_ref().rollback_required.as_ref())
        .map_or(required, |r| {
            non_negative(
                Some(r),
                "approvals.rollback_required",
                required.into(),
                100,
                p,
            ) as u32
        });
    let signers = raw.and_then(|a| a.get_ref().allowed_signers.as_ref());
    let allowed_signers = match signers {
        Some(rel) => read_inside(dir, rel, p).map(|(rel, bytes)| ReadFile { rel, bytes }),
        None if rollback_required > 0 && required == 0 => {
            let span = raw.map_or(0..0, |r| r.span());
            p.at(&span, format!("approvals.rollback_required = {rollback_required} needs `allowed_signers = \"FILE\"` (an OpenSSH allowed_signers file), or set rollback_required = 0"));
            None
        }
        None if required > 0 => {
            let span = raw.map_or(0..0, |r| r.span());
            p.at(&span, format!("approvals.required = {required} needs `allowed_signers = \"FILE\"` (an OpenSSH allowed_signers file), or set required = 0"));
            None
        }
        None => None,
    };
    ApprovalPolicy {
        required,
        allowed_signers,
        operator_may_approve: raw
            .and_then(|a| a.get_ref().operator_may_approve)
            .unwrap_or(false),
        rollback_required,
    }
}
