#!/usr/bin/env bash
# Compares two builds of the service by running them at the same time on the same machine:
# each gets its own SQLite store and its own wrk (one thread, CONNECTIONS connections) posting
# new generic alerts. Both see the same machine, whatever it does that minute: on this shared
# machine the same binary measured alone varies by ±30% from one minute to the next, which
# hides changes of a few percent; side by side, the same binary twice came out at 0.97–1.03
# (BENCHMARKS.md). Run it several times both ways round (A B, then B A) and average. Not for
# changes in the number of threads: the kernel shares the cores by thread, so the build with
# more threads gets more of them (3 HTTP workers against 2 came out 1.13-1.20 here, and the
# same alone).
#   bash benches/side_by_side.sh OLD_BINARY NEW_BINARY
#   DURATION=8 CONNECTIONS=64 bash benches/side_by_side.sh target/release/lockout /tmp/lockout-new
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BINARY_A BINARY_B" >&2; exit 2; }
A=$1; B=$2
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-64}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
playbooks="$(cd "$(dirname "$0")/.." && pwd)/playbooks"
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/generic.lua" <<'LUA'
local n = 0
local run = tostring(os.time()) .. tostring(math.random(1000000))
request = function()
  n = n + 1
  local body = string.format('{"id":"s-%s-%d","title":"bench alert","severity":"low","user":{"email":"user%d@example.com"}}', run, n, n % 500)
  return wrk.format("POST", "/v1/alerts/generic", {["Content-Type"]="application/json", ["Authorization"]="Bearer bench-token"}, body)
end
LUA
echo '[]' > "$work/users.json"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { # name, binary, port
  cat > "$work/$1.yaml" <<YAML
server: { listen: "127.0.0.1:$3", admin_token: "bench-admin" }
store: { url: "sqlite://$work/$1.db" }
playbooks: { dir: "$playbooks" }
sandbox: { users_file: "$work/users.json" }
worker: { concurrency: 4, poll_interval_ms: 20 }
approvals: { hs256_secret: "bench-approver-signing-secret" }
sources:
  generic: { format: generic, auth: { type: bearer, token: "bench-token" } }
YAML
  RUST_LOG=warn "$2" --config "$work/$1.yaml" serve 2>"$work/$1.log" &
  pids+=($!)
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$3/healthz" >/dev/null && return; sleep 0.1; done
  echo "$1 did not start:" >&2; cat "$work/$1.log" >&2; exit 1
}
port_a=$(free_port); port_b=$(free_port)
start a "$A" "$port_a"; start b "$B" "$port_b"
wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$work/generic.lua" "http://127.0.0.1:$port_a" > "$work/a.out" &
wrk_a=$!
wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$work/generic.lua" "http://127.0.0.1:$port_b" > "$work/b.out" &
wrk_b=$!
wait $wrk_a $wrk_b
rate() { awk '/Requests\/sec/ {print $2}' "$1"; }
rate_a=$(rate "$work/a.out"); rate_b=$(rate "$work/b.out")
echo "A $A: $rate_a alerts/s"
echo "B $B: $rate_b alerts/s"
echo "B/A: $(python3 -c "print(round($rate_b / $rate_a, 3))")"
