#!/bin/sh
# burst.sh N NOTE: durable work for the lab test. Creates N enrollment tokens
# one after another (each one a compare-and-set write to the admin-tokens
# bucket, answered only after JetStream stored it) and prints the ID of every
# token the site acknowledged, one per line. Requests that fail (a NATS node
# or an admin instance killed under them) are only counted, on stderr.
n=$1 note=$2 i=0 failed=0
while [ "$i" -lt "$n" ]; do
  i=$((i + 1))
  id=$(steward tokens create --uses 1 --ttl 1h --note "$note" --timeout 5s 2>&1 >/dev/null | sed -n 's/^token \([0-9a-f-]*\): .*/\1/p')
  if [ -n "$id" ]; then echo "$id"; else failed=$((failed + 1)); fi
done
echo "burst: $n requests, $failed not acknowledged" >&2
