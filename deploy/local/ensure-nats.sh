#!/usr/bin/env bash
# Installs nats-server from Debian's package when it is neither on PATH nor
# at /usr/sbin/nats-server. Used by run.sh, test.sh and CI.
set -euo pipefail
if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; then
  exit 0
fi
echo "nats-server is missing: installing Debian's package"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nats-server
