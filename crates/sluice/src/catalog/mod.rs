//! Catalog snapshots and structural diff (being written).
