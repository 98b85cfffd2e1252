//! Raw command-line arguments (clap derive). Commands turn them into validated library values.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = "Gated, evidence-producing PostgreSQL schema changes", long_about = None)]
pub struct Cli {
    /// Print one JSON document on stdout (human text goes to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// A command that prints a short-lived password (an RDS or Cloud SQL IAM token) on its first
    /// line; run once per connection, its output never recorded.
    #[arg(
        long,
        global = true,
        env = "SLUICE_PASSWORD_COMMAND",
        hide_env_values = true
    )]
    pub password_command: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter package into DIR.
    Init {
        dir: PathBuf,
        /// The package id (default: from the folder name).
        #[arg(long)]
        id: Option<String>,
    },
    /// Parse the SQL with PostgreSQL's parser, derive operations, prove scope, report hazards.
    ///
    /// PKG is a package folder (it holds sluice.toml). Anything else is linted as bare SQL
    /// files of any migration tool: FILE.sql, several, a folder of *.sql files (in name order),
    /// or `-` for stdin. Bare files get operations and hazards; no scope is proven.
    Lint {
        #[arg(required = true, value_name = "PKG | FILE.sql… | -")]
        paths: Vec<PathBuf>,
        /// Fail on findings of this severity and above.
        #[arg(long, value_enum, default_value = "error")]
        deny: DenyLevel,
        /// Also read the target (read-only) for hazards that need it (trigger-side-effect).
        #[arg(long)]
        target: Option<String>,
        /// text (default), json (as --json), sarif (SARIF 2.1.0, for code scanning) or github
        /// (GitHub Actions annotations).
        #[arg(long, value_enum, default_value = "text")]
        format: LintFormat,
        /// Bare files only: how your migration tool runs each file. single (default): in one
        /// transaction (Flyway, Rails, Django, dbmate…); none: its statements as they are
        /// (golang-migrate, psql -f), so a file wrapped in its own BEGIN … COMMIT is still one
        /// transaction and any other runs statement by statement. A package says it in sluice.toml.
        #[arg(long, value_enum)]
        transaction: Option<TransactionArg>,
        /// The name shown for `-` (stdin) in findings (default `<stdin>`).
        #[arg(long, value_name = "PATH")]
        stdin_filename: Option<PathBuf>,
    },
    /// Write the sha256 of the migration and rollback files into sluice.toml (comments and
    /// layout kept); prints old → new.
    Pin { package: PathBuf },
    /// Print the package digest that approvals and rehearsals are bound to.
    Digest {
        package: PathBuf,
        /// Print the exact text that is hashed.
        #[arg(long)]
        explain: bool,
    },
    /// Render the review package; with --target, also evaluate identity and preflight read-only.
    Review {
        package: PathBuf,
        #[arg(long)]
        target: Option<String>,
        #[arg(long, value_enum, default_value = "md")]
        format: ReviewFormat,
        /// Write to FILE instead of stdout.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Write an SSH-signed approval bound to the package digest into PKG/approvals/.
    ///
    /// Sign with a key file (--key; asked for its passphrase on the terminal, or through
    /// SSH_ASKPASS when there is none), with a key held by ssh-agent (--agent), or import an
    /// approval signed by hand with `ssh-keygen -Y sign -n sluice-approval` (--payload and
    /// --signature; --print-payload writes the payload to sign).
    Approve {
        package: PathBuf,
        /// The signer's principal, as listed in allowed_signers (e.g. alice@example.com).
        #[arg(long, required_unless_present = "payload")]
        signer: Option<String>,
        /// The signer's OpenSSH private key file (passphrase-protected or not); with --agent,
        /// the public key (KEY.pub, or the private key file) of the agent's key to sign with.
        #[arg(long, value_name = "KEYFILE", required_unless_present_any = ["agent", "payload", "print_payload"])]
        key: Option<PathBuf>,
        /// Sign with a key held by ssh-agent (SSH_AUTH_SOCK): the one given with --key, or
        /// else the one key the agent holds that allowed_signers lists for the signer.
        #[arg(long, conflicts_with_all = ["payload", "print_payload"])]
        agent: bool,
        #[arg(long, value_enum, required_unless_present = "payload")]
        decision: Option<DecisionArg>,
        #[arg(long, default_value = "")]
        note: String,
        /// Acknowledge a preflight check's exact observed result, e.g. P-8=87 (a reviewed
        /// deviation: the check passes "as acknowledged" when it returns exactly that and enough
        /// signers acknowledged it). Needs --note saying why; may be repeated.
        #[arg(long, value_name = "CHECK=OBSERVED", conflicts_with = "payload")]
        acknowledge: Vec<String>,
        /// Print the exact payload to sign with `ssh-keygen -Y sign -n sluice-approval` (dated
        /// now) instead of signing; import the signature with --payload and --signature.
        #[arg(long, conflicts_with_all = ["key", "payload"])]
        print_payload: bool,
        /// A payload signed by hand (as --print-payload writes it); its fields are the
        /// approval's.
        #[arg(long, value_name = "FILE", requires = "signature", conflicts_with_all = ["signer", "decision", "note", "key"])]
        payload: Option<PathBuf>,
        /// The `ssh-keygen -Y sign` signature of --payload (FILE.sig).
        #[arg(long, value_name = "FILE.sig", requires = "payload")]
        signature: Option<PathBuf>,
    },
    /// Sign a rollback approval (namespace sluice-rollback) of one apply run, bound to the
    /// digest, the run (its id and run.json sha256), its environment and the failed check.
    ApproveRollback {
        package: PathBuf,
        /// The apply's evidence folder (the run to roll back).
        #[arg(long)]
        run: PathBuf,
        /// The verify check whose failure triggers the rollback (or `migration-atomic` for a
        /// non-atomic migration that failed after part of it committed).
        #[arg(long)]
        failed_check: String,
        /// The signer's principal, as listed in allowed_signers.
        #[arg(long)]
        signer: String,
        /// The signer's OpenSSH private key file; with --agent, the public key of the agent's
        /// key to sign with.
        #[arg(long, value_name = "KEYFILE", required_unless_present = "agent")]
        key: Option<PathBuf>,
        /// Sign with a key held by ssh-agent (SSH_AUTH_SOCK).
        #[arg(long)]
        agent: bool,
        #[arg(long, value_enum)]
        decision: RollbackDecisionArg,
        #[arg(long, default_value = "")]
        note: String,
        /// Where the approval goes (default: RUN/rollback-approvals/).
        #[arg(long, value_name = "DIR")]
        into: Option<PathBuf>,
    },
    /// Run the gated pipeline: the only verb that changes the target.
    Apply {
        package: PathBuf,
        #[arg(long)]
        target: Option<String>,
        /// The name of the environment (recorded in evidence; e.g. production).
        #[arg(long)]
        environment: String,
        /// Who runs the change (separation of duties: may not be an approver unless allowed).
        #[arg(long)]
        operator: String,
        /// Where evidence goes (default ./evidence).
        #[arg(long, default_value = "evidence")]
        evidence: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Folder with pg_dump/pg_restore, when the newest found is not the one to use.
        #[arg(long)]
        pg_dump_bindir: Option<PathBuf>,
    },
    /// Rehearse on a throwaway cluster restored from a fresh backup of the target (or a dump):
    /// apply → verify → rollback → schema equal → re-apply; writes PKG/rehearsals/.
    Rehearse {
        package: PathBuf,
        #[arg(
            long,
            conflicts_with = "from_backup",
            required_unless_present = "from_backup"
        )]
        target: Option<String>,
        /// A dump to rehearse on instead of a fresh backup: a custom-format file or a
        /// directory-format folder.
        #[arg(long)]
        from_backup: Option<PathBuf>,
        /// Server binaries for the rehearsal cluster (the target's major version).
        #[arg(long)]
        pg_bindir: Option<PathBuf>,
        #[arg(long)]
        pg_dump_bindir: Option<PathBuf>,
        /// Where the rehearsal's own runs write evidence.
        #[arg(long, default_value = "evidence")]
        evidence: PathBuf,
        /// How a live target's data gets into the rehearsal cluster: `streamed` restores the
        /// dump while it is written (fastest when one table holds most of the data), `after-dump`
        /// dumps with [backup] then restores with one job per CPU; `auto` picks by the
        /// target's largest table's share of the data.
        #[arg(
            long,
            value_enum,
            default_value = "auto",
            conflicts_with = "from_backup"
        )]
        restore: RestoreArg,
    },
    /// The gated rollback of a committed apply whose verification failed.
    Rollback {
        package: PathBuf,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        environment: String,
        /// The apply's evidence folder.
        #[arg(long)]
        run: PathBuf,
        /// The verify check whose failure triggers the rollback (or `migration-atomic` for a
        /// non-atomic migration that failed after part of it committed).
        #[arg(long)]
        failed_check: String,
        #[arg(long)]
        operator: String,
        /// Where the rollback's evidence goes (default: beside the apply's, same ledger).
        #[arg(long)]
        evidence: Option<PathBuf>,
        /// Where the signed rollback approvals are (default: RUN/rollback-approvals/).
        #[arg(long, value_name = "DIR")]
        approvals: Option<PathBuf>,
        #[arg(long)]
        yes: bool,
    },
    /// Re-run the verify checks and compare the live schema with the last run's, read-only.
    Verify {
        package: PathBuf,
        #[arg(long)]
        target: Option<String>,
        /// The run folder whose post snapshot is compared (default: the newest in --evidence).
        #[arg(long)]
        run: Option<PathBuf>,
        #[arg(long, default_value = "evidence")]
        evidence: PathBuf,
    },
    /// What was applied to a target (matched by system identifier and database), from the
    /// evidence: package, digest, environment, operator, when, outcome, rollbacks.
    Status {
        /// Only this package's runs.
        package: Option<PathBuf>,
        #[arg(long)]
        target: Option<String>,
        /// An evidence root to read (its ledger and run folders); repeat for several.
        #[arg(long, default_value = "evidence")]
        evidence: Vec<PathBuf>,
    },
    /// Evidence bundles.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
    /// Run the reference package end to end on a throwaway PostgreSQL.
    Demo {
        /// Server binaries to use (default: PostgreSQL 16 if found, else the newest found).
        #[arg(long)]
        pg_bindir: Option<PathBuf>,
        /// Where the demo writes its package copy, keys and evidence (kept afterwards).
        #[arg(long, default_value = "sluice-demo")]
        workdir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Re-hash a run folder against SHA256SUMS and walk the ledger chain.
    Check { run_dir: PathBuf },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RestoreArg {
    Auto,
    Streamed,
    AfterDump,
}

impl From<RestoreArg> for sluice::rehearse::RestoreChoice {
    fn from(arg: RestoreArg) -> Self {
        match arg {
            RestoreArg::Auto => Self::Auto,
            RestoreArg::Streamed => Self::Streamed,
            RestoreArg::AfterDump => Self::AfterDump,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DecisionArg {
    Pass,
    PassWithNotes,
    Reject,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RollbackDecisionArg {
    Pass,
    Reject,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DenyLevel {
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReviewFormat {
    Md,
    Json,
    /// One self-contained page: inline CSS, nothing loaded from elsewhere, printable.
    Html,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LintFormat {
    Text,
    Json,
    Sarif,
    Github,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TransactionArg {
    Single,
    None,
}
