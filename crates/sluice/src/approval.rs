//! Signed approvals (being written).
