#!/usr/bin/env bash
# Intake benchmark: accepted alerts per second and latency of the 202 under wrk on loopback,
# next to a bare GET /healthz (the ceiling). Every accepted alert is durably stored (SQLite,
# synchronous=FULL) before its 202. Bounded: three runs of DURATION seconds each.
#   bash benches/intake.sh            (builds the release binary first)
#   DURATION=10 CONNECTIONS=32 bash benches/intake.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
cargo build --release --bin lockout -q
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/playbooks"
# One playbook that evaluates every alert and matches none: intake + planning, no Users API load.
cat > "$work/playbooks/none.yaml" <<'YAML'
name: never
on:
  when: "alert.title == 'this never matches'"
steps:
  - suspend: {}
YAML
cat > "$work/lockout.yaml" <<YAML
server: { listen: "127.0.0.1:$port", admin_token: "bench-admin", http_workers: ${HTTP_WORKERS:-0} }
store: { url: "sqlite://$work/bench.db" }
playbooks: { dir: "$work/playbooks" }
sources:
  generic: { format: generic, auth: { type: bearer, token: "bench-token" } }
  alertmanager: { format: alertmanager, auth: { type: bearer, token: "bench-token" } }
YAML
RUST_LOG=warn ./target/release/lockout --config "$work/lockout.yaml" serve 2>"$work/serve.log" &
pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

cat > "$work/generic.lua" <<'LUA'
local n = 0
math.randomseed(os.time() + math.random(1, 100000))
local run = math.random(1, 1000000000)
request = function()
  n = n + 1
  local body = string.format('{"id":"b-%d-%d","title":"bench alert","severity":"low","user":{"email":"user%d@example.com"}}', run, n, n % 500)
  return wrk.format("POST", "/v1/alerts/generic", {["Content-Type"]="application/json", ["Authorization"]="Bearer bench-token"}, body)
end
LUA
cat > "$work/alertmanager.lua" <<'LUA'
local n = 0
math.randomseed(os.time() + math.random(1, 100000))
local run = math.random(1, 1000000000)
request = function()
  n = n + 1
  local body = string.format('{"receiver":"lockout","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Bench","severity":"low","user":"user%d@example.com"},"annotations":{},"startsAt":"2026-11-24T16:03:16Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://x","fingerprint":"%x%x"}],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am","version":"4","groupKey":"{}","truncatedAlerts":0}', n % 500, run, n)
  return wrk.format("POST", "/v1/alerts/alertmanager", {["Content-Type"]="application/json", ["Authorization"]="Bearer bench-token"}, body)
end
LUA

run() { # name, extra args...
  local name=$1; shift
  local out
  out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@")
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-22s %10s req/s   p50 %-9s p99 %-9s non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
}
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB; wrk -t2 -c$CONNECTIONS -d${DURATION}s on loopback"
run "GET /healthz" "http://127.0.0.1:$port/healthz"
run "POST generic" -s "$work/generic.lua" "http://127.0.0.1:$port"
run "POST alertmanager" -s "$work/alertmanager.lua" "http://127.0.0.1:$port"
stored=$(sqlite3 "$work/bench.db" "select count(*) from alerts" 2>/dev/null || echo "?")
echo "alerts stored: $stored"
