//! sluice: gated, evidence-producing PostgreSQL schema changes.
//!
//! The library owns every decision; the `sluice` binary only parses arguments, renders results
//! and maps errors to exit codes. Each module owns one concept; those marked internal are private
//! to the library (the pipeline uses them), and a public module's items that only the library
//! uses are `pub(crate)`:
//!
//! - [`source`]: file text and `file:line:col` locations;
//! - [`package`]: the package folder and its `sluice.toml`;
//! - [`expect`]: expectations and their comparison with query output;
//! - [`digest`]: the package digest approvals and rehearsals are bound to;
//! - [`sql`]: parsing, operations, scope, hazards;
//! - [`lint`]: the lint report of a package;
//! - [`gate`]: the table of gates of the apply pipeline;
//! - [`target`]: connecting to a target, identity, read-only checks;
//! - [`review`]: the review package, as data, as Markdown and as an HTML page;
//! - `report` (internal): a run's human report, `report.md` and `report.html`;
//! - `html` (internal): stand-alone HTML pages (escaping, layout, inline SVG charts);
//! - [`cluster`]: throwaway PostgreSQL clusters;
//! - [`scaffold`]: the starter package of `sluice init`;
//! - [`pin`]: `sluice pin`, the sha256 pins of `sluice.toml` written again;
//! - `blockers` (internal): which sessions block the migration when its locks wait;
//! - [`exit`]: SPEC §8's exit codes.
//! - [`approval`]: SSH-signed approvals, allowed_signers, the keys people hold (files, agent);
//! - [`backup`]: pg_dump/pg_restore: the tools, the dump's format and compression, the read-back;
//! - [`catalog`]: the catalog snapshot, row counts, the structural schema diff;
//! - `checks` (internal): running preflight and verify checks read-only against their expectations;
//! - [`evidence`]: run folders, 0600/0700 files, SHA256SUMS, the hash-chained ledger;
//! - `fault` (internal): test-only fault injection (kills, a full disk, a damaged dump);
//! - [`locktrace`]: the rehearsal's per-statement lock trace and `[rehearsal] lock_budget_ms`;
//! - [`migration`]: running the migration with its expectations checked before COMMIT;
//! - [`pipeline`]: the apply and verify pipelines, their steps and their run record;
//! - [`probe`]: side-effect probes: captures before and after, compared row by row;
//! - [`reference`]: the reference package and its fixture (the seed's change);
//! - [`rehearsal`]: the sealed rehearsal record and the rehearsal gate's rule;
//! - [`rehearse`]: rehearsing a package on a restored copy of a fresh backup;
//! - `roles` (internal): the target's roles and memberships, as a rehearsal cluster recreates them;
//! - `rollback` (internal): the gated rollback pipeline and its restore scripts;
//! - [`run_record`]: `run.json`, the record of one run (what the pipeline writes, the report
//!   renders and `status` reads);
//! - [`status`]: what was applied to a target, read from the evidence.

pub mod approval;
pub mod backup;
mod blockers;
pub mod catalog;
mod checks;
pub mod cluster;
pub mod digest;
pub mod evidence;
pub mod exit;
pub mod expect;
mod fault;
pub mod gate;
mod html;
pub mod lint;
pub mod locktrace;
pub mod migration;
pub mod package;
pub mod pin;
pub mod pipeline;
pub mod probe;
pub mod reference;
pub mod rehearsal;
pub mod rehearse;
mod report;
pub mod review;
mod roles;
mod rollback;
pub mod run_record;
pub mod scaffold;
pub mod source;
pub mod sql;
pub mod status;
pub mod target;
