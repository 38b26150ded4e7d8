#!/bin/sh
# The lab's init container: prepares the site's data volume (/data) before
# the NATS servers and the services start. It runs at every `up`, and keeps
# what is there: keys, CA, admin.nk (steward site init is idempotent).
set -eu
steward site init --data /data --site "${STEWARD_SITE:-LAB}" --hosts "${STEWARD_TLS_HOSTS:-nats,nats-1,nats-2,nats-3}"
# One server (docker-compose.yml) and the three-node cluster (deploy/cluster.yml).
steward site nats-config --data /data --store-dir /jetstream --out /data/nats.conf
steward site nats-config --data /data --store-dir /jetstream --cluster nats-1,nats-2,nats-3 --out /data/nats-cluster.conf
