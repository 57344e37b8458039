#!/usr/bin/env bash
# Installs, when missing, what checks the deployment files
# (tests/e2e/deploy.rs): Debian's docker-compose (parses compose.yaml; no
# Docker engine needed), kubernetes-validate from PyPI (the Kubernetes
# manifests against the API's schemas) in a virtualenv under .ci/tools/,
# and promtool from Debian's prometheus package (the alert rules and their
# unit tests), taken out of the package into .ci/tools/bin/ without
# installing (or starting) a Prometheus server. Used by test.sh (and so
# CI), from the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools=$PWD/.ci/tools
mkdir -p "$tools/bin"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
updated=""
apt_install() {
  if [ -z "$updated" ]; then
    $sudo apt-get update -qq
    updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "docker-compose is missing: installing Debian's package"
  apt_install docker-compose
fi
if [ ! -x "$tools/venv/bin/kubernetes-validate" ]; then
  echo "kubernetes-validate is missing: installing it from PyPI under .ci/tools/venv"
  python3 -m venv "$tools/venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$tools/venv"; }
  "$tools/venv/bin/pip" install -q --disable-pip-version-check 'kubernetes-validate==1.37.0'
fi
if [ ! -x "$tools/bin/promtool" ]; then
  echo "promtool is missing: taking it from Debian's prometheus package"
  work=$(mktemp -d)
  (cd "$work" && { apt-get download prometheus >/dev/null 2>&1 || { $sudo apt-get update -qq; updated=1; apt-get download prometheus >/dev/null; }; } \
    && dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool)
  mv "$work/usr/bin/promtool" "$tools/bin/promtool"
  rm -rf "$work"
fi
