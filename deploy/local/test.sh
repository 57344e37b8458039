#!/usr/bin/env bash
# Runs every test of the workspace: installs nats-server if missing (the tests
# start their own on free ports; they never use one on 4222) and Debian's
# chromium and chromium-driver (the console's browser tests) and the
# checkers of the deployment files (ensure-deploy-tools.sh), builds the
# service binaries the end-to-end tests drive, then runs cargo test (and
# the test of the `otlp` feature, and the whole-machine failover test
# alone) and prints the total over all test binaries.
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/local/ensure-nats.sh
deploy/local/ensure-build.sh
deploy/local/ensure-browser.sh
deploy/local/ensure-deploy-tools.sh
cargo build --workspace --bins
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
cargo test --workspace 2>&1 | tee "$out" || status=$?
# The OTLP export is behind a feature (off by default): its test, apart.
cargo test -p baove-runtime --features otlp --test otlp 2>&1 | tee -a "$out" || status=$?
# The whole-machine failover test (issue #14: three NATS nodes and nine
# service processes, machines SIGKILLed one after another under load) runs
# alone, after the rest: on two cores beside the other tests it misses its
# waits (tests/e2e/cluster.rs says why it is ignored in the main run).
cargo test -p baove-e2e --test e2e -- --ignored cluster::whole_nodes 2>&1 | tee -a "$out" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$out"
exit "$status"
