#!/usr/bin/env bash
# Service benchmark, for each store (SQLite, PostgreSQL) in one run:
#  - intake: accepted alerts per second and latency of the 202 under wrk on loopback, next to
#    a bare GET /healthz (the ceiling). Every accepted alert is durably stored before its 202.
#  - actions: suspensions per second, end to end (alert → plan → claim → get_user → :suspend
#    → audit), against the in-process fake Users API with no latency.
# Bounded: each wrk run lasts DURATION seconds; the action run is ACTIONS alerts.
#   bash benches/intake.sh                     (builds the release binary first)
#   DURATION=10 CONNECTIONS="128 256" ACTIONS=2000 STORES="sqlite postgres" bash benches/intake.sh
# The service loads the shipped playbooks (playbooks/) plus one bench playbook; the intake
# alerts match none of them, as most SIEM traffic does (alerts that start actions are what the
# actions figure measures).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
# Each intake run is repeated at each of these concurrencies (wrk connections).
CONNECTION_COUNTS=${CONNECTIONS:-128 256}
ACTIONS=${ACTIONS:-2000}
STORES=${STORES:-sqlite postgres}
PG=${LOCKOUT_TEST_DATABASE_URL:-postgres://root@127.0.0.1:5432/test}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
cargo build --release --bin lockout -q
bin=${CARGO_TARGET_DIR:-target}/release/lockout
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT

# Every request is a new alert. wrk's setup() runs in the main Lua state and gives each thread
# its own number (the threads' own states would all draw the same "random" run id).
lua_head='local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
  thread:set("run", os.time())
end
local n = 0'
cat > "$work/generic.lua" <<LUA
$lua_head
LUA
cat >> "$work/generic.lua" <<'LUA'
request = function()
  n = n + 1
  local body = string.format('{"id":"b-%d-%d-%d","title":"bench alert","severity":"low","user":{"email":"user%d@example.com"}}', run, tid, n, n % 500)
  return wrk.format("POST", "/v1/alerts/generic", {["Content-Type"]="application/json", ["Authorization"]="Bearer bench-token"}, body)
end
LUA
cat > "$work/alertmanager.lua" <<LUA
$lua_head
LUA
cat >> "$work/alertmanager.lua" <<'LUA'
request = function()
  n = n + 1
  local body = string.format('{"receiver":"lockout","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Bench","severity":"low","user":"user%d@example.com"},"annotations":{},"startsAt":"2026-11-24T16:03:16Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://x","fingerprint":"%x%x%x"}],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am","version":"4","groupKey":"{}","truncatedAlerts":0}', n % 500, run, tid, n)
  return wrk.format("POST", "/v1/alerts/alertmanager", {["Content-Type"]="application/json", ["Authorization"]="Bearer bench-token"}, body)
end
LUA
# Users for the fake: ACTIONS of them.
python3 - "$ACTIONS" > "$work/users.json" <<'PY'
import json, sys
n = int(sys.argv[1]); A = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
def uid(i):
    s = "BEN"; x = i * 2654435761 + 12345
    while len(s) < 26:
        s += A[x % 32]; x = (x // 32) * 31 + 7
    return s
print(json.dumps([{"id": uid(i), "email": f"act{i:05d}@example.com", "display_name": f"U{i}"} for i in range(n)]))
PY
mkdir -p "$work/playbooks"
cp playbooks/*.yaml "$work/playbooks/"
cat > "$work/playbooks/act.yaml" <<'YAML'
name: bench-suspend
on:
  when: "alert.title == 'act now'"
steps:
  - suspend: {}
YAML

best() { python3 -c "print(max($1, $2))"; }

run_wrk() { # name, args... (sets rps)
  local name=$1; shift
  local out p50 p99 non2xx
  out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '  %-20s %10s req/s   p50 %-9s p99 %-9s non-2xx %s' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
  # Intake runs are compared with the bare route measured just before them: this machine's
  # ceiling moves by ±15% from minute to minute.
  if [[ $name == GET* ]]; then ceiling=$rps; echo
  else printf '   (%s%% of the GET /healthz just before)\n' "$(python3 -c "print(round(100 * $rps / $ceiling, 1))")"; fi
}

# CPU time of the service's threads, by thread name, in clock ticks (100 per second), and
# what they wrote (bytes; "+" before the name).
thread_ticks() {
  for t in /proc/$pid/task/*; do
    # utime and stime are fields 14 and 15, counted after the name in parentheses, which may
    # hold spaces ("actix-server worker 0"): cut it off first.
    printf '%s %s\n' "$(tr ' ' _ <"$t/comm")" "$(sed 's/^.*) //' "$t/stat" | awk '{print $12 + $13}')"
    printf '+%s %s\n' "$(tr ' ' _ <"$t/comm")" "$(awk '/^wchar/ {print $2}' "$t/io")"
  done | awk '{s[$1] += $2} END {for (k in s) print k, s[k]}' | sort
}

# Where an intake run's CPU went, per stored alert (each thread group's ticks over the run),
# and what the store threads wrote per alert (WAL frames, database pages, the HTTP responses).
cpu_per_alert() { # ticks before, ticks after, alerts stored
  join <(echo "$1") <(echo "$2") | awk -v n="$3" '$1 !~ /^\+/ && $3 > $2 && n > 0 {printf "%s %.1f µs, ", $1, ($3 - $2) * 10000 / n}' |
    sed 's/, $//; s/^/                       CPU per alert: /'
  echo
  join <(echo "$1") <(echo "$2") | awk -v n="$3" '$1 ~ /^\+lockout/ && $3 - $2 > 1000 * n && n > 0 {printf "%s %d bytes, ", substr($1, 2), ($3 - $2) / n}' |
    sed 's/, $//; s/^/                       written per alert: /'
  echo
}

count_unevaluated() { # store url
  if [[ $1 == postgres* ]]; then psql "$1" -tAq -c "select count(*) from alerts where state = 'received'"
  else sqlite3 "${1#sqlite://}" "select count(*) from alerts where state = 'received'"; fi
}

# Waits until the planner has evaluated every stored alert, so one run's backlog does not
# weigh on the next; prints how long that took.
drain() { # store url
  local started left
  started=$(date +%s.%N)
  while left=$(count_unevaluated "$1"); [ "$left" -gt 0 ]; do sleep 0.2; done
  printf '  %-20s planner backlog drained %ss after the run; stored so far: %s alerts, %s of them duplicates\n' "" "$(python3 -c "import time; print(round(time.time() - $started, 1))")" \
    "$(sql "$1" "select count(*) from alerts")" "$(sql "$1" "select count(*) from alerts where state = 'duplicate'")"
}

sql() { # store url, query
  if [[ $1 == postgres* ]]; then psql "$1" -tAq -c "$2"
  else sqlite3 "${1#sqlite://}" "$2"; fi
}

count_succeeded() { # store url
  if [[ $1 == postgres* ]]; then psql "$1" -tAq -c "select count(*) from actions where state = 'succeeded'"
  else sqlite3 "${1#sqlite://}" "select count(*) from actions where state = 'succeeded'"; fi
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB; wrk -t2 -d${DURATION}s on loopback with $CONNECTION_COUNTS connections; release build"
for store in $STORES; do
  if [ "$store" = postgres ]; then
    db="lockout_bench_$(date +%s)"
    psql "$PG" -q -c "CREATE DATABASE $db" || { echo "postgres: skipped (no server at $PG)"; continue; }
    base=${PG%%\?*}; query=${PG#"$base"}
    url="${base%/*}/$db$query"
  else
    url="sqlite://$work/bench-$(date +%s).db"
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$work/lockout.yaml" <<YAML
server: { listen: "127.0.0.1:$port", admin_token: "bench-admin", http_workers: ${HTTP_WORKERS:-0} }
store: { url: "$url" }
playbooks: { dir: "$work/playbooks" }
sandbox: { users_file: "$work/users.json" }
directory: { ttl_secs: 3600, miss_refresh_secs: 3600 }
approvals: { hs256_secret: "bench-approver-signing-secret" }
worker: { concurrency: 4, poll_interval_ms: 20 }
sources:
  generic: { format: generic, auth: { type: bearer, token: "bench-token" } }
  alertmanager: { format: alertmanager, auth: { type: bearer, token: "bench-token" } }
YAML
  RUST_LOG=warn "$bin" --config "$work/lockout.yaml" serve 2>"$work/serve-$store.log" &
  pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  echo "$store:"
  best_healthz=0; best_generic=0; best_alertmanager=0
  for CONNECTIONS in $CONNECTION_COUNTS; do
    echo " $CONNECTIONS connections:"
    run_wrk "GET /healthz" "http://127.0.0.1:$port/healthz"
    best_healthz=$(best "$best_healthz" "$rps")
    before=$(thread_ticks); stored=$(sql "$url" "select count(*) from alerts")
    run_wrk "POST generic" -s "$work/generic.lua" "http://127.0.0.1:$port"
    best_generic=$(best "$best_generic" "$rps")
    cpu_per_alert "$before" "$(thread_ticks)" $(( $(sql "$url" "select count(*) from alerts") - stored ))
    drain "$url"
    run_wrk "GET /healthz" "http://127.0.0.1:$port/healthz"
    best_healthz=$(best "$best_healthz" "$rps")
    run_wrk "POST alertmanager" -s "$work/alertmanager.lua" "http://127.0.0.1:$port"
    best_alertmanager=$(best "$best_alertmanager" "$rps")
    drain "$url"
  done
  # Capacity against capacity: each route at the concurrency that suits it best.
  printf '  %-20s generic %s%%, alertmanager %s%% of the best GET /healthz (%s req/s), each at its best concurrency above\n' "capacity" \
    "$(python3 -c "print(round(100 * $best_generic / $best_healthz, 1))")" "$(python3 -c "print(round(100 * $best_alertmanager / $best_healthz, 1))")" "$best_healthz"
  # Actions: ACTIONS alerts (in requests of 500), each suspending a different user.
  python3 - "$ACTIONS" "$work" <<'PY'
import json, sys
n, work = int(sys.argv[1]), sys.argv[2]
for start in range(0, n, 500):
    body = [{"id": f"act-{i}", "title": "act now", "severity": "high", "user": {"email": f"act{i:05d}@example.com"}} for i in range(start, min(n, start + 500))]
    open(f"{work}/act-{start}.json", "w").write(json.dumps(body))
PY
  started=$(date +%s.%N)
  for f in "$work"/act-*.json; do
    curl -fs -o /dev/null -X POST "http://127.0.0.1:$port/v1/alerts/generic" -H 'Authorization: Bearer bench-token' -H 'Content-Type: application/json' --data-binary "@$f"
  done
  deadline=$(( $(date +%s) + 300 ))
  while [ "$(count_succeeded "$url")" -lt "$ACTIONS" ]; do
    [ "$(date +%s)" -lt $deadline ] || { echo "  actions: did not finish in 300 s"; break; }
    sleep 0.2
  done
  elapsed=$(python3 -c "import time; print(round(time.time() - $started, 2))")
  printf '  %-20s %10s actions/s (%s suspensions in %ss, fake API without latency)\n' "actions" "$(python3 -c "print(round($ACTIONS / $elapsed))")" "$ACTIONS" "$elapsed"
  kill $pid; wait $pid 2>/dev/null || true; pid=
  rm -f "$work"/act-*.json
  [ "$store" = postgres ] && psql "$PG" -q -c "DROP DATABASE $db" || true
done
