//! Raw command-line arguments (clap derive). Commands turn them into validated library values.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = "Gated, evidence-producing PostgreSQL schema changes", long_about = None)]
pub struct Cli {
    /// Print one JSON document on stdout (human text goes to stderr).
    #[arg(long, global = true)]
    pub json: bool,
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
    Lint {
        package: PathBuf,
        /// Fail on findings of this severity and above.
        #[arg(long, value_enum, default_value = "error")]
        deny: DenyLevel,
        /// Also read the target (read-only) for hazards that need it (trigger-side-effect).
        #[arg(long)]
        target: Option<String>,
    },
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
}
