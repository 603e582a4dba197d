# Sourced by the benchmark scripts (bench.sh, bench-tenants.sh, bench-reload.sh):
# a work folder removed on exit with every process started, small helpers, and a
# config-mode nats-server that hands every client to the callout.
# Expects $bin (the nats-callout binary) and $NATS_SERVER_BIN.

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
now() { date +%s.%N; }

# callout_server TIMEOUT: keys in $work (issuer.seed, xkey.seed), and a nats-server
# on a free port whose users all go through the callout (auth user auth/pwd in
# AUTH, users into APP), with authorization timeout TIMEOUT. Sets issuer, port,
# url and server_pid.
callout_server() {
  $bin keys --out "$work" > "$work/keys.txt"
  issuer=$(sed -n 's/^ *issuer: //p' "$work/keys.txt")
  port=$(free_port)
  cat > "$work/callout-server.conf" <<CONF
listen: 127.0.0.1:$port
max_connections: 100000
accounts {
  AUTH { users: [ { user: auth, password: pwd } ] }
  APP {}
}
authorization {
  timeout: $1
  auth_callout { issuer: $issuer, account: AUTH, auth_users: [ auth ] }
}
CONF
  "$NATS_SERVER_BIN" -c "$work/callout-server.conf" > "$work/callout-server.log" 2>&1 &
  server_pid=$!; pids+=("$server_pid")
  url="nats://127.0.0.1:$port"
}

# The [nats] and [issuer] tables of a service of that server.
callout_toml_head() {
  cat <<CONF
[nats]
servers = ["$url"]
user = "auth"
password = "pwd"
[issuer]
seed_file = "issuer.seed"
CONF
}
