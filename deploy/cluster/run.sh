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
#
# With --provinces vn:92,vn:01 it runs a deployment partitioned by
# province instead (docs/cluster.md, "Partitions"): for each province, two
# processes of each service with partition = that province (the first
# province on ports 50071-50076, the next on 50081-50086, ...), each
# partition with its own streams, lease and active, under the NATS users
# and permissions deploy/nats/partitions.sh makes; state under
# .baove-cluster-partitions/.
# What this does not do yet: see docs/cluster.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
provinces=()
case "${1:-}" in
  --provinces)
    IFS=, read -r -a provinces <<<"${2:?--provinces needs a list such as vn:92,vn:01}"
    ;;
  --provinces=*)
    IFS=, read -r -a provinces <<<"${1#--provinces=}"
    ;;
  "") ;;
  *)
    echo "usage: $0 [--provinces vn:92,vn:01]" >&2
    exit 2
    ;;
esac
# The processes: name, port, service, partition ("" for none).
entries=()
if [ ${#provinces[@]} -eq 0 ]; then
  state=$root/.baove-cluster
  for entry in intake:50061 casework:50062 referral:50063 casework-2:50064 referral-2:50065 intake-2:50066; do
    name=${entry%%:*}
    entries+=("$name:${entry##*:}:${name%-2}:")
  done
else
  state=$root/.baove-cluster-partitions
  for k in "${!provinces[@]}"; do
    p=${provinces[$k]}
    base=$((50071 + 10 * k))
    tok=$(printf %s "$p" | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9]/-/g')
    n=0
    for copy in 1 2; do
      for svc in intake casework referral; do
        entries+=("$svc-$tok-$copy:$((base + n)):$svc:$p")
        n=$((n + 1))
      done
    done
  done
fi
mkdir -p "$state/logs" "$state/data"
for i in 1 2 3; do mkdir -p "$state/nats-$i"; done

deploy/local/ensure-nats.sh
deploy/local/ensure-build.sh
nats=$(command -v nats-server 2>/dev/null || echo /usr/sbin/nats-server)

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports=(14231 14232 14233 16231 16232 16233 8221 8222 8223)
for entry in "${entries[@]}"; do
  rest=${entry#*:}
  ports+=("${rest%%:*}")
done
for port in "${ports[@]}"; do
  if port_busy "$port"; then
    echo "port $port is already in use (another baove cluster run?); stop it first" >&2
    exit 1
  fi
done

echo "building (cargo build --bins)..."
cargo build --quiet --bins
bin=${CARGO_TARGET_DIR:-$root/target}/debug

# The secrets are shared by both layouts: the services' configurations
# (deploy/cluster/*.toml) name them here.
keys=$root/.baove-cluster/keys
deploy/local/secrets.sh "$bin" "$keys"
if [ ${#provinces[@]} -gt 0 ]; then
  deploy/nats/partitions.sh "${provinces[@]}" <"$keys/nats-authorization.conf" >"$keys/nats-authorization.conf.new"
  mv "$keys/nats-authorization.conf.new" "$keys/nats-authorization.conf"
fi
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
# Every process: its own port and data directory, its service's
# configuration (deploy/cluster/<service>.toml) and, partitioned, its
# province.
for entry in "${entries[@]}"; do
  IFS=: read -r name port svc partition <<<"$entry"
  BAOVE_LISTEN="127.0.0.1:$port" BAOVE_DATA_DIR="$state/data/$name" BAOVE_PARTITION="$partition" \
    setsid "$bin/baove-$svc" --config "deploy/cluster/$svc.toml" >"$state/logs/$name.log" 2>&1 &
  pids+=($!)
  pid_of[$name]=$!
done

for entry in "${entries[@]}"; do
  IFS=: read -r name port _ _ <<<"$entry"
  "$bin/baove" health --addr "http://127.0.0.1:$port" --wait 60 >/dev/null
  # The bus part is SERVING once its streams exist with 3 replicas, which
  # needs the cluster to have elected its JetStream leader.
  "$bin/baove" health --addr "http://127.0.0.1:$port" --service baove.bus --wait 90 >/dev/null
done
is_active() { "$bin/baove" health --addr "http://127.0.0.1:$1" --service baove.active >/dev/null 2>&1; }
# One process of each service (of each partition) takes its lease within
# a few seconds.
for _ in $(seq 100); do
  declare -A held=()
  for entry in "${entries[@]}"; do
    IFS=: read -r _ port svc partition <<<"$entry"
    if is_active "$port"; then held[$svc:$partition]=1; fi
  done
  [ ${#held[@]} -eq $((${#entries[@]} / 2)) ] && break
  sleep 0.2
done
for entry in "${entries[@]}"; do
  IFS=: read -r name port _ partition <<<"$entry"
  if is_active "$port"; then role=active; else role="standby (follows the active's log)"; fi
  echo "  $name on 127.0.0.1:$port${partition:+, partition $partition}, pid ${pid_of[$name]}, $role, log $state/logs/$name.log"
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
if [ ${#provinces[@]} -eq 0 ]; then
  echo "  $bin/baove intake submit --addr http://127.0.0.1:50061,http://127.0.0.1:50066 --file deploy/examples/hotline-report.json"
else
  intakes=$(for entry in "${entries[@]}"; do
    IFS=: read -r _ port svc _ <<<"$entry"
    if [ "$svc" = intake ]; then printf 'http://127.0.0.1:%s,' "$port"; fi
  done)
  echo "  $bin/baove intake submit --addr ${intakes%,} --province ${provinces[0]} --file deploy/examples/hotline-report.json"
  echo "  (the example report is from vn:31135, in vn:92: another province's intake refuses it, naming vn:92)"
fi
echo "  kill -9 ${nats_pids[1]}     (node baove-n2 dies; submit again: it still works)"
echo "  kill -9 <an active process's pid>   (its standby takes the lease within about 5 s)"
echo "Ctrl-C stops everything."
wait "${pids[@]}"
