#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver (the console's browser tests
# drive them headless) when either is missing, and axe-core. Used by
# test.sh (and so CI), from the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "chromium or chromedriver is missing: installing Debian's packages"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver
fi
# axe-core, the accessibility checker the browser tests run in each page,
# from the npm registry (Node.js and npm from Debian's packages), under
# .ci/node/ like buf.
if [ ! -f .ci/node/node_modules/axe-core/axe.min.js ]; then
  if ! command -v npm >/dev/null 2>&1; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
  fi
  npm install --silent --no-audit --no-fund --prefix .ci/node axe-core@4 >/dev/null
fi
