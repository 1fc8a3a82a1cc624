#!/usr/bin/env bash
# Fuzzes the running service from its own OpenAPI document with schemathesis (bounded).
# Starts `lockout serve` in sandbox mode in a temporary folder, runs schemathesis once with
# the admin token and once with an approver JWT, stops the service.
#   SCHEMATHESIS=/path/to/schemathesis bash scripts/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ST=${SCHEMATHESIS:-schemathesis}
EXAMPLES=${EXAMPLES:-25}
cargo build -q --bin lockout
bin="$PWD/target/debug/lockout"
work=$(mktemp -d)
cp -r playbooks "$work/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# exec: $! is then the service itself, which the trap stops (not a subshell that leaves it
# running).
(cd "$work" && exec env LOCKOUT__SERVER__LISTEN="127.0.0.1:$port" RUST_LOG=warn "$bin" serve >"$work/serve.log" 2>&1) &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
url="http://127.0.0.1:$port/openapi.json"
jwt=$(cd "$work" && "$bin" token --approver schemathesis@example.com --role secops --role analyst)
common=(--max-examples "$EXAMPLES" --seed 42 --generation-deterministic)
echo "== admin and public operations"
"$ST" run "$url" "${common[@]}" -H "Authorization: Bearer sandbox-admin" \
  --exclude-path-regex '^/v1/(approvals|users|suppressions|alerts$|playbooks/\{name\}/shadow)'
echo "== approver operations"
"$ST" run "$url" "${common[@]}" -H "Authorization: Bearer $jwt" \
  --include-path-regex '^/v1/(approvals|users|suppressions|alerts$|playbooks/\{name\}/shadow)'
