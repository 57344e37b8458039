#!/usr/bin/env bash
# Starts baove on a three-node NATS JetStream cluster on this machine
# (loopback ports 14231-14233, routes 16231-16233, monitoring 8221-8223),
# every stream with 3 replicas, and intake (port 50061, and a second
# process on 50066), casework (50062, and 50064) and referral (50063, and
# 50065), all state under .baove-cluster/. Every service runs with role =
# "auto": one process of each holds the lease and takes writes, the other
# follows its log (intake's also takes each report's data key from the
# cluster's bucket) and takes over when it dies. Shows each process's health and role and
# which NATS node leads the JetStream cluster, then stays in the
# foreground: Ctrl-C stops everything (services first). Try killing a NATS
# node or an active process (the pids are printed): the system goes on.
# What this does not do yet: see docs/cluster.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
state=$root/.baove-cluster
mkdir -p "$state/logs" "$state/data"
for i in 1 2 3; do mkdir -p "$state/nats-$i"; done

deploy/local/ensure-nats.sh
nats=$(command -v nats-server 2>/dev/null || echo /usr/sbin/nats-server)

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in 14231 14232 14233 16231 16232 16233 8221 8222 8223 50061 50062 50063 50064 50065 50066; do
  if port_busy "$port"; then
    echo "port $port is already in use (another baove cluster run?); stop it first" >&2
    exit 1
  fi
done

echo "building (cargo build --bins)..."
cargo build --quiet --bins
bin=${CARGO_TARGET_DIR:-$root/target}/debug

keys=$state/keys
deploy/local/secrets.sh "$bin" "$keys"
# One checkpoint signing key per service, shared by its processes, so that
# a witness follows its log across a failover.
for svc in intake casework referral; do
  if [ ! -f "$keys/checkpoint-$svc.pem" ]; then
    "$bin/baove" token keygen --private "$keys/checkpoint-$svc.pem" --public "$keys/checkpoint-$svc.pub.pem" >/dev/null
  fi
done
for i in 1 2 3; do
  cat "deploy/cluster/nats-$i.conf" >"$keys/nats-$i.conf"
  echo "include ./nats-authorization.conf" >>"$keys/nats-$i.conf"
done

pids=()
nats_pids=()
stop_all() {
  trap - EXIT INT TERM
  echo
  echo "stopping services..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for pid in "${nats_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${nats_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "stopped; data kept in $state"
}
trap stop_all EXIT INT TERM

for i in 1 2 3; do
  setsid "$nats" -c "$keys/nats-$i.conf" -sd "$state/nats-$i" >"$state/logs/nats-$i.log" 2>&1 &
  nats_pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 100); do port_busy "1423$i" && break; sleep 0.1; done
  port_busy "1423$i" || { echo "nats-server $i did not start; see $state/logs/nats-$i.log" >&2; exit 1; }
  echo "nats node baove-n$i on nats://127.0.0.1:1423$i (pid ${nats_pids[$((i - 1))]}), log $state/logs/nats-$i.log"
done

declare -A pid_of
for svc in intake casework referral; do
  setsid "$bin/baove-$svc" --config "deploy/cluster/$svc.toml" >"$state/logs/$svc.log" 2>&1 &
  pids+=($!)
  pid_of[$svc]=$!
done
# The second process of each service: same configuration, its own port
# and data directory.
for entry in casework:50064 referral:50065 intake:50066; do
  svc=${entry%%:*}
  BAOVE_LISTEN="127.0.0.1:${entry##*:}" BAOVE_DATA_DIR=".baove-cluster/data/$svc-2" \
    setsid "$bin/baove-$svc" --config "deploy/cluster/$svc.toml" >"$state/logs/$svc-2.log" 2>&1 &
  pids+=($!)
  pid_of[$svc-2]=$!
done

for entry in intake:50061 casework:50062 referral:50063 casework-2:50064 referral-2:50065 intake-2:50066; do
  port=${entry##*:}
  "$bin/baove" health --addr "http://127.0.0.1:$port" --wait 60 >/dev/null
  # The bus part is SERVING once its streams exist with 3 replicas, which
  # needs the cluster to have elected its JetStream leader.
  "$bin/baove" health --addr "http://127.0.0.1:$port" --service baove.bus --wait 90 >/dev/null
done
is_active() { "$bin/baove" health --addr "http://127.0.0.1:$1" --service baove.active >/dev/null 2>&1; }
# One process of each pair takes the lease within a few seconds.
for pair in 50061:50066 50062:50064 50063:50065; do
  for _ in $(seq 100); do
    is_active "${pair%%:*}" || is_active "${pair##*:}" && break
    sleep 0.2
  done
done
for entry in intake:50061 casework:50062 referral:50063 casework-2:50064 referral-2:50065 intake-2:50066; do
  name=${entry%%:*}
  port=${entry##*:}
  if is_active "$port"; then role=active; else role="standby (follows the active's log)"; fi
  echo "  $name on 127.0.0.1:$port, pid ${pid_of[$name]}, $role, log $state/logs/$name.log"
done
if command -v curl >/dev/null 2>&1; then
  for i in 1 2 3; do
    leader=$(curl -s "http://127.0.0.1:822$i/jsz" | sed -n 's/.*"leader": *"\([^"]*\)".*/\1/p' | head -1)
    echo "  nats node baove-n$i: JetStream meta leader is ${leader:-unknown}"
  done
fi
echo
token() { "$bin/baove" token issue --key "$keys/issuer.pem" "$@"; }
operator=$(token --user op-17 --role hotline_operator --agency vn/tong-dai-111)
echo "baove is up on three NATS nodes. Try:"
echo "  export BAOVE_TOKEN=$operator"
echo "  $bin/baove intake submit --addr http://127.0.0.1:50061 --file deploy/examples/hotline-report.json"
echo "  (if 50061 answers UNAVAILABLE, the active intake is on 50066: the address is in the error)"
echo "  kill -9 ${nats_pids[1]}     (node baove-n2 dies; submit again: it still works)"
echo "  kill -9 <an active process's pid>   (its standby takes the lease within about 5 s)"
echo "Ctrl-C stops everything."
wait "${pids[@]}"
