#!/usr/bin/env bash
# Makes, once, the secrets compose.yaml mounts, under
# deploy/container/secrets/ (the same set as deploy/local/secrets.sh, which
# it runs, with the `baove` CLI of the image), and gives each file to the
# user of the one service that reads it (uids of the Dockerfile). Run as
# root from anywhere, after `docker build ... -t baove .`:
#   sudo deploy/container/prepare.sh [IMAGE]
# Keep the token issuer's private key (secrets/issuer.pem) with whoever
# issues tokens and remove it from this host.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
image=${1:-baove:latest}
keys=$here/secrets
mkdir -p "$keys"
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
# secrets.sh calls BIN/baove; here that is the image's CLI, writing into
# the same directory.
cat >"$shim/baove" <<SHIM
#!/bin/sh
exec docker run --rm --user 0 -v "$keys:$keys" "$image" baove "\$@"
SHIM
chmod 755 "$shim/baove"
(cd "$root" && deploy/local/secrets.sh "$shim" "$keys")
chmod 0755 "$keys"
chown 0:0 "$keys"/*
chmod 0644 "$keys/issuer.pub.pem"
chmod 0600 "$keys/issuer.pem"
give() { chown "$1:$1" "$2" && chmod 0400 "$2"; }
give 10001 "$keys/master.key"
give 10001 "$keys/nats-intake.password"
give 10002 "$keys/casework-master.key"
give 10002 "$keys/nats-casework.password"
give 10003 "$keys/nats-referral.password"
# The referral key is read by casework and referral: one copy each.
cp "$keys/referral.key" "$keys/casework-referral.key"
cp "$keys/referral.key" "$keys/referral-referral.key"
give 10002 "$keys/casework-referral.key"
give 10003 "$keys/referral-referral.key"
# The official NATS image runs nats-server as root.
chmod 0400 "$keys/nats-authorization.conf"
echo "secrets ready in $keys"
