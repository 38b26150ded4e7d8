#!/usr/bin/env bash
# make lab-test: the whole lab from nothing, a scenario against it, torn
# down; then the cluster variant (deploy/cluster.yml), where a burst of
# acknowledged writes runs while a NATS node and a service instance are
# killed: nothing acknowledged may be lost, and the scenario must complete.
# The last line gives the figures. Each variant runs as its own compose
# project (steward-labtest-<pid>-<variant>), so a lab left running does not
# collide, and is always torn down (volumes too). Logs of a failed variant are
# kept in bin/lab-test/.
#
# Environment: LAB_TEST_BURST (writes in the burst, default 300),
# LAB_TEST_SKIP_IMAGES=1 (use the images already built).
set -uo pipefail
cd "$(dirname "$0")/.."
source deploy/lab/lib.sh
compose_detect || exit 1

BURST=${LAB_TEST_BURST:-300}
LOGS=bin/lab-test
mkdir -p "$LOGS"
TMP=$(mktemp -d)
T0=$SECONDS

# The scenario, in order. Each step is the function step_<name>: it returns 0
# when it passed, 2 when the part of Steward it needs is not in yet (the
# command is missing from the CLI), anything else when it failed. To add a
# step, write its function and put its name here.
STEPS=(
  enroll      # three agent containers enroll with the lab token and are online (timed)
  inventory   # inventory show agent-1: the container's OS and network
  collection  # a query collection holds the three agents
  settings    # client settings (remote tools on) deployed to the collection; the agents comply
  shell       # session shell agent-1 -- hostname answers agent-1
  status_rule # a status rule fires: a token's audit message POSTed to the operator's webhook
  packages    # a package made at the operator is deployed to the collection; every agent installs it
)
# The cluster variant adds r3 (every stream, bucket and object store has three
# current replicas) and the burst with the kills; see below.

say() { printf 'lab-test: %s\n' "$*" >&2; }

PROJECT=""
FILES=()
c() { "${COMPOSE[@]}" -p "$PROJECT" "${FILES[@]}" "$@"; }
# op runs the operator's steward CLI in the lab (bounded: a hung call fails).
op() { timeout 60 "${COMPOSE[@]}" -p "$PROJECT" "${FILES[@]}" exec -T operator steward "$@"; }
# has says whether the site's CLI has the command (a step not in yet is skipped).
has() { op "$@" --help >/dev/null 2>&1; }

teardown() {
  [ -n "$PROJECT" ] || return 0
  if [ "${1:-}" = failed ]; then
    c logs --no-color >"$LOGS/$PROJECT.log" 2>&1
    say "logs of $PROJECT kept in $LOGS/$PROJECT.log"
  fi
  c down -v --remove-orphans >/dev/null 2>&1
  PROJECT=""
}
trap 'teardown failed; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# up VARIANT FILES...: a new project from nothing, up.
up() {
  PROJECT="steward-labtest-$$-$1"
  shift
  FILES=()
  for f in "$@"; do FILES+=(-f "$f"); done
  UP_START=$SECONDS
  c up -d >"$TMP/up.log" 2>&1 || { cat "$TMP/up.log" >&2; return 1; }
}

ONLINE_S=-1
step_enroll() {
  wait_online 180 3 c || return 1
  ONLINE_S=$((SECONDS - UP_START))
}

step_inventory() {
  # The first report travels through the agent's outbox right after it
  # comes online: give it up to 30 s to be stored.
  local out i
  for i in $(seq 30); do
    if out=$(op inventory show agent-1 2>/dev/null) && grep -q "Steward lab agent" <<<"$out" && grep -q "eth0" <<<"$out"; then
      return 0
    fi
    sleep 1
  done
  op inventory show agent-1
  return 1
}

step_collection() {
  op collections create "Lab agents" --query 'name startsWith "agent-"' >/dev/null || return 1
  local i
  for i in $(seq 30); do
    [ "$(op collections members "Lab agents" -o json | grep -c '"name": "agent-')" = 3 ] && return 0
    sleep 1
  done
  return 1
}

# Remote tools on for the lab collection, without prompting (nobody is logged
# on to a container): what a remote shell needs.
step_settings() {
  has settings deploy || return 2
  op settings apply -f - >/dev/null <<'YAML' || return 1
name: Lab remote tools
description: remote shells into the lab's agents without a prompt
priority: 10
remoteTools:
  enabled: true
  accessLevel: full
  promptUser: false
  allowWhenNoUser: true
  permittedViewers: [admin]
YAML
  op settings deploy "Lab remote tools" --collection "Lab agents" >/dev/null || return 1
  local i
  for i in $(seq 60); do
    [ "$(op settings compliance "Lab remote tools" --state applied -o json | grep -c '"state": "applied"')" -ge 3 ] && return 0
    sleep 1
  done
  return 1
}

step_shell() {
  has session shell || return 2
  local out
  out=$(op session shell agent-1 -- hostname | tr -d '\r') || return 1
  [ "$out" = agent-1 ]
}

# A rule that POSTs every "enrollment token created" (1001, an audit message
# the admin service sends) to the operator's webhook; a new token makes it
# fire, and the webhook must receive that token's message.
step_status_rule() {
  has status rules add || return 2
  op status rules add --name lab-tokens --match 'id == 1001' --action webhook \
    --url http://operator:9000/cgi-bin/hook >/dev/null || return 1
  local id i
  id=$(c exec -T operator sh -c 'steward tokens create --uses 1 --ttl 1h --note lab-rule 2>&1 >/dev/null' |
    sed -n 's/^token \([0-9a-f-]*\): .*/\1/p')
  [ -n "$id" ] || return 1
  for i in $(seq 60); do
    c exec -T operator grep -q "$id" /tmp/webhooks.jsonl 2>/dev/null && return 0
    sleep 1
  done
  return 1
}

# A package made from a directory in the operator's container, deployed to
# the lab collection: each agent downloads it from the site, verifies every
# hash, installs it and reports it installed.
step_packages() {
  has packages create || return 2
  c exec -T operator sh -c 'rm -rf /tmp/pkg && mkdir -p /tmp/pkg/bin && echo "lab tool" >/tmp/pkg/bin/tool &&
    head -c 3000000 /dev/urandom >/tmp/pkg/data.bin' || return 1
  op packages create labtools --version 1.0 --source /tmp/pkg >/dev/null || return 1
  op packages deploy labtools --collection "Lab agents" >/dev/null || return 1
  # Agents wait up to 30 s at random before fetching (ContentSpread).
  local i
  for i in $(seq 120); do
    [ "$(op packages status labtools -o json | grep -c '"state": "installed"')" -ge 3 ] && return 0
    sleep 1
  done
  op packages status labtools
  return 1
}

PASSED=0 TOTAL=0
NOT_IN=()
FAILED=()
# run_steps VARIANT STEP...
run_steps() {
  local variant=$1 s rc t
  shift
  for s in "$@"; do
    t=$SECONDS
    "step_$s"
    rc=$?
    TOTAL=$((TOTAL + 1))
    case $rc in
    0) PASSED=$((PASSED + 1)) && say "$variant: $s passed ($((SECONDS - t)) s)" ;;
    2) NOT_IN+=("$s") && say "$variant: $s not in yet (the CLI has no such command): skipped" ;;
    *) FAILED+=("$variant/$s") && say "$variant: $s FAILED ($((SECONDS - t)) s)" ;;
    esac
  done
}

# streams: the site's streams as JSON (steward site streams, as the services).
streams() { op site streams --data /data -o json; }

# step_r3 (cluster): every stream, bucket and object store has three
# replicas, all current.
step_r3() {
  local i out
  for i in $(seq 30); do
    out=$(streams | tr -d ' \n' | grep -o '{[^{}]*}')
    if [ -n "$out" ] && ! grep -qv '"replicas":3,"leader":"[^"]*","current":3' <<<"$out"; then
      say "cluster: $(wc -l <<<"$out") streams, buckets and object stores, every one R3 and current"
      return 0
    fi
    sleep 1
  done
  say "cluster: not R3 everywhere: $(grep -v '"replicas":3,"leader":"[^"]*","current":3' <<<"$out" | tr '\n' ' ')"
  return 1
}

# leader_of STREAM: the compose service of the NATS node leading it (nats-1
# is the service "nats").
leader_of() {
  local l
  l=$(streams | tr -d ' \n' | grep -o "{\"name\":\"$1\"[^{}]*}" | sed -n 's/.*"leader":"\([^"]*\)".*/\1/p')
  [ "$l" = nats-1 ] && l=nats
  echo "$l"
}

# stored_tokens NOTE: IDs of the tokens with that note the site has stored.
stored_tokens() {
  op tokens list -o json | tr -d ' \n' | grep -o '{[^{}]*}' | grep "\"note\":\"$1\"" |
    sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | sort -u
}

if [ "${LAB_TEST_SKIP_IMAGES:-}" != 1 ]; then
  say "building the images"
  deploy/images.sh >"$TMP/images.log" 2>&1 || { cat "$TMP/images.log" >&2; exit 1; }
fi
IMAGES_S=$((SECONDS - T0))

# --- the lab: one NATS server, one instance of each service ---------------
say "lab: up (docker-compose.yml)"
up lab docker-compose.yml || exit 1
run_steps lab "${STEPS[@]}"
LAB_ONLINE_S=$ONLINE_S
LAB_PASSED=$PASSED LAB_TOTAL=$TOTAL
LAB_FAILED=${#FAILED[@]}
[ "$LAB_FAILED" -eq 0 ] && teardown || teardown failed

# --- the cluster: three NATS nodes, R3, two instances of each service -----
PASSED=0 TOTAL=0
say "cluster: up (docker-compose.yml + deploy/cluster.yml)"
up cluster docker-compose.yml deploy/cluster.yml || exit 1
run_steps cluster enroll r3 inventory collection
CLUSTER_ONLINE_S=$ONLINE_S

# The burst of durable writes; a third of the way in, kill (SIGKILL: no
# goodbye) the NATS node leading the bucket the writes go to, and an admin
# instance.
NOTE="burst-$$"
NODE=$(leader_of KV_admin-tokens)
[ -n "$NODE" ] || NODE=nats-2
say "cluster: $BURST acknowledged writes; a third of the way in, kill the service $NODE (leader of KV_admin-tokens) and admin-2"
: >"$TMP/acked"
# docker exec, not compose exec: docker-compose 1.29 holds the output back
# until the command ends, and the kills go by the acknowledgements so far.
docker exec "$(c ps -q operator)" sh /opt/steward/burst.sh "$BURST" "$NOTE" >"$TMP/acked" 2>"$TMP/burst.err" &
burst=$!
KILLED=""
deadline=$((SECONDS + 300))
while kill -0 "$burst" 2>/dev/null; do
  if [ -z "$KILLED" ] && [ "$(wc -l <"$TMP/acked")" -ge $((BURST / 3)) ]; then
    c kill "$NODE" >/dev/null 2>&1 && c kill admin-2 >/dev/null 2>&1 && KILLED="$NODE and admin-2"
    say "cluster: killed $KILLED after $(wc -l <"$TMP/acked") acknowledged writes"
  fi
  [ "$SECONDS" -lt "$deadline" ] || { kill "$burst"; say "cluster: the burst did not finish in 300 s"; }
  sleep 0.2
done
wait "$burst"
say "$(cat "$TMP/burst.err")"
sort -u "$TMP/acked" >"$TMP/acked.sorted"
ACKED=$(wc -l <"$TMP/acked.sorted")
NEW_LEADER=$(leader_of KV_admin-tokens)
say "cluster: KV_admin-tokens is led by the service ${NEW_LEADER:-(nobody)} now"

# The scenario goes on with a node and an instance down: the agents that were
# on nats-2 come back through the other nodes.
run_steps cluster-degraded enroll settings shell
stored_tokens "$NOTE" >"$TMP/stored"
LOST_DOWN=$(comm -23 "$TMP/acked.sorted" "$TMP/stored" | wc -l)

# Back to three nodes, all current again.
c start "$NODE" admin-2 >/dev/null 2>&1
run_steps cluster r3 status_rule
stored_tokens "$NOTE" >"$TMP/stored"
STORED=$(wc -l <"$TMP/stored")
LOST=$(comm -23 "$TMP/acked.sorted" "$TMP/stored" | wc -l)
[ "$LOST_DOWN" -gt "$LOST" ] && LOST=$LOST_DOWN
[ -n "$KILLED" ] || FAILED+=("cluster/kill: the burst ended before the kills")
[ "$ACKED" -gt 0 ] || FAILED+=("cluster/burst: nothing acknowledged")
[ "$LOST" -eq 0 ] || FAILED+=("cluster/burst: $LOST acknowledged writes lost")
CLUSTER_PASSED=$PASSED CLUSTER_TOTAL=$TOTAL
[ ${#FAILED[@]} -eq "$LAB_FAILED" ] && teardown || teardown failed

trap 'rm -rf "$TMP"' EXIT
not_in=""
[ ${#NOT_IN[@]} -gt 0 ] && not_in=" (not in yet: $(printf '%s\n' "${NOT_IN[@]}" | sort -u | tr '\n' ' ' | sed 's/ $//'))"
if [ ${#FAILED[@]} -gt 0 ]; then
  say "FAILED: ${FAILED[*]}"
  RESULT=FAIL
else
  RESULT=ok
fi
echo "lab-test $RESULT: lab ${LAB_ONLINE_S}s up to 3 agents online, steps ${LAB_PASSED}/${LAB_TOTAL} passed; cluster ${CLUSTER_ONLINE_S}s to online, steps ${CLUSTER_PASSED}/${CLUSTER_TOTAL} passed${not_in}; across the kill of ${KILLED:-nothing} acknowledged ${ACKED} / stored ${STORED} (lost ${LOST}); images ${IMAGES_S}s, total $((SECONDS - T0))s"
[ "$RESULT" = ok ]
