#!/usr/bin/env bash
# Creates, once, the secrets a baove run needs in directory KEYS (mode 700):
# the key pair that signs tokens (issuer.pem, issuer.pub.pem), intake's
# master key (master.key), casework's (casework-master.key: it seals the
# cases' private text), the referral key casework and referral share
# (referral.key: it wraps each referral's data key), a NATS password per service
# (nats-<service>.password), and (each time) nats-authorization.conf: the
# users and permissions of deploy/nats/authorization.conf.in with those
# passwords, for a nats-server configuration to include.
# Usage: deploy/local/secrets.sh BIN_DIR KEYS   (from the repository root)
set -euo pipefail
bin=$1
keys=$2
mkdir -p "$keys"
chmod 700 "$keys"
if [ ! -f "$keys/issuer.pem" ]; then
  "$bin/baove" token keygen --private "$keys/issuer.pem" --public "$keys/issuer.pub.pem" >/dev/null
  echo "created the token key pair in $keys"
fi
for svc in intake casework referral; do
  if [ ! -f "$keys/nats-$svc.password" ]; then
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$keys/nats-$svc.password")
  fi
done
# One user per service and its permissions (deploy/nats/), the passwords
# substituted; the file lives with the other secrets.
sed -e "s/@INTAKE_PASSWORD@/$(cat "$keys/nats-intake.password")/" \
    -e "s/@CASEWORK_PASSWORD@/$(cat "$keys/nats-casework.password")/" \
    -e "s/@REFERRAL_PASSWORD@/$(cat "$keys/nats-referral.password")/" \
    deploy/nats/authorization.conf.in >"$keys/nats-authorization.conf"
if [ ! -f "$keys/master.key" ]; then
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$keys/master.key"; echo >>"$keys/master.key")
  echo "created intake's master key $keys/master.key"
fi
if [ ! -f "$keys/referral.key" ]; then
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$keys/referral.key"; echo >>"$keys/referral.key")
  echo "created the referral key (casework's and referral's) $keys/referral.key"
fi
if [ ! -f "$keys/casework-master.key" ]; then
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$keys/casework-master.key"; echo >>"$keys/casework-master.key")
  echo "created casework's master key $keys/casework-master.key"
fi
