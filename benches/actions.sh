#!/usr/bin/env bash
# Containment at the API's speed: 50 and 500 matching alerts/s and a 1,000-user approved
# containment, with the Users API at 1 ms and at 100 ms, on SQLite and PostgreSQL.
# Knobs: STORES (default "sqlite postgres"), LATENCIES (default "1 100"), SECONDS (default 4).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench actions --no-run >/dev/null 2>&1 || cargo bench --bench actions --no-run
export RUST_LOG=${RUST_LOG:-error}
for store in ${STORES:-sqlite postgres}; do
  for ms in ${LATENCIES:-1 100}; do
    for rate in 50 500; do
      STORE=$store LATENCY_MS=$ms SCENARIO=rate RATE=$rate SECONDS=${SECONDS_EACH:-4} \
        cargo bench -q --bench actions 2>/dev/null | grep -v '^$'
    done
    STORE=$store LATENCY_MS=$ms SCENARIO=containment USERS=1000 \
      cargo bench -q --bench actions 2>/dev/null | grep -v '^$'
  done
done
