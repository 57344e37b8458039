#!/usr/bin/env bash
# Installs what building baove needs beyond Rust and its C linker, when
# missing: `make`, with which the services' allocator (jemalloc, through
# tikv-jemalloc-sys) is built from its C sources. Used by run.sh, test.sh,
# bench.sh, deploy/cluster/run.sh and CI.
set -euo pipefail
if command -v make >/dev/null 2>&1; then
  exit 0
fi
echo "make is missing (jemalloc is built with it): installing Debian's package"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq make
