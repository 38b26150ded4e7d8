#!/usr/bin/env bash
# make lab / make lab-down.
#   deploy/lab.sh up     build the images (deploy/images.sh), bring the lab up
#                        (docker-compose.yml), wait for its three agents, say how
#                        to use it
#   deploy/lab.sh down   stop the lab (and the cluster variant's extra
#                        containers) and delete its volumes: the next up starts
#                        from nothing
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lab/lib.sh
compose_detect

case "${1:-up}" in
up)
  deploy/images.sh
  start=$SECONDS
  "${COMPOSE[@]}" up -d
  echo "lab: waiting for the three agents to come online"
  if ! wait_online 180 3 "${COMPOSE[@]}"; then
    "${COMPOSE[@]}" ps
    echo "lab: the agents are not all online after 180 s; see ${COMPOSE[*]} logs" >&2
    exit 1
  fi
  cat <<MSG

  The Steward lab is up ($((SECONDS - start)) s to three agents online): a NATS server
  with TLS and JetStream, the admin, status, discovery, policy, sessions and replication services
  each in its own container, an operator container and three agents
  (agent-1..3).

    ${COMPOSE[*]} exec operator steward clients list
    ${COMPOSE[*]} exec operator steward inventory show agent-1
    ${COMPOSE[*]} exec operator steward collections create "Lab agents" --query 'name startsWith "agent-"'
    ${COMPOSE[*]} exec operator steward site services
    ${COMPOSE[*]} exec operator sh                      # a shell with the steward CLI
    ${COMPOSE[*]} exec agent-1 steward-agent status --state-dir /state
    ${COMPOSE[*]} logs -f admin

  Status rules can POST to http://operator:9000/cgi-bin/hook (lands in the
  operator's /tmp/webhooks.jsonl). The cluster variant (three NATS nodes, R3,
  two instances of each service), after make lab-down:

    ${COMPOSE[*]} -f docker-compose.yml -f deploy/cluster.yml up -d

  make lab-down stops it all and deletes its volumes. More: deploy/README.md.

MSG
  ;;
down)
  # With the cluster's file too, so that its extra containers and volumes go
  # as well (volumes the lab never made are "not found": not worth a line).
  "${COMPOSE[@]}" -f docker-compose.yml -f deploy/cluster.yml down -v --remove-orphans 2>&1 | grep -v -e 'not found' -e '^Removing volume' || true
  ;;
*)
  echo "usage: deploy/lab.sh up|down" >&2
  exit 2
  ;;
esac
