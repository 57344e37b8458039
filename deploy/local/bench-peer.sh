#!/usr/bin/env bash
# The event log's bench beside its PostgreSQL peer (issue #15): the same
# durable appends (1, 8 and 64 writers, ~1 KiB each, one stream per writer)
# against baove's log and against an event store in PostgreSQL with fsync
# and synchronous_commit on, in one run, with the ratios printed.
# Installs Debian's postgresql when no server answers on the local socket,
# starts it, and gives the current user a role and a database of its name.
# BAOVE_BENCH_PG (a connection string) names another server instead; the
# other BAOVE_BENCH_* variables pass through to the bench (see
# crates/eventlog/benches/eventlog/main.rs). Asserts nothing: figures only.
# Usage: deploy/local/bench-peer.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
user=$(id -un)

if [ -z "${BAOVE_BENCH_PG:-}" ]; then
  if ! command -v pg_isready >/dev/null 2>&1 || ! pg_isready -q; then
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
      echo "PostgreSQL is missing: installing Debian's package"
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql
    fi
    # Debian's package makes a cluster; without systemd nothing starts it.
    for cluster in $(pg_lsclusters -h | awk '{print $1 "/" $2}'); do
      $sudo pg_ctlcluster "${cluster%/*}" "${cluster#*/}" start 2>/dev/null || true
    done
    for _ in $(seq 1 30); do pg_isready -q && break; sleep 1; done
    pg_isready
  fi
  if [ "$(id -u)" -eq 0 ]; then
    as_postgres() { runuser -u postgres -- "$@"; }
  else
    as_postgres() { sudo -u postgres "$@"; }
  fi
  if ! psql -h /var/run/postgresql -d "$user" -tAc 'SELECT 1' >/dev/null 2>&1; then
    as_postgres psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname = '$user'" | grep -q 1 ||
      as_postgres createuser "$user"
    as_postgres createdb -O "$user" "$user"
  fi
  export BAOVE_BENCH_PG="host=/var/run/postgresql user=$user dbname=$user"
fi
echo "PostgreSQL peer: $BAOVE_BENCH_PG"
exec cargo bench -p baove-eventlog
