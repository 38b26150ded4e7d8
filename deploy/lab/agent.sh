#!/bin/sh
# A lab client machine. The agent enrolls with $STEWARD_TOKEN, else with the
# lab's token that the operator container leaves in /shared/token; once
# enrolled (/state/state.db) it needs no token. The server is
# $STEWARD_SERVER; the name is the container's host name; the heartbeat
# interval $STEWARD_HEARTBEAT (the lab's compose file says 15s).
set -eu
if [ -z "${STEWARD_TOKEN:-}" ] && [ ! -s /state/state.db ]; then
  echo "steward lab: waiting for the lab's enrollment token (/shared/token)"
  until [ -s /shared/token ]; do sleep 1; done
  STEWARD_TOKEN=$(cat /shared/token)
  export STEWARD_TOKEN
fi
exec steward-agent run --state-dir /state --name "${STEWARD_AGENT_NAME:-$(hostname)}" --heartbeat "${STEWARD_HEARTBEAT:-60s}"
