#!/usr/bin/env bash
# Benchmarks of sluice against the hand-run procedure (the seed's pg_dump / psql / sha256sum /
# COPY / diff), measured in the same run on the same throwaway PostgreSQL.
#
#   bench/run.sh [--scale small|full] [BENCHMARK…]
#     small: 1,000 tables, 1,000,000 rows, an 8 s blocker — a few minutes on 2 cores
#     full:  10,000 tables, 10,000,000 rows, a 30 s blocker — the real figure (BENCHMARKS.md)
#     BENCHMARK: schema-snapshot-diff probe apply-end-to-end lock-safety backup-at-scale rehearse-at-scale lint-20k lock-trace-overhead (default: all)
#
# Prints `BENCH <name> sluice=<s> baseline=<s> ratio=<sluice/baseline> …` per benchmark, then a
# table. SLUICE_PG_BINDIR picks the server, SLUICE_PG_DUMP_BINDIR pg_dump/psql/pgbench.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=small
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale="$2"; shift 2 ;;
    --scale=*) scale="${1#--scale=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$scale" in small|full) ;; *) echo "bench/run.sh: --scale small|full" >&2; exit 2 ;; esac
cargo build --release --quiet -p sluice-cli -p sluice-bench
exec target/release/sluice-bench "$scale" "${args[@]}"
