#!/usr/bin/env bash
# Starts baove locally: nats-server with JetStream and the intake, casework
# and referral services, all state under .baove/ in the repository. Installs
# nats-server from Debian's packages if it is missing, builds the binaries,
# shows each service's health, then stays in the foreground: Ctrl-C stops
# everything cleanly (services first, then NATS).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
state=$root/.baove
mkdir -p "$state/logs" "$state/nats" "$state/data" "$state/keys"
chmod 700 "$state/keys"

deploy/local/ensure-nats.sh
deploy/local/ensure-build.sh
nats=$(command -v nats-server 2>/dev/null || echo /usr/sbin/nats-server)

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in 14222 50051 50052 50053 8080; do
  if port_busy "$port"; then
    echo "port $port is already in use (another baove run?); stop it first" >&2
    exit 1
  fi
done

echo "building (cargo build --bins)..."
cargo build --quiet --bins
bin=${CARGO_TARGET_DIR:-$root/target}/debug

# First start: the key pair that signs tokens, intake's and casework's
# master keys, the NATS users' passwords and their permissions
# (deploy/local/secrets.sh).
keys=$state/keys
deploy/local/secrets.sh "$bin" "$keys"
cat deploy/local/nats.conf >"$keys/nats.conf"
echo "include ./nats-authorization.conf" >>"$keys/nats.conf"

pids=()
nats_pid=""
stop_all() {
  # A second Ctrl-C while stopping is ignored: it would end this script
  # before NATS (started in its own session) is stopped.
  trap - EXIT
  trap '' INT TERM
  echo
  echo "stopping services..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$nats_pid" ]; then kill -TERM "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; fi
  echo "stopped; data kept in $state"
}
trap stop_all EXIT INT TERM

# setsid: Ctrl-C reaches only this script, which then stops the services
# before NATS, in that order.
setsid "$nats" -c "$keys/nats.conf" -sd "$state/nats" >"$state/logs/nats.log" 2>&1 &
nats_pid=$!
for _ in $(seq 100); do port_busy 14222 && break; sleep 0.1; done
port_busy 14222 || { echo "nats-server did not start; see $state/logs/nats.log" >&2; exit 1; }
echo "nats-server (JetStream) on nats://127.0.0.1:14222, log $state/logs/nats.log"

for svc in intake casework referral; do
  setsid "$bin/baove-$svc" --config "deploy/local/$svc.toml" >"$state/logs/$svc.log" 2>&1 &
  pids+=($!)
done

port=50051
for svc in intake casework referral; do
  "$bin/baove" health --addr "http://127.0.0.1:$port" --wait 60
  "$bin/baove" health --addr "http://127.0.0.1:$port" --service baove.bus --wait 60
  echo "  $svc on 127.0.0.1:$port, log $state/logs/$svc.log"
  port=$((port + 1))
done
# The console, with the development sign-in (it mints tokens with the local
# issuer key: never configure that outside a developer's machine).
BAOVE_AUTH_PUBLIC_KEYS="$keys/issuer.pub.pem" BAOVE_CONSOLE_DEV_ISSUER_KEY="$keys/issuer.pem" \
  setsid "$bin/baove-console" --listen 127.0.0.1:8080 >"$state/logs/console.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do port_busy 8080 && break; sleep 0.1; done
port_busy 8080 || { echo "the console did not start; see $state/logs/console.log" >&2; exit 1; }
echo "  console on http://127.0.0.1:8080/ (development sign-in), log $state/logs/console.log"
echo
token() { "$bin/baove" token issue --key "$keys/issuer.pem" "$@"; }
operator=$(token --user op-17 --role hotline_operator --agency vn/tong-dai-111)
department=$(token --user so-yt-1 --role province_officer --agency vn:92/so-y-te --unit vn:92)
echo "baove is up. Every call carries a token; mint one with"
echo "  $bin/baove token issue --key $keys/issuer.pem --user U --role ROLE [--agency A] [--unit U]"
echo "(roles: hotline_operator commune_officer province_officer police agency_staff auditor administrator)."
echo "Open http://127.0.0.1:8080/ in a browser and sign in as any user and role (local only)."
echo "Or try, as a hotline operator and then as the province's department:"
echo "  export BAOVE_TOKEN=$operator"
echo "  $bin/baove intake submit --file deploy/examples/hotline-report.json"
echo "  $bin/baove intake list        (the report, then its case id once casework opened it)"
echo "  BAOVE_TOKEN=$department $bin/baove case list --addr http://127.0.0.1:50052"
echo "Ctrl-C stops everything."
wait "${pids[@]}"
