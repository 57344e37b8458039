#!/usr/bin/env bash
# The NATS users and permissions of a deployment partitioned by province
# (docs/cluster.md, "Partitions"): reads deploy/nats/authorization.conf.in
# (or its copy with the passwords filled in) on stdin and writes it with
# every name of a partition's own made once for each PROVINCE given: the
# streams (BAOVE_INTAKE -> BAOVE_INTAKE_VN_92, and so on for the log and
# alert streams), the subjects (baove.intake.> -> baove.p.vn-92.intake.>)
# and the lease keys ($KV.BAOVE_LEASES.intake -> ...intake.vn-92). What the
# partitions share (the key-value buckets, the JetStream API's info) is
# written once. Each service keeps one user across its partitions.
# Usage: deploy/nats/partitions.sh PROVINCE... <authorization.conf.in >out
#   e.g. deploy/nats/partitions.sh vn:92 vn:01
set -euo pipefail
if [ $# -eq 0 ]; then
  echo "usage: $0 PROVINCE... (unit ids such as vn:92) <authorization.conf.in" >&2
  exit 2
fi
for province in "$@"; do
  # The rule of baove_bus::partition::Partition::new.
  if [ -z "$province" ] || [ "${#province}" -gt 32 ] || [[ "$province" == *[!A-Za-z0-9:_-]* ]]; then
    echo "$0: $province: a province's unit id has only ASCII letters, digits, ':', '-' and '_' (at most 32)" >&2
    exit 2
  fi
done
exec perl -ne '
BEGIN {
  # The partition token of baove_bus::partition: lowercase, every
  # character but a letter or a digit made "-".
  @tokens = map { my $t = lc $_; $t =~ s/[^a-z0-9]/-/g; $t } @ARGV;
  @ARGV = ();
}
if (/^(\s*)"([^"]*)"(,?)\s*$/) {
  my ($indent, $entry, $comma) = ($1, $2, $3);
  my (@out, %seen);
  for my $t (@tokens) {
    (my $suffix = uc $t) =~ s/-/_/g;
    my $e = $entry;
    $e =~ s/\b(BAOVE_(?:INTAKE|CASE|REFERRAL|ALERT)(?:_LOG)?)(?=\.|$)/$1_$suffix/g;
    $e =~ s/^baove\./baove.p.$t./;
    $e =~ s/^(\$KV\.BAOVE_LEASES\.[a-z]+)$/$1.$t/;
    push @out, $e unless $seen{$e}++;
  }
  for my $i (0 .. $#out) {
    print $indent, "\"$out[$i]\"", ($i < $#out ? "," : $comma), "\n";
  }
  next;
}
print;
' "$@"
