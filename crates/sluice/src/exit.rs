//! SPEC §8's exit codes, one type: what a run's end means for the target. The pipeline's
//! phases map onto it, the CLI returns it, run.json and the ledger record its number.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitCode {
    /// 0: done, every gate held.
    Done,
    /// 1: an unexpected internal error (also: evidence that could not be written, or a bundle
    /// that `evidence check` finds changed).
    Internal,
    /// 2: a usage error or an invalid package.
    Usage,
    /// 3: a gate refused before the migration started: the target is unchanged.
    Refused,
    /// 4: the migration failed or its expectations did not match: rolled back, unchanged.
    RolledBack,
    /// 5: the migration committed (in part, without a transaction) but a later check failed:
    /// rollback is available.
    CommittedButFailed,
    /// 6: the rollback failed, or the schema after it is not the pre snapshot.
    RollbackFailed,
}

impl ExitCode {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Done => 0,
            ExitCode::Internal => 1,
            ExitCode::Usage => 2,
            ExitCode::Refused => 3,
            ExitCode::RolledBack => 4,
            ExitCode::CommittedButFailed => 5,
            ExitCode::RollbackFailed => 6,
        }
    }

    /// The code a number stands for, for records read back.
    pub fn from_code(code: i32) -> Option<ExitCode> {
        ALL.iter().copied().find(|c| i32::from(c.code()) == code)
    }
}

/// Every code, in order.
pub const ALL: [ExitCode; 7] = [
    ExitCode::Done,
    ExitCode::Internal,
    ExitCode::Usage,
    ExitCode::Refused,
    ExitCode::RolledBack,
    ExitCode::CommittedButFailed,
    ExitCode::RollbackFailed,
];

impl std::fmt::Display for ExitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spec_section_8s_and_round_trip() {
        let codes: Vec<u8> = ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6]);
        for c in ALL {
            assert_eq!(ExitCode::from_code(i32::from(c.code())), Some(c));
        }
        assert_eq!(ExitCode::from_code(7), None);
    }
}
