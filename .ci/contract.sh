#!/usr/bin/env bash
# The v1 contract stays buf-clean: `buf lint` with the STANDARD rules
# (buf.yaml), and `buf breaking` against the contract's baseline commit
# (.ci/proto-baseline: the commit of the last deliberate break; move it
# only together with a note in the README saying what broke and why).
# buf comes from the npm registry (@bufbuild/buf), installed under
# .ci/node/ when missing; Node.js and npm from Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
buf=.ci/node/node_modules/.bin/buf
if [ ! -x "$buf" ]; then
  npm install --silent --no-audit --no-fund --prefix .ci/node @bufbuild/buf@1 >/dev/null
fi
"$buf" lint
echo "buf lint: clean"
baseline=$(tr -d ' \n' < .ci/proto-baseline)
if git cat-file -e "$baseline^{commit}" 2>/dev/null; then
  "$buf" breaking --against ".git#ref=$baseline"
  echo "buf breaking: nothing broken since $baseline"
else
  echo "buf breaking: skipped, baseline $baseline is not in this clone (shallow?)"
fi
