#!/usr/bin/env bash
# Soak test (by hand, not part of CI). Runs nats-server (config mode, auth_callout,
# xkey) and `nats-callout serve` with the hostile test policy (timeout 100 ms,
# memory 32 MiB, max_in_flight 8), and for the given time keeps a few client
# streams connecting (tools/loadgen/examples/soak.rs) as users the policy acts on:
#   ok                                  allowed: the client must be admitted
#   deny                                denied by the policy
#   loop alloc panic flood sleep block  hostile: spin, allocate, trap, flood the
#   forge-reason random                 output, sleep or poll in WASI (20 s, a day),
#                                       forge a log line, over-ask the host —
#                                       each must be denied within its limits
#   leak                                leaks 1,000 WASI handles, then is allowed
# Every minute nats-server is killed and started again on the same port (the
# service reconnects by itself); every 10 s nats-callout's RSS is sampled. At the
# end it prints a Markdown summary: per user, what the clients saw against what
# the service logged, requests dropped (client timeouts) in and out of restart
# windows, RSS over time, and a verdict.
#
# Usage: scripts/soak.sh [MINUTES]          (default 10)
# Environment:
#   SOAK_SECONDS=<n>       run n seconds instead of MINUTES (short trials)
#   SOAK_RESTART_SECS=<n>  nats-server restart period (default 60; 0 = never)
#   SOAK_SAMPLE_SECS=<n>   RSS sample period (default 10)
#   SOAK_STREAMS=<n>       concurrent client streams (default 4)
#   SOAK_MIX=<user:w,...>  users and weights (default ok:4,deny:3,loop:1,alloc:1,panic:1,flood:1,sleep:1,block:1,leak:1,forge-reason:1,random:1)
#   SOAK_PAUSE_MS=<n>      pause between two connects of one stream (default 20)
#   SOAK_TIMEOUT_MS=<n>    client connect timeout (default 2000; nats-server waits 5 s)
#   SOAK_KILL_SIGNAL=<sig> how nats-server is stopped for a restart (default KILL)
#   NATS_SERVER_BIN=<path> use this nats-server and skip scripts/setup.sh
#   RUST_LOG=<filter>      the service's log filter (default info,async_nats=warn; the
#                          decision lines of nats_callout::decision must stay at info)
# Logs, samples and the summary stay in a temporary folder, printed at start and end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() { echo "usage: scripts/soak.sh [MINUTES]  (see the header of this script)" >&2; exit 2; }
minutes=${1:-10}
[[ $minutes =~ ^[0-9]+$ ]] || usage
seconds=${SOAK_SECONDS:-$((minutes * 60))}
restart_secs=${SOAK_RESTART_SECS:-60}
sample_secs=${SOAK_SAMPLE_SECS:-10}
streams=${SOAK_STREAMS:-4}
mix=${SOAK_MIX:-ok:4,deny:3,loop:1,alloc:1,panic:1,flood:1,sleep:1,block:1,leak:1,forge-reason:1,random:1}
pause_ms=${SOAK_PAUSE_MS:-20}
timeout_ms=${SOAK_TIMEOUT_MS:-2000}
kill_signal=${SOAK_KILL_SIGNAL:-KILL}
for n in "$seconds" "$restart_secs" "$sample_secs" "$streams" "$pause_ms" "$timeout_ms"; do
  [[ $n =~ ^[0-9]+$ ]] || usage
done
[ "$seconds" -gt 0 ] && [ "$sample_secs" -gt 0 ] || usage

log() { echo "soak: $*" >&2; }
now_ms() { date +%s%3N; }

work=$(mktemp -d "${TMPDIR:-/tmp}/nats-callout-soak.XXXXXX")
log "logs in $work"

server_pid= callout_pid= client_pid=
# Stops one of our processes: SIGTERM, then SIGKILL after $2 seconds.
stop() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for i in $(seq $(( ${2:-10} * 10 ))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  # The client, then the service (it drains and exits on SIGTERM), then the server.
  stop "$client_pid" 5
  stop "$callout_pid" 20
  stop "$server_pid" 5
  log "logs in $work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build --------------------------------------------------------------------
if [ -z "${NATS_SERVER_BIN:-}" ]; then
  # An assignment, so a failing script stops this one (set -e skips eval's).
  env_line=$(scripts/setup.sh | tail -1)
  eval "export $env_line"
fi
[ -x "$NATS_SERVER_BIN" ] || { log "no nats-server at $NATS_SERVER_BIN"; exit 1; }
cargo build --release --locked -p nats-callout --bin nats-callout >&2
cargo build --release --locked -p nats-callout-loadgen --example soak >&2
cargo build --release --locked --target wasm32-wasip2 -p hostile-policy >&2
bin=$root/target/release/nats-callout
client=$root/target/release/examples/soak
policy=$root/target/wasm32-wasip2/release/hostile_policy.wasm
[ -f "$policy" ] || { log "$policy is missing"; exit 1; }

# --- configuration --------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
url=nats://127.0.0.1:$port
"$bin" keys --out "$work" > "$work/keys.txt"
issuer=$(sed -n 's/^ *issuer: //p' "$work/keys.txt")
xkey=$(sed -n 's/^ *xkey: //p' "$work/keys.txt")

cat > "$work/server.conf" <<CONF
listen: 127.0.0.1:$port
server_name: soak
accounts {
  AUTH { users: [ { user: auth, password: pwd } ] }
  APP {}
  SYS {}
}
system_account: SYS
authorization {
  timeout: 5s
  auth_callout {
    issuer: $issuer
    xkey: $xkey
    account: AUTH
    auth_users: [ auth ]
  }
}
CONF

cat > "$work/callout.toml" <<CONF
[nats]
servers = ["$url"]
user = "auth"
password = "pwd"

[issuer]
seed_file = "issuer.seed"
xkey_seed_file = "xkey.seed"

[policy]
wasm = "$policy"
accounts = ["APP"]
timeout_ms = 100
memory_mb = 32

[policy.settings]
account = "APP"

[service]
max_in_flight = 8
CONF

# --- processes --------------------------------------------------------------------
wait_port() {
  local i
  for i in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
start_server() {
  echo "=== start $(date -Is)" >> "$work/server.log"
  "$NATS_SERVER_BIN" -c "$work/server.conf" >> "$work/server.log" 2>&1 &
  server_pid=$!
  wait_port || { log "nats-server does not listen on $port"; tail -20 "$work/server.log" >&2; exit 1; }
}
connected_count() { grep -c '"connected to NATS"' "$work/callout.log" || true; }
sample() { # elapsed_s rss_kib fds threads
  local status=/proc/$callout_pid/status rss threads fds
  rss=$(awk '/^VmRSS/ {print $2}' "$status" 2>/dev/null) || return 0
  threads=$(awk '/^Threads/ {print $2}' "$status" 2>/dev/null) || return 0
  fds=$(find "/proc/$callout_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  [ -n "$rss" ] && echo "$(( ($(now_ms) - start_ms) / 1000 )) $rss $fds $threads" >> "$work/rss.tsv"
  return 0
}

start_server
RUST_LOG=${RUST_LOG:-info,async_nats=warn} NO_COLOR=1 \
  "$bin" --log-format json serve --config "$work/callout.toml" > "$work/callout.log" 2>&1 &
callout_pid=$!
for _ in $(seq 2400); do
  grep -q "serving auth callout requests" "$work/callout.log" && break
  kill -0 "$callout_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q "serving auth callout requests" "$work/callout.log" || {
  log "nats-callout did not start:"; tail -20 "$work/callout.log" >&2; exit 1
}
log "nats-server pid $server_pid on $url, nats-callout pid $callout_pid"

start_ms=$(now_ms)
: > "$work/restarts.tsv"
: > "$work/rss.tsv"
sample
"$client" --server "$url" --seconds "$seconds" --out "$work/attempts.jsonl" \
  --streams "$streams" --pause-ms "$pause_ms" --timeout-ms "$timeout_ms" --mix "$mix" \
  2> >(tee "$work/client.log" >&2) &
client_pid=$!

# --- the run: restarts and samples until the client stops ---------------------------
next_sample=$((start_ms + sample_secs * 1000))
next_restart=$([ "$restart_secs" -gt 0 ] && echo $((start_ms + restart_secs * 1000)) || echo 0)
end_ms=$((start_ms + seconds * 1000))
restarts=0
service_died=0
while kill -0 "$client_pid" 2>/dev/null; do
  if ! kill -0 "$callout_pid" 2>/dev/null; then
    log "nats-callout exited during the run"; service_died=1; break
  fi
  now=$(now_ms)
  if [ "$now" -ge "$next_sample" ]; then
    sample
    next_sample=$((next_sample + sample_secs * 1000))
  fi
  # No restart in the last 5 s: the run would end inside its window.
  if [ "$next_restart" -gt 0 ] && [ "$now" -ge "$next_restart" ] && [ "$now" -lt $((end_ms - 5000)) ]; then
    restarts=$((restarts + 1))
    before=$(connected_count)
    kill_ms=$(now_ms)
    kill "-$kill_signal" "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    start_server
    up_ms=$(now_ms)
    back_ms=
    for _ in $(seq 300); do
      if [ "$(connected_count)" -gt "$before" ]; then back_ms=$(now_ms); break; fi
      sleep 0.1
    done
    printf '%s\t%s\t%s\t%s\n' "$restarts" "$kill_ms" "$up_ms" "${back_ms:--}" >> "$work/restarts.tsv"
    if [ -n "$back_ms" ]; then
      log "restart $restarts: nats-server down $((up_ms - kill_ms)) ms, service back after $((back_ms - kill_ms)) ms"
    else
      log "restart $restarts: the service did not reconnect within 30 s"
    fi
    next_restart=$((next_restart + restart_secs * 1000))
  fi
  sleep 0.5
done
if [ "$service_died" = 1 ]; then
  kill "$client_pid" 2>/dev/null || true
fi
client_rc=0
wait "$client_pid" || client_rc=$?
client_pid=
sample

# --- shutdown: the service must drain and exit on SIGTERM ------------------------
stop_rc=-
stop_ms=-
if kill -0 "$callout_pid" 2>/dev/null; then
  t0=$(now_ms)
  kill -TERM "$callout_pid"
  for _ in $(seq 300); do kill -0 "$callout_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$callout_pid" 2>/dev/null; then
    log "nats-callout did not stop within 30 s of SIGTERM; killing it"
    kill -KILL "$callout_pid" 2>/dev/null || true
    wait "$callout_pid" 2>/dev/null || true
    stop_rc=hung
  else
    stop_rc=0
    wait "$callout_pid" || stop_rc=$?
    stop_ms=$(($(now_ms) - t0))
  fi
else
  stop_rc=0
  wait "$callout_pid" 2>/dev/null || stop_rc=$?
  stop_rc="died($stop_rc)"
fi
callout_pid=
stop "$server_pid" 5
server_pid=

# --- report ---------------------------------------------------------------------------
python3 - "$work" "$seconds" "$restart_secs" "$streams" "$mix" "$timeout_ms" "$client_rc" "$stop_rc" "$stop_ms" <<'PY' | tee "$work/summary.md"
import json, re, statistics, sys
from collections import Counter, defaultdict

work, seconds, restart_secs, streams, mix, timeout_ms, client_rc, stop_rc, stop_ms = sys.argv[1:]
seconds, restart_secs, timeout_ms = int(seconds), int(restart_secs), int(timeout_ms)
GRACE_MS = 1000  # after the service is back, requests queued in the outage still settle

# What each user should get from the hostile policy (any other name is allowed).
# ("grant" with the client's password, which is no grant spec, is denied too.)
REFUSED = {"deny", "loop", "alloc", "recurse", "panic", "huge", "flood", "escape", "foreign",
           "bad-subject", "sleep", "block", "forge-reason", "grant", "random"}
def expected_of(user):
    return "refused" if user in REFUSED else "admitted"

# Restart windows: from the kill until the service is back (plus grace).
windows = []
reconnect_ms = []
missing_reconnects = 0
for line in open(f"{work}/restarts.tsv"):
    _, kill_ms, up_ms, back = line.split()
    kill_ms, up_ms = int(kill_ms), int(up_ms)
    if back == "-":
        missing_reconnects += 1
        end = up_ms + 30_000
    else:
        end = int(back)
        reconnect_ms.append(end - kill_ms)
    windows.append((kill_ms, end + GRACE_MS))

def in_window(t0, t1):
    return any(t0 <= w1 and t1 >= w0 for w0, w1 in windows)

# What the clients saw.
users = []
client = defaultdict(Counter)   # user -> outcome (+ ":restart" inside a window) -> n
latency = defaultdict(list)     # user -> answered attempts' ms, outside windows
errors = Counter()
for line in open(f"{work}/attempts.jsonl"):
    a = json.loads(line)
    user, outcome = a["user"], a["outcome"]
    if user not in users:
        users.append(user)
    restart = in_window(a["t0"], a["t1"])
    client[user][outcome + (":restart" if restart else "")] += 1
    client[user]["attempts"] += 1
    if outcome in ("admitted", "refused") and not restart:
        latency[user].append(a["t1"] - a["t0"])
    if a.get("error") and not restart:
        errors[f"{outcome}: {a['error']}"] += 1

# What the service logged.
host = defaultdict(Counter)     # user -> allow/deny -> n
reasons = defaultdict(Counter)  # user -> deny reason -> n
host_micros = defaultdict(list)
dropped = Counter()
text_re = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
for line in open(f"{work}/callout.log", errors="replace"):
    if "authorization" not in line and "request dropped" not in line:
        continue  # most of the log is what the flood policy wrote
    try:
        event = json.loads(line)
        fields = event.get("fields", event)
    except ValueError:
        fields = {k: v.strip('"') for k, v in text_re.findall(line)}
        fields["message"] = "authorization" if " authorization " in line else ""
    message = fields.get("message", "")
    if message == "request dropped":
        dropped[str(fields.get("reason", "?"))[:60]] += 1
    if message != "authorization":
        continue
    user = fields.get("user", "-")
    decision = "allow" if fields.get("decision") == "allow" else "deny"
    host[user][decision] += 1
    if user not in users:
        users.append(user)
    if decision == "deny":
        reason = re.sub(r"\d+", "N", str(fields.get("reason", "-")))
        reasons[user][reason] += 1
    try:
        host_micros[user].append(int(fields.get("micros", 0)))
    except (TypeError, ValueError):
        pass

def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * p))]

# Rows in the order of the mix, then any user only the service saw.
mix_users = [part.split(":")[0].strip() for part in mix.split(",") if part.strip()]
users.sort(key=lambda u: mix_users.index(u) if u in mix_users else len(mix_users))

problems = []
rows = []
totals = Counter()
for user in users:
    c, h = client[user], host[user]
    admitted = c["admitted"] + c["admitted:restart"]
    refused, refused_r = c["refused"], c["refused:restart"]
    timeout, timeout_r = c["timeout"], c["timeout:restart"]
    other = c["error"] + c["down"]
    other_r = c["error:restart"] + c["down:restart"]
    # Attempts whose answer the client may have missed: cut off by a restart,
    # or given up on (timeout) while the service was still deciding.
    unanswered = timeout + timeout_r + c["error:restart"]
    allow, deny = h["allow"], h["deny"]
    # Every admission needs a host allow, and every refusal outside a restart
    # a host deny; a decision no client saw must be one of the unanswered
    # attempts (a refusal inside a restart window may come from the server).
    allow_ok = admitted <= allow <= admitted + unanswered + refused_r
    deny_ok = refused <= deny <= refused + refused_r + unanswered
    if allow == admitted and deny == refused + refused_r:
        agree = "yes"
    elif allow_ok and deny_ok:
        notes = []
        if allow != admitted:
            notes.append(f"allow {allow - admitted:+d}")
        if deny != refused + refused_r:
            notes.append(f"deny {deny - refused - refused_r:+d}")
        why = "in restarts" if not timeout else "timed out or in restarts"
        agree = "yes (" + ", ".join(notes) + f" {why})"
    else:
        agree = "**NO**"
        problems.append(f"{user}: clients saw {admitted} admitted, {refused + refused_r} refused, "
                        f"{unanswered} unanswered; the service logged {allow} allow, {deny} deny")
    expected = expected_of(user)
    if expected == "admitted" and refused + c["error"] + c["down"]:
        problems.append(f"{user}: {refused + c['error'] + c['down']} attempts outside restart windows "
                        "refused or failed (expected admitted)")
    if expected == "refused" and admitted:
        problems.append(f"{user}: {admitted} attempts admitted (expected refused)")
    if expected == "refused" and c["error"] + c["down"]:
        problems.append(f"{user}: {c['error'] + c['down']} attempts outside restart windows failed")
    if timeout:
        problems.append(f"{user}: {timeout} requests dropped (client timeout) outside restart windows")
    lat = latency[user]
    micros = host_micros[user]
    # The policy's deadline is 100 ms; a decision ten times slower means a
    # call was not cut off (time spent waiting for a slot is not counted).
    if micros and max(micros) > 1_000_000:
        problems.append(f"{user}: the slowest decision took {max(micros) / 1000:.0f} ms "
                        "(the policy deadline is 100 ms)")
    reason = reasons[user].most_common(1)
    reason = reason[0][0] if reason else "-"
    if len(reason) > 48:
        reason = reason[:47] + "…"
    rows.append([user, expected, c["attempts"], admitted, refused, refused_r, timeout, timeout_r,
                 f"{other} / {other_r}", allow, deny, agree,
                 "-" if not lat else f"{pct(lat, .5)} / {pct(lat, .99)} / {max(lat)}",
                 "-" if not micros else f"{pct(micros, .5) / 1000:.1f} / {max(micros) / 1000:.1f}",
                 reason.replace("|", "\\|")])
    for key, value in (("attempts", c["attempts"]), ("admitted", admitted), ("refused", refused),
                       ("refused_r", refused_r), ("timeout", timeout), ("timeout_r", timeout_r),
                       ("other", other), ("other_r", other_r), ("allow", allow), ("deny", deny)):
        totals[key] += value

# RSS over time.
samples = [tuple(map(int, l.split())) for l in open(f"{work}/rss.tsv") if l.strip()]
mib = [s[1] / 1024 for s in samples]

print()
print(f"### Soak: {seconds // 60} min {seconds % 60} s" if seconds % 60 else f"### Soak: {seconds // 60} min")
print()
print(f"{streams} client streams, mix `{mix}`, client connect timeout {timeout_ms} ms; hostile policy with "
      f"timeout_ms 100, memory_mb 32, max_in_flight 8, xkey; nats-server killed and restarted "
      + (f"every {restart_secs} s ({len(windows)} restart{'' if len(windows) == 1 else 's'}" if restart_secs else "never (no restarts")
      + (f", service back after {min(reconnect_ms) / 1000:.1f}–{max(reconnect_ms) / 1000:.1f} s)" if reconnect_ms else ")")
      + ".")
print()
print("| user | expected | attempts | admitted | refused | refused in restarts | timed out | timed out in restarts "
      "| server down or error / in restarts | host allow | host deny | counts agree | client ms p50 / p99 / max "
      "| host ms p50 / max | host deny reason (most common) |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|")
for r in rows:
    print("| " + " | ".join(str(x) for x in r) + " |")
t = totals
print(f"| **all** | | {t['attempts']} | {t['admitted']} | {t['refused']} | {t['refused_r']} | {t['timeout']} "
      f"| {t['timeout_r']} | {t['other']} / {t['other_r']} | {t['allow']} | {t['deny']} | | | | |")
print()
if mib:
    # The sample nearest each whole minute, and the last one.
    marks = list(range(0, samples[-1][0] + 1, 60))
    picks = sorted({min(range(len(samples)), key=lambda i: abs(samples[i][0] - m)) for m in marks} | {len(samples) - 1})
    per_minute = [f"{mib[i]:.1f}" for i in picks]
    # Trend without the spikes of calls in flight (alloc holds up to 32 MiB):
    # the floor (lowest sample) of the last quarter against that of the second.
    q = max(1, len(mib) // 4)
    early, late = min(mib[q:2 * q] or mib), min(mib[-q:])
    print(f"- nats-callout RSS (MiB): first {mib[0]:.1f}, min {min(mib):.1f}, median {statistics.median(mib):.1f}, "
          f"max {max(mib):.1f}, last {mib[-1]:.1f}; floor of the last quarter of the run − of the second: "
          f"{late - early:+.1f}; about once a minute: " + " ".join(per_minute))
    print(f"- open file descriptors: first {samples[0][2]}, max {max(s[2] for s in samples)}, last {samples[-1][2]}; "
          f"threads: first {samples[0][3]}, max {max(s[3] for s in samples)}, last {samples[-1][3]}")
    if late > 1.2 * early + 4:
        problems.append(f"RSS grew from {early:.1f} to {late:.1f} MiB (floors of the second and last quarter)")
dropped_total = t["timeout"] + t["timeout_r"]
print(f"- requests dropped (client timed out, no answer): {dropped_total}, "
      f"{t['timeout_r']} of them in restart windows (from the kill until the service is back, + {GRACE_MS} ms)")
if dropped:
    print(f"- the service dropped {sum(dropped.values())} requests: "
          + ", ".join(f"{n}× {r}" for r, n in dropped.most_common(3)))
if errors:
    print("- client errors outside restart windows: " + "; ".join(f"{n}× {e[:80]}" for e, n in errors.most_common(3)))
print(f"- shutdown: SIGTERM → " + (f"exit {stop_rc} in {stop_ms} ms" if stop_ms != "-" else str(stop_rc)))
if stop_rc != "0":
    problems.append(f"nats-callout did not stop cleanly on SIGTERM ({stop_rc})")
if client_rc != "0":
    problems.append(f"the soak client exited with {client_rc}")
if missing_reconnects:
    problems.append(f"the service did not reconnect after {missing_reconnects} restart(s)")
print(f"- verdict: " + ("**PASS**" if not problems else "**FAIL** — " + "; ".join(problems)))
PY
# The flood policy makes the service's log large (its log lines, capped per call).
if [ "$(stat -c %s "$work/callout.log")" -gt $((64 << 20)) ]; then
  gzip -f "$work/callout.log"
fi
