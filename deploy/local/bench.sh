#!/usr/bin/env bash
# The service path under load (issue #15): starts a fresh system of release
# binaries (nats-server and the three services, all state in a new
# directory, ports 24222, 50161-50163 and their metrics on 51161-51163 so
# that it never meets run.sh's), runs `baove bench load` against it
# (hotline reports open-loop at 50, 100, 200 and 400 reports/s, 30 s each,
# unless other arguments are given: they are passed on, e.g. --rates 100
# --secs 10; after the rates it reads one report's intake and case with 50
# concurrent province officers), then prints each service's disk use (while
# it runs: write-ahead files not yet checkpointed included) and flushes (one
# write-ahead fdatasync each, by log) per acknowledged report, and stops
# everything. Asserts nothing:
# figures only, from this machine, now.
# Usage: deploy/local/bench.sh [baove bench load arguments]
# BAOVE_BENCH_DIR: where to keep the state (kept afterwards; default: a
# temporary directory, removed).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
deploy/local/ensure-nats.sh
deploy/local/ensure-build.sh
nats=$(command -v nats-server 2>/dev/null || echo /usr/sbin/nats-server)

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in 24222 50161 50162 50163 51161 51162 51163; do
  if port_busy "$port"; then
    echo "port $port is already in use (another bench run?); stop it first" >&2
    exit 1
  fi
done

echo "building release binaries (cargo build --release --bins)..."
cargo build --quiet --release --bins
bin=${CARGO_TARGET_DIR:-$root/target}/release

if [ -n "${BAOVE_BENCH_DIR:-}" ]; then
  work=$BAOVE_BENCH_DIR
  mkdir -p "$work"
  keep=1
else
  work=$(mktemp -d)
  keep=0
fi
# The services' local configs name their files relative to the directory
# they start in: .baove/ for state and keys, deploy/ for reference data.
state=$work/.baove
mkdir -p "$state/logs" "$state/nats" "$state/data"
ln -sfn "$root/deploy" "$work/deploy"
keys=$state/keys
deploy/local/secrets.sh "$bin" "$keys" >/dev/null
sed -e 's/127.0.0.1:14222/127.0.0.1:24222/' -e 's/baove-local/baove-bench/' deploy/local/nats.conf >"$keys/nats.conf"
echo "include ./nats-authorization.conf" >>"$keys/nats.conf"

pids=()
nats_pid=""
stop_all() {
  # A second Ctrl-C while stopping is ignored: it would end this script
  # before NATS is stopped.
  trap - EXIT
  trap '' INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$nats_pid" ]; then kill -TERM "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; fi
  if [ "$keep" = 0 ]; then rm -rf "$work"; else echo "state kept in $work"; fi
}
trap stop_all EXIT INT TERM

"$nats" -c "$keys/nats.conf" -sd "$state/nats" >"$state/logs/nats.log" 2>&1 &
nats_pid=$!
for _ in $(seq 100); do port_busy 24222 && break; sleep 0.1; done
port_busy 24222 || { echo "nats-server did not start; see $state/logs/nats.log" >&2; exit 1; }

port=50161
for svc in intake casework referral; do
  (cd "$work" && BAOVE_LISTEN=127.0.0.1:$port BAOVE_NATS_URL=nats://127.0.0.1:24222 \
    BAOVE_METRICS_LISTEN=127.0.0.1:$((port + 1000)) \
    exec "$bin/baove-$svc" --config "$root/deploy/local/$svc.toml" >"$state/logs/$svc.log" 2>&1) &
  pids+=($!)
  port=$((port + 1))
done
port=50161
for svc in intake casework referral; do
  "$bin/baove" health --addr "http://127.0.0.1:$port" --wait 60 >/dev/null
  "$bin/baove" health --addr "http://127.0.0.1:$port" --service baove.bus --wait 60 >/dev/null
  port=$((port + 1))
done
echo "system up in $work (release binaries); logs in $state/logs"

out=$(mktemp)
"$bin/baove" --addr http://127.0.0.1:50161 bench load \
  --file "$root/deploy/examples/hotline-report.json" \
  --issuer-key "$keys/issuer.pem" \
  --casework http://127.0.0.1:50162 \
  --pid "intake=${pids[0]}" --pid "casework=${pids[1]}" --pid "referral=${pids[2]}" --pid "nats=$nats_pid" \
  "$@" | tee "$out"
reports=$(awk '/^reports acknowledged in all:/ { print $NF }' "$out")
rm -f "$out"
if [ "${reports:-0}" -gt 0 ]; then
  # The access log grows with the reads (the read phase's included), not
  # with the reports: its bytes are given per record, from the metrics below.
  for svc in intake casework referral; do
    bytes=$(du -sb "$state/data/$svc" | cut -f1)
    events=$(du -sb "$state/data/$svc/eventlog" | cut -f1)
    echo "disk: $svc $((bytes / 1024)) KiB in $state/data/$svc, $((bytes / reports)) bytes per acknowledged report; its event log alone $((events / reports))"
  done
  bytes=$(du -sb "$state/nats" | cut -f1)
  echo "disk: nats $((bytes / 1024)) KiB (JetStream), $((bytes / reports)) bytes per acknowledged report"
  # Device waits: each flush is one fdatasync of the write-ahead file
  # (baove_eventlog_sync_seconds, by log), from each service's metrics.
  port=51161
  for svc in intake casework referral; do
    metrics=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" &&
      printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && cat <&3) 2>/dev/null || true)
    echo "$metrics" | awk -v svc="$svc" -v reports="$reports" '
      /^baove_eventlog_sync_seconds_count/ {
        name = $1; sub(/.*log="/, "", name); sub(/".*/, "", name)
        printf "flushes: %s log %s: %d, %.2f per acknowledged report\n", svc, name, $2, $2 / reports
      }'
    records=$(echo "$metrics" | awk '/^baove_eventlog_appended_events_total\{.*log="access"/ { print int($2) }')
    access=$(du -sb "$state/data/$svc/accesslog" | cut -f1)
    if [ "${records:-0}" -gt 0 ]; then
      echo "disk: $svc access log $((access / 1024)) KiB for $records records (reads, refusals, checkpoints), $((access / records)) bytes per record"
    fi
    port=$((port + 1))
  done
fi
