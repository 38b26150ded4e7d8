#!/usr/bin/env bash
# make run: a site with its embedded NATS server under ./steward-data, and one
# local agent enrolled to it (state in ./steward-data/local-agent). Ctrl-C
# stops both. Run again and both come back with the same identities.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${STEWARD_DATA:-./steward-data}
LISTEN=${STEWARD_LISTEN:-127.0.0.1:4222}
SERVER="nats://$LISTEN"
AGENT_DIR="$DATA/local-agent"
export STEWARD_SERVER="$SERVER" STEWARD_IDENTITY="$DATA/admin.nk"

pids=()
stop() { trap - INT TERM EXIT; [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; exit 0; }
trap stop INT TERM EXIT

bin/steward serve --data "$DATA" --listen "$LISTEN" &
pids+=($!)

# Wait until the site answers (the first start also creates admin.nk). The
# site must be this one: another make run on the same data dir is refused
# (the data dir is locked) and exits, and another site on $LISTEN answers.
for i in $(seq 1 100); do
  if ! kill -0 "${pids[0]}" 2>/dev/null; then echo "steward serve exited; see the messages above" >&2; exit 1; fi
  if [ -f "$DATA/admin.nk" ] && bin/steward site services >/dev/null 2>&1; then break; fi
  sleep 0.2
done
sleep 0.2
if ! kill -0 "${pids[0]}" 2>/dev/null; then echo "steward serve exited; see the messages above" >&2; exit 1; fi

token=""
if [ ! -f "$AGENT_DIR/state.db" ]; then
  token=$(bin/steward tokens create --uses 1 --ttl 1h --note "make run local agent" 2>/dev/null)
fi
mkdir -p "$AGENT_DIR"
# The token in the environment, not in the process list.
STEWARD_TOKEN="$token" bin/steward-agent run --server "$SERVER" --state-dir "$AGENT_DIR" &
pids+=($!)

cat >&2 <<MSG

  Steward site is running on $SERVER (data: $DATA), with a local agent.
  In another terminal:
    bin/steward clients list
    bin/steward tokens create --uses 10 --ttl 24h
    bin/steward-agent status --state-dir $AGENT_DIR
  Ctrl-C stops the site and the agent.

MSG
wait -n "${pids[@]}" || true
