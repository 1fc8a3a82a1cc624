#!/usr/bin/env bash
# Console page times with a large store: starts the release binary in sandbox mode on a fresh
# SQLite store, loads ALERTS alerts (1,000 per request; each names its own user, none matches
# a playbook but one in 1,000 that waits for approval), signs in with the sandbox sign-in, and
# times each console page RUNS times with curl on loopback (time to first byte, which is the
# server's time plus a loopback round trip). Prints the median and the worst per page.
#   bash benches/console.sh
#   ALERTS=100000 RUNS=20 bash benches/console.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ALERTS=${ALERTS:-100000}
RUNS=${RUNS:-20}
cargo build --release --bin lockout -q
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/lockout")
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cp -r playbooks "$work/playbooks"
cd "$work"
cat > lockout.yaml <<YAML
server: { listen: "127.0.0.1:$port", body_limit_bytes: 4194304 }
approvals: { hs256_secret: "bench-approver-signing-secret" }
sources:
  generic: { format: generic, auth: { type: bearer, token: "sandbox-token" } }
YAML
# No users_api: sandbox mode (the fake Users API, the sandbox sign-in).
RUST_LOG=warn "$bin" --config lockout.yaml serve 2>serve.log &
pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
python3 - "$port" "$ALERTS" <<'PY'
import http.client, json, sys, time
port, total = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
started, sent = time.time(), 0
while sent < total:
    batch = []
    for i in range(sent, min(sent + 1000, total)):
        a = {"id": f"bench-{i}", "title": f"bench alert {i}", "severity": "low",
             "user": {"email": f"user{i}@example.com"}}
        if i % 1000 == 0:
            a.update(title="impossible travel", severity="high",
                     user={"email": "bob@example.com"}, labels={"detection": "impossible_travel"}, id=f"travel-{i}")
        batch.append(a)
    conn.request("POST", "/v1/alerts/generic", json.dumps(batch),
                 {"Authorization": "Bearer sandbox-token", "Content-Type": "application/json"})
    r = conn.getresponse(); r.read()
    assert r.status == 202, r.status
    sent += len(batch)
print(f"loaded {sent} alerts in {time.time() - started:.1f} s")
PY
sleep 2
base="http://127.0.0.1:$port/console"
token=$(curl -s -c jar -b jar "$base/sign-in" | grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"//')
curl -s -c jar -b jar -o /dev/null -X POST -d "csrf=$token&identity=ana@example.com" "$base/auth/sandbox"
approval=$(curl -s -b jar "$base/approvals" | grep -o 'approvals/apr_[a-z0-9]*' | head -1 || true)
alert=$(curl -s -b jar "$base/alerts" | grep -o 'alerts/alr_[a-z0-9]*' | head -1)
printf '%-40s %10s %10s\n' page median_ms worst_ms
for page in approvals "$approval" alerts "$alert" "alerts?q=user4242@example.com" "alerts?q=nobody@example.com" "alerts?q=bench+alert+4242" \
  "users?q=bob" "users/bob@example.com" audit "audit?kind=approval" "audit/verify"; do
  [ -n "$page" ] || continue
  times=()
  for _ in $(seq 1 "$RUNS"); do
    times+=("$(curl -s -b jar -o /dev/null -w '%{http_code} %{time_starttransfer}' "$base/$page")")
  done
  printf '%s\n' "${times[@]}" | python3 -c '
import sys
rows = [l.split() for l in sys.stdin if l.strip()]
codes = {r[0] for r in rows}
ms = sorted(float(r[1]) * 1000 for r in rows)
name = sys.argv[1]
print(f"{name:<40} {ms[len(ms)//2]:10.1f} {ms[-1]:10.1f}" + ("" if codes == {"200"} else f"   status {codes}"))
' "$page"
done
