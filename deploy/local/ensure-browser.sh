#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver (the console's browser tests
# drive them headless) when either is missing. Used by test.sh and CI.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
echo "chromium or chromedriver is missing: installing Debian's packages"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver
