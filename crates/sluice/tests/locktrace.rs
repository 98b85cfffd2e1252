//! The lock trace against a real PostgreSQL: what each statement locked, rewrote, scanned and
//! touched, read from the server inside the migration's transaction; the probe itself takes no
//! lock; a traced run ends in the same schema and the same last row as an untraced one.

use sluice::locktrace::LockSource;
use sluice::locktrace::{LockTrace, StatementTrace, TracedLock};
use sluice::migration::{self, MigrationReport, MigrationRun};
use sluice::source::SourceFile;
use sluice::sql::locks::LockMode;
use sluice::sql::names::SearchPath;
use sluice::sql::transaction::{self, TransactionMode};

fn run(conninfo: &str, sql: &str, trace: bool) -> MigrationReport {
    run_in(conninfo, sql, trace, TransactionMode::Single)
}

fn run_in(conninfo: &str, sql: &str, trace: bool, mode: TransactionMode) -> MigrationReport {
    let mut client = postgres::Client::connect(conninfo, postgres::NoTls).unwrap();
    let mut sampler = postgres::Client::connect(conninfo, postgres::NoTls).unwrap();
    run_on(&mut client, Some(&mut sampler), sql, trace, mode)
}

/// Runs `sql` as the migration on `client`'s session (`sampler` samples a `none`-mode run) and
/// expects it to commit.
fn run_on(
    client: &mut postgres::Client,
    sampler: Option<&mut postgres::Client>,
    sql: &str,
    trace: bool,
    mode: TransactionMode,
) -> MigrationReport {
    let file = sluice::sql::parse_file(SourceFile::new("m.sql", sql)).expect("parses");
    let plan = transaction::plan(&file.statements, mode);
    let path = SearchPath::default();
    let spec = MigrationRun {
        source: &file.source,
        statements: &plan.statements,
        expect: None,
        lock_timeout_ms: 5000,
        statement_timeout_ms: 60_000,
        lock_retries: 0,
        trace,
        search_path: &path,
    };
    let report = match mode {
        TransactionMode::Single => migration::run_single(client, None, &spec, &|_| {}),
        TransactionMode::None => migration::run_autocommit(client, sampler, &spec),
    };
    assert!(
        report.committed && report.failure.is_none(),
        "{:?}",
        report.failure
    );
    report
}

fn traced(conninfo: &str, sql: &str) -> LockTrace {
    run(conninfo, sql, true).trace.expect("a trace")
}

fn at_line(trace: &LockTrace, line: usize) -> &StatementTrace {
    trace
        .statements
        .iter()
        .find(|s| s.line == line)
        .unwrap_or_else(|| panic!("no statement at line {line}: {trace:#?}"))
}

fn lock<'a>(s: &'a StatementTrace, object: &str, mode: LockMode) -> Option<&'a TracedLock> {
    s.locks
        .iter()
        .find(|l| l.locktype == "relation" && l.object == object && l.mode == mode)
}

fn database(cluster: &sluice::cluster::Cluster, name: &str, setup: &str) -> String {
    let mut admin = cluster.connect("postgres").unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let conninfo = cluster.conninfo(name, cluster.superuser());
    let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    c.batch_execute(setup).unwrap();
    conninfo
}

#[test]
fn the_reference_migration_traced_statement_by_statement() {
    let fixture = sluice_testkit::fixture_database();
    let conninfo = fixture.conninfo.clone();
    let sql = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/phase-alpha/sql/phase-alpha-r2.sql"
    ))
    .unwrap();
    let trace = traced(&conninfo, &sql);
    assert_eq!(trace.statements.len(), 13, "{trace:#?}");
    for (line, table) in [
        (16, "public.tac_logical_unit"),
        (37, "sandbox_tac.logical_unit"),
    ] {
        let s = at_line(&trace, line);
        let ae = lock(s, table, LockMode::AccessExclusive)
            .unwrap_or_else(|| panic!("line {line}: {s:#?}"));
        assert!(ae.pre_existing && ae.held_us <= trace.total_us);
        assert!(s.rewritten.is_empty(), "line {line}: no rewrite: {s:#?}");
    }
    let update = at_line(&trace, 24);
    assert_eq!(update.rows, Some(86));
    assert!(
        lock(update, "public.tac_logical_unit", LockMode::RowExclusive)
            .is_some_and(|l| l.pre_existing),
        "{update:#?}"
    );
    // the table is new: its primary key's build already took SHARE on it at line 50
    let create = at_line(&trace, 50);
    let alias = "cutter_governance.canonical_address_alias";
    assert!(lock(create, alias, LockMode::Share).is_some_and(|l| !l.pre_existing));
    for line in [63, 65, 67, 69] {
        let s = at_line(&trace, line);
        assert!(
            s.locks
                .iter()
                .any(|l| l.object.starts_with("cutter_governance.ix_alias_")
                    && l.object_type.as_deref() == Some("index")
                    && !l.pre_existing),
            "line {line}: the new index: {s:#?}"
        );
        assert!(sluice::locktrace::render::statement_line(s)
            .contains("; created here: cutter_governance.ix_alias_"));
    }
    assert!(trace.wal_bytes > 0);
    assert_eq!(trace.tracer.probes, 13);
    assert!(trace
        .tables
        .iter()
        .any(|t| t.table == "public.tac_logical_unit"));
    let line = sluice::locktrace::render::statement_line(at_line(&trace, 16));
    assert!(
        line.contains(
            "ACCESS EXCLUSIVE on public.tac_logical_unit (blocks every read and write) held"
        ),
        "{line}"
    );
}

#[test]
fn a_type_change_rewrites_validate_takes_share_update_exclusive_a_foreign_key_locks_both_tables() {
    let cluster = sluice_testkit::cluster();
    let setup = "CREATE TABLE public.t (id int PRIMARY KEY, n int);
                 INSERT INTO public.t SELECT g, g FROM generate_series(1, 1000) g;
                 CREATE TABLE public.parent (id int PRIMARY KEY);
                 CREATE TABLE public.child (id int PRIMARY KEY, parent_id int);";
    let rewrite = database(&cluster, "rewrite", setup);
    let trace = traced(&rewrite, "ALTER TABLE public.t ALTER COLUMN n TYPE bigint;");
    let s = &trace.statements[0];
    let rewritten: Vec<&str> = s.rewritten.iter().map(|r| r.relation.as_str()).collect();
    assert!(
        rewritten.contains(&"public.t") && rewritten.contains(&"public.t_pkey"),
        "{s:#?}"
    );
    assert!(sluice::locktrace::render::statement_line(s).contains("REWRITE of public.t (table)"));

    let validate = database(&cluster, "validate", setup);
    let added = traced(
        &validate,
        "ALTER TABLE public.t ADD CONSTRAINT n_positive CHECK (n >= 0) NOT VALID;",
    );
    assert!(lock(&added.statements[0], "public.t", LockMode::AccessExclusive).is_some());
    let trace = traced(
        &validate,
        "ALTER TABLE public.t VALIDATE CONSTRAINT n_positive;",
    );
    let last = trace.statements.last().unwrap();
    assert!(
        lock(last, "public.t", LockMode::ShareUpdateExclusive).is_some(),
        "{last:#?}"
    );
    assert!(last.rewritten.is_empty());

    let fk = database(&cluster, "fk", setup);
    let trace = traced(
        &fk,
        "ALTER TABLE public.child ADD CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES public.parent (id);",
    );
    let s = &trace.statements[0];
    for table in ["public.child", "public.parent"] {
        assert!(
            lock(s, table, LockMode::ShareRowExclusive).is_some(),
            "{table}: {s:#?}"
        );
    }
}

#[test]
fn the_probe_takes_no_lock_and_a_traced_run_equals_an_untraced_one() {
    let fixture = sluice_testkit::fixture_database();
    let untraced = sluice_testkit::fixture_database();
    let (conninfo, untraced_conninfo) = (&fixture.conninfo, &untraced.conninfo);
    let sql = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/phase-alpha/sql/phase-alpha-r2.sql"
    ))
    .unwrap();
    let with = run(conninfo, &sql, true);
    let without = run(untraced_conninfo, &sql, false);
    assert!(without.trace.is_none());
    assert_eq!(with.last_row, without.last_row);
    let snapshot = |conninfo: &str| {
        let mut c = postgres::Client::connect(conninfo, postgres::NoTls).unwrap();
        let snap = sluice::catalog::snapshot(&mut c, sluice::catalog::SnapshotOptions::new(&[]))
            .unwrap()
            .snapshot;
        serde_json::to_value(&snap).unwrap()
    };
    assert_eq!(snapshot(conninfo), snapshot(untraced_conninfo));
    // an ordinary apply's report has no "trace" key
    assert!(serde_json::to_value(&without)
        .unwrap()
        .get("trace")
        .is_none());

    // the probe alone, inside a transaction: it sees nothing new and another session sees
    // only the transaction's own virtual xid
    let mut c = postgres::Client::connect(conninfo, postgres::NoTls).unwrap();
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let mut tx = c.transaction().unwrap();
    let probe = sluice::locktrace::probe_sql();
    for _ in 0..2 {
        let rows = tx.simple_query(&probe).unwrap();
        let locks = rows
            .iter()
            .filter(|m| matches!(m, postgres::SimpleQueryMessage::Row(r) if r.len() > 1))
            .count();
        assert_eq!(locks, 0, "the probe sees a lock of its own");
    }
    let mut other = postgres::Client::connect(conninfo, postgres::NoTls).unwrap();
    let held: Vec<String> = other
        .query(
            "SELECT locktype FROM pg_locks WHERE pid = $1 ORDER BY 1",
            &[&pid],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(held, ["virtualxid"], "the probe left a lock behind");
    tx.rollback().unwrap();
}

/// `transaction = "none"`: a `CREATE INDEX CONCURRENTLY` waits for a writer that holds its
/// transaction open; the sampler sees its SHARE UPDATE EXCLUSIVE, the wait and the phases. A
/// statement too fast to be sampled gets lint's prediction, held for its duration.
#[test]
fn none_mode_samples_locks_and_the_phases_of_a_concurrent_index_build() {
    let cluster = sluice_testkit::cluster();
    let conninfo = database(
        &cluster,
        "cic",
        "CREATE TABLE public.big (id int PRIMARY KEY, n int);
         INSERT INTO public.big SELECT g, g FROM generate_series(1, 200000) g;",
    );
    let mut holder = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    holder
        .batch_execute("BEGIN; INSERT INTO public.big VALUES (0, 0)")
        .unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        holder.batch_execute("COMMIT").unwrap();
    });
    let report = run_in(
        &conninfo,
        "CREATE INDEX CONCURRENTLY ix_big_n ON public.big (n);
         ALTER TABLE public.big ADD COLUMN note text;",
        true,
        TransactionMode::None,
    );
    release.join().unwrap();
    let trace = report.trace.expect("a trace");
    assert!(trace.autocommit);
    let cic = &trace.statements[0];
    assert!(cic.samples.unwrap_or(0) > 0, "{cic:#?}");
    let sue = lock(cic, "public.big", LockMode::ShareUpdateExclusive).expect("SUE sampled");
    assert_eq!(sue.source, LockSource::Sampled);
    assert!(
        sue.held_us >= 300_000,
        "held for the statement's duration: {sue:?}"
    );
    assert!(
        !cic.waited_for.is_empty(),
        "the wait for the writer: {cic:#?}"
    );
    let phases: Vec<&str> = cic.phases.iter().map(|p| p.phase.as_str()).collect();
    assert!(
        phases.iter().any(|p| p.starts_with("waiting for writers")),
        "{phases:?}"
    );
    let line = sluice::locktrace::render::statement_line(cic);
    assert!(line.contains("phases: "), "{line}");
    let add = &trace.statements[1];
    let ae = lock(add, "public.big", LockMode::AccessExclusive).expect("AE, sampled or predicted");
    assert!(matches!(
        ae.source,
        LockSource::Sampled | LockSource::Predicted
    ));
    assert_eq!(ae.held_us, add.duration_us);
}

/// A lock lint's model cannot know: `DROP TABLE parent CASCADE` drops the child's foreign key,
/// taking ACCESS EXCLUSIVE on the child.
#[test]
fn a_cascade_takes_a_lock_lint_did_not_predict() {
    let cluster = sluice_testkit::cluster();
    let conninfo = database(
        &cluster,
        "cascade",
        "CREATE TABLE public.parent (id int PRIMARY KEY);
         CREATE TABLE public.child (id int PRIMARY KEY, parent_id int REFERENCES public.parent);",
    );
    let sql = "DROP TABLE public.parent CASCADE;";
    let trace = traced(&conninfo, sql);
    let file = sluice::sql::parse_file(SourceFile::new("m.sql", sql)).unwrap();
    let predicted = file
        .statements
        .iter()
        .map(|s| {
            let at = file.source.locate(s.start);
            (
                (at.line, at.column),
                sluice::sql::locks::statement_locks(&s.node, &SearchPath::default()),
            )
        })
        .collect();
    let c = sluice::locktrace::compare::compare(&[], &predicted, &trace);
    let tables: Vec<&str> = c.unpredicted.iter().map(|u| u.table.as_str()).collect();
    assert!(tables.contains(&"public.child"), "{c:#?}");
    assert!(!tables.contains(&"public.parent"), "{c:#?}");
}

/// The transaction's scan counters also hold the session's earlier, unflushed scans (the pre
/// snapshot's row counts, in an apply): a statement that scans nothing shows no scan.
#[test]
fn earlier_scans_of_the_session_are_not_the_statements() {
    let cluster = sluice_testkit::cluster();
    let conninfo = database(
        &cluster,
        "scans",
        "CREATE TABLE public.t (id int PRIMARY KEY, v int);
         INSERT INTO public.t SELECT g, g FROM generate_series(1, 1000) g;
         ALTER TABLE public.t ADD CONSTRAINT v_known CHECK (v IS NOT NULL);",
    );
    let mut client = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    client
        .batch_execute("SELECT count(*) FROM public.t")
        .unwrap();
    let sql = "ALTER TABLE public.t ADD COLUMN note text;
               ALTER TABLE public.t ALTER COLUMN v SET NOT NULL;
               SELECT count(*) FROM public.t;";
    let report = run_on(&mut client, None, sql, true, TransactionMode::Single);
    let trace = report.trace.expect("a trace");
    assert!(trace.scans_measured);
    // ADD COLUMN scans nothing; SET NOT NULL is proven by the valid CHECK (PostgreSQL 12+)
    assert!(
        trace.statements[0].seq_scans.is_empty(),
        "{:#?}",
        trace.statements[0]
    );
    assert!(
        trace.statements[1].seq_scans.is_empty(),
        "{:#?}",
        trace.statements[1]
    );
    assert_eq!(
        trace.statements[2].seq_scans.len(),
        1,
        "{:#?}",
        trace.statements[2]
    );
}
