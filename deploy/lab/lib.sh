# Shared by deploy/lab.sh and deploy/lab-test.sh (sourced, bash).

# compose_detect sets COMPOSE to docker-compose (1.29) or `docker compose`.
compose_detect() {
  if command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
  elif docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  else
    echo "lab: neither docker-compose nor the docker compose plugin is installed" >&2
    return 1
  fi
}

# online_count COMPOSE_ARGS...: how many clients the site reports online, as
# the operator container's CLI sees them (0 while the site is not up yet).
online_count() {
  local n
  n=$("$@" exec -T operator steward clients list -o json 2>/dev/null | grep -c '"online": true') || true
  echo "${n:-0}"
}

# wait_online SECONDS WANT COMPOSE_ARGS...: wait until WANT clients are
# online; fails after SECONDS.
wait_online() {
  local limit=$1 want=$2
  shift 2
  local deadline=$((SECONDS + limit))
  while [ "$(online_count "$@")" -lt "$want" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      return 1
    fi
    sleep 1
  done
}
