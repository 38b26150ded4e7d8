#!/bin/sh
# The operator's container. Its steward CLI is pointed at the site by the
# environment (STEWARD_SERVER, STEWARD_IDENTITY=/data/admin.nk, the bootstrap
# Full Administrator, and STEWARD_CA=/data/tls/ca.crt). It makes the lab's
# enrollment token once, for the agent containers (/shared/token), then idles
# so that `docker-compose exec operator steward ...` works.
trap 'exit 0' TERM INT
# A webhook receiver for status rules: POSTs to http://operator:9000/cgi-bin/hook
# land in /tmp/webhooks.jsonl.
mkdir -p /tmp/www/cgi-bin && cp /opt/steward/hook.cgi /tmp/www/cgi-bin/hook && : >>/tmp/webhooks.jsonl
httpd -p 9000 -h /tmp/www
until steward site services >/dev/null 2>&1; do sleep 1; done
until [ -s /shared/token ]; do
  if steward tokens create --uses 1000 --ttl 8760h --note "lab agents" >/shared/token.tmp 2>/dev/null; then
    mv /shared/token.tmp /shared/token
  else
    sleep 1
  fi
done
echo "steward lab: operator ready; the site answers at $STEWARD_SERVER"
while :; do sleep 3600 & wait $!; done
