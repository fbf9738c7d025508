#!/usr/bin/env bash
# Smoke test of the docker-compose stack, end to end, against the host ports:
#   1. builds the image and starts control and the scalable `worker` service (two containers)
#      from nothing (no old volumes); the workers join the control node, which forms the
#      cluster;
#   2. waits until the containers are healthy;
#   3. inserts 16 rows through :8080 (JSON single rows, a JSON batch, protobuf single rows) and
#      checks the exact count, sum, average, min and max from /analytics?format=json;
#   4. every worker holds a replica of every shard (16 rows each: two workers and the control
#      node as witness, replication factor 3);
#   5. freezes the second worker container (docker pause: a hung worker), then kills it (docker
#      kill: SIGKILL): /analytics must stay complete and exact (is_partial false, count 16,
#      responding_nodes 1) within 1.5 s + slack once the shards it led have a new leader, and
#      inserts go on; started again, it catches up and holds every row;
#   6. `up --scale worker=3`: the third worker joins, the rebalancer gives it a replica of every
#      shard (the witness leaves them) and /health says balanced; then the first worker's
#      container is killed: complete and exact answers (3 nodes, 2 responding), inserts go on;
#   7. scale down: the worker in the third container is decommissioned (it drains and leaves,
#      the witness comes back), then `up --scale worker=2` removes its container;
#   8. `docker-compose down` (volumes kept) and `up` again: the same two workers (ids kept in
#      their data pool directories) hold every row (and the cluster secret the one-shot
#      `secret` service made on the first up is the same);
#   9. `docker-compose down -v`: the volumes are gone.
# After 2, a worker's host port refuses an unsigned internal request (401: the cluster secret).
# Exits non-zero on the first mismatch; always removes its containers, network and volumes.
#
#   scripts/compose-smoke.sh
# Env: COMPOSE_PROJECT_NAME (default das-smoke), CONTROL_PORT (default 8080) and WORKER_PORTS
# (the workers' host port range, default 8081-8089), BUILD_JOBS (ninja jobs in the image build,
# default 2),
# SLACK_S (seconds allowed beyond the 1.5 s analytics deadline, default 1.0).
set -euo pipefail
cd "$(dirname "$0")/.."

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-das-smoke}
export CONTROL_PORT=${CONTROL_PORT:-8080} WORKER_PORTS=${WORKER_PORTS:-8081-8089}
export BUILD_JOBS=${BUILD_JOBS:-2}
first_worker_port=${WORKER_PORTS%-*}
deadline_s=1.5
slack_s=${SLACK_S:-1.0}
base=http://127.0.0.1:$CONTROL_PORT
dc() { docker-compose -f docker-compose.yml "$@"; }

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }
fail() {
  log "FAIL: $*"
  exit 1
}
for tool in docker docker-compose curl; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done
docker info >/dev/null 2>&1 || fail "the Docker engine does not answer (docker info)"
for port in "$CONTROL_PORT" $(seq "$first_worker_port" "${WORKER_PORTS#*-}"); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "host port $port is in use: set CONTROL_PORT and WORKER_PORTS"
  fi
done

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((rc != 0)); then
    log "logs of the stack (last 30 lines each):"
    dc logs --no-color --tail 30 2>&1 | sed 's/^/    /' || true
  fi
  dc down -v --remove-orphans >/dev/null 2>&1 || true
  log "cleaned up (project $COMPOSE_PROJECT_NAME); exit $rc"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The id of the container of the scalable worker service numbered N (worker_N).
worker_container() { # worker_container N
  docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
    --filter label=com.docker.compose.service=worker \
    --filter "label=com.docker.compose.container-number=$1"
}
# Its host port, and the worker id it runs as (its /health names it, "worker-<id>").
worker_port() { docker port "$(worker_container "$1")" 8081/tcp | head -n1 | sed 's/.*://'; }
worker_id_of() {
  curl -sS -m 10 "http://127.0.0.1:$(worker_port "$1")/health" | grep -o '"node":"worker-[0-9]*"' |
    tr -dc 0-9
}

# Waits until each named container (a service name, or worker_N) reports healthy (Docker's
# HEALTHCHECK).
wait_healthy() {
  local svc id state
  local until=$((SECONDS + 120))
  for svc in "$@"; do
    while :; do
      if [[ $svc == worker_* ]]; then id=$(worker_container "${svc#worker_}"); else id=$(dc ps -q "$svc"); fi
      state=$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo none)
      [[ $state == healthy ]] && break
      ((SECONDS < until)) || fail "$svc is not healthy after 120 s (state: $state)"
      sleep 1
    done
  done
  log "healthy: $*"
}

# JSON helpers: the value of a top-level field of a flat JSON object.
field() { # field NAME JSON
  local v
  v=$(grep -o "\"$1\":[^,}]*" <<<"$2" | head -n1 | cut -d: -f2-) || true
  printf '%s' "${v//\"/}"
}
expect_field() { # expect_field NAME WANT JSON
  local got
  got=$(field "$1" "$3")
  [[ $got == "$2" ]] || fail "$1: want $2, got '${got}' in $3"
}

post_json() { # post_json PATH BODY -> prints the answer; fails unless 200
  local out code
  out=$(curl -sS -m 10 -w '\n%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "$2" "$base$1") || fail "POST $1: curl failed"
  code=${out##*$'\n'}
  [[ $code == 200 ]] || fail "POST $1 $2: HTTP $code: ${out%$'\n'*}"
  printf '%s' "${out%$'\n'*}"
}

# An InsertRequest by hand: field 1 (tag 0x0a, length, key bytes), field 2 (tag 0x11, the
# double in 8 little-endian bytes). Cross-checked against protoc when the host has it.
pb_insert() { # pb_insert KEY VALUE DOUBLE_BYTES_AS_PRINTF_ESCAPES
  local key=$1 value=$2 bytes=$3 req answer
  req=$(mktemp)
  printf '\x0a'"$(printf '\\x%02x' "${#key}")"'%s\x11'"$bytes" "$key" >"$req"
  if command -v protoc >/dev/null; then
    cmp -s "$req" <(protoc -I proto --encode=das.v1.InsertRequest proto/das/v1/das.proto \
      <<<"partition_key: \"$key\" value: $value") ||
      fail "hand-encoded InsertRequest differs from protoc's for $key=$value"
  fi
  answer=$(curl -sS -m 10 -w ' %{http_code}' -H 'Content-Type: application/x-protobuf' \
    --data-binary "@$req" "$base/insert" | od -An -tx1 | tr -d ' \n') ||
    fail "protobuf POST /insert: curl failed"
  rm -f "$req"
  # InsertResponse {rows_written: 1} is 08 01; then " 200" from -w (20 32 30 30).
  [[ $answer == 080120323030 ]] || fail "protobuf insert $key=$value: answer bytes $answer"
}

analytics() { # prints "HTTP_CODE SECONDS BODY"
  curl -sS -m 10 -w '\n%{http_code} %{time_total}\n' "$base/analytics?format=json" |
    {
      read -r body || true
      read -r code secs || true
      printf '%s %s %s\n' "$code" "$secs" "$body"
    }
}

# The full data set's answer: 16 rows, sum 50, average 3.125, min -1, max 8 (all exact in
# binary, so any summation order gives these digits). `nodes`: the workers that are members.
expected_count=16 expected_sum=50 expected_average=3.125 nodes=2
check_all_rows() { # check_all_rows WHEN: complete, every worker answering, exact figures
  local code secs body i
  # A worker back from a pause or a restart counts as responding once the control node's
  # once-a-second health check saw it again.
  for ((i = 0; i < 100; i++)); do
    read -r code secs body < <(analytics)
    [[ $code == 200 && $body == *"\"responding_nodes\":$nodes"* ]] && break
    sleep 0.2
  done
  [[ $code == 200 ]] || fail "$1: /analytics HTTP $code: $body"
  expect_field is_partial false "$body"
  expect_field total_nodes "$nodes" "$body"
  expect_field responding_nodes "$nodes" "$body"
  expect_field count "$expected_count" "$body"
  expect_field sum "$expected_sum" "$body"
  expect_field average "$expected_average" "$body"
  expect_field min -1 "$body"
  expect_field max 8 "$body"
  log "$1: all $expected_count rows: $body"
}

check_complete() { # check_complete WHAT COUNT: one worker down; complete and exact, in time
  local code secs body i
  for ((i = 0; i < 100; i++)); do
    read -r code secs body < <(analytics)
    [[ $code == 200 && $body == *'"is_partial":false'* &&
      $body == *"\"responding_nodes\":$((nodes - 1))"* ]] && break
    sleep 0.2
  done
  [[ $code == 200 ]] || fail "$1: /analytics HTTP $code (want 200): $body"
  expect_field is_partial false "$body"
  expect_field total_nodes "$nodes" "$body"
  expect_field responding_nodes $((nodes - 1)) "$body"
  expect_field count "$2" "$body"
  awk -v s="$secs" -v d="$deadline_s" -v k="$slack_s" 'BEGIN { exit !(s <= d + k) }' ||
    fail "$1: /analytics took $secs s (deadline $deadline_s s + slack $slack_s s)"
  log "$1: complete in ${secs}s: $body"
}

control_health() { curl -sS -m 10 "$base/health?format=json"; }
# Rows per worker, from the control node's /health: replicated, each holds all of them.
rows_of() { # rows_of WORKER_ID: that worker's rows in the control node's /health
  control_health | grep -o "\"worker_id\":$1,[^}]*" | grep -o '"rows":"[0-9]*"' | tr -dc 0-9
}
wait_rows() { # wait_rows WORKER_ID COUNT: a restarted replica catches up from the log
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(rows_of "$1") == "$2" ]] && return 0
    sleep 0.2
  done
  fail "worker $1 holds $(rows_of "$1") rows, want $2"
}
# Waits until the control node's /health is "ok" with `nodes` workers listed and the
# rebalancer balanced (every move done); WHAT names the wait.
wait_balanced() { # wait_balanced WHAT
  local health i
  for ((i = 0; i < 300; i++)); do
    health=$(control_health)
    if [[ $health == '{"status":"ok"'* && $health == *'"balanced":true'* &&
      $(grep -o '"worker_id":' <<<"$health" | wc -l) == "$nodes" ]]; then
      log "$1: balanced: $(grep -o '"rebalance":{[^}]*}' <<<"$health")"
      return 0
    fi
    sleep 1
  done
  fail "$1: not balanced after 300 s: $health"
}
witness_shards() { control_health | grep -o '"node":"witness"' | wc -l; }

log "project $COMPOSE_PROJECT_NAME: starting from a clean state"
dc down -v --remove-orphans >/dev/null 2>&1 || true
build_log=/tmp/$COMPOSE_PROJECT_NAME.build.log
log "building the image (BUILD_JOBS=$BUILD_JOBS; output in $build_log)"
started=$SECONDS
dc build >"$build_log" 2>&1 || { tail -n 40 "$build_log"; fail "docker-compose build"; }
log "built in $((SECONDS - started)) s: $(docker image ls distributed-analytics-system:latest \
  --format '{{.Repository}}:{{.Tag}} {{.Size}}')"
dc up -d
wait_healthy control worker_1 worker_2
# Docker gives each worker container a host port of the range (round-robin over the daemon's
# life: on a fresh daemon the first two get 8081 and 8082; a restarted container may get another).
ports="$(worker_port 1) $(worker_port 2)"
for port in $ports; do
  ((port >= first_worker_port && port <= ${WORKER_PORTS#*-})) || fail "a worker is on host port $port, outside $WORKER_PORTS"
done
[[ $(worker_port 1) != "$(worker_port 2)" ]] || fail "both workers on host port $(worker_port 1)"
# The workers' host ports take no internal request without the cluster secret's signature.
for port in $ports; do
  code=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/x-protobuf' \
    --data-binary '' "http://127.0.0.1:$port/internal/v1/write") || fail "POST to :$port failed"
  [[ $code == 401 ]] || fail "an unsigned internal write to :$port got $code, not 401"
done
log "workers on host ports $ports; unsigned internal writes to them: 401 (cluster secret)"
id1=$(worker_id_of 1) id2=$(worker_id_of 2)
log "worker_1 runs worker $id1, worker_2 runs worker $id2 (ids given at their joins)"
wait_balanced "two workers joined"

# ---- inserts: 8 JSON rows, a JSON batch of 4, 4 protobuf rows -------------------------------
for i in 1 2 3 4 5 6 7 8; do
  answer=$(post_json /insert "{\"partition_key\": \"json-$i\", \"value\": $i}")
  expect_field rows_written 1 "$answer"
done
batch='{"rows": [{"partition_key": "batch-1", "value": 0.25},
                 {"partition_key": "batch-2", "value": 0.75},
                 {"partition_key": "batch-3", "value": -1},
                 {"partition_key": "batch-4", "value": 2}],
        "idempotency_key": "compose-smoke-batch-1"}'
expect_field rows_written 4 "$(post_json /insert/batch "$batch")"
# A retry of the same batch answers the same and stores nothing twice (checked by the count).
expect_field rows_written 4 "$(post_json /insert/batch "$batch")"
pb_insert pb-1 0.5 '\x00\x00\x00\x00\x00\x00\xe0\x3f'
pb_insert pb-2 1.5 '\x00\x00\x00\x00\x00\x00\xf8\x3f'
pb_insert pb-3 4 '\x00\x00\x00\x00\x00\x00\x10\x40'
pb_insert pb-4 6 '\x00\x00\x00\x00\x00\x00\x18\x40'
log "inserted 16 rows: 8 JSON, a JSON batch of 4 (sent twice), 4 protobuf"
if command -v protoc >/dev/null; then
  log "(the protobuf bodies, encoded by hand, equal protoc --encode's)"
fi
check_all_rows "after the inserts"
wait_rows "$id1" 16
wait_rows "$id2" 16
log "placement: both workers hold a replica of all 16 rows"

# ---- a hung worker, then a killed one: nothing is missing ------------------------------------
second=$(worker_container 2)
docker pause "$second" >/dev/null
check_complete "worker_2 paused (hung)" 16
docker unpause "$second" >/dev/null
check_all_rows "worker_2 unpaused"

docker kill "$second" >/dev/null
docker wait "$second" >/dev/null
check_complete "worker_2 killed" 16
answer=$(post_json /insert '{"partition_key": "while-down", "value": 1}')
expect_field rows_written 1 "$answer"
check_complete "an insert while worker_2 is down" 17
expect_field status degraded "$(control_health)"
log "control /health says degraded while worker_2 is down"

docker start "$second" >/dev/null
wait_healthy worker_2
[[ $(worker_id_of 2) == "$id2" ]] || fail "worker_2 came back as worker $(worker_id_of 2), not $id2"
wait_rows "$id2" 17
log "worker_2 is worker $id2 again and caught up: it holds all 17 rows"
# The row written while worker_2 was down (value 1) is in every answer from now on.
expected_count=17 expected_sum=51 expected_average=3

# ---- scale up: a third worker joins and receives its share -----------------------------------
dc up -d --scale worker=3 >/dev/null 2>&1
wait_healthy worker_3
id3=$(worker_id_of 3)
log "worker_3 joined as worker $id3 on host port $(worker_port 3)"
nodes=3
wait_balanced "worker $id3 joined"
wait_rows "$id3" 17
[[ $(witness_shards) == 0 ]] || fail "the witness still holds $(witness_shards) shard replicas"
log "worker $id3 holds a replica of every shard (all 17 rows); the witness left every shard"
check_all_rows "three workers"
first=$(worker_container 1)
docker kill "$first" >/dev/null
docker wait "$first" >/dev/null
check_complete "worker_1 killed (three workers)" 17
expect_field rows_written 1 "$(post_json /insert '{"partition_key": "three-1", "value": 3}')"
check_complete "an insert while worker_1 is down" 18
docker start "$first" >/dev/null
wait_healthy worker_1
[[ $(worker_id_of 1) == "$id1" ]] || fail "worker_1 came back as worker $(worker_id_of 1), not $id1"
expected_count=18 expected_sum=54 expected_average=3
wait_rows "$id1" 18
check_all_rows "worker_1 back"

# ---- scale down: decommission the worker in the third container, then remove it -------------
code=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' -X POST "$base/admin/workers/$id3/decommission")
[[ $code == 202 ]] || fail "decommission of worker $id3: HTTP $code, not 202"
nodes=2
wait_balanced "worker $id3 decommissioned"
[[ $(witness_shards) -gt 0 ]] || fail "the witness did not come back with two workers"
dc up -d --scale worker=2 >/dev/null 2>&1
[[ -z $(worker_container 3) ]] || fail "worker_3's container is still there after --scale worker=2"
log "worker $id3 drained and left; --scale worker=2 removed its container; the witness is back"
check_all_rows "scaled back to two workers"

# ---- a full restart keeps the data (named volumes) ----------------------------------------------
dc down >/dev/null 2>&1
[[ -z $(dc ps -q) ]] || fail "containers left after docker-compose down"
volumes=$(docker volume ls -q --filter "name=${COMPOSE_PROJECT_NAME}_")
log "down (volumes kept): $(tr '\n' ' ' <<<"$volumes")"
[[ $(wc -w <<<"$volumes") == 3 ]] ||
  fail "want 3 volumes (the workers' data pool, control, cluster secret) after down, got: $volumes"
secret_before=$(docker run --rm -v "${COMPOSE_PROJECT_NAME}_cluster-secret:/secret:ro" \
  --entrypoint sha256sum distributed-analytics-system:latest /secret/cluster-secret)
dc up -d >/dev/null 2>&1
wait_healthy control worker_1 worker_2
ids=$(printf '%s\n' "$(worker_id_of 1)" "$(worker_id_of 2)" | sort | tr '\n' ' ')
[[ $ids == "$(printf '%s\n' "$id1" "$id2" | sort | tr '\n' ' ')" ]] ||
  fail "after down and up the workers are $ids, not $id1 and $id2"
log "after down and up: workers $ids again (ids kept in the data pool)"
check_all_rows "after down and up"
secret_after=$(docker run --rm -v "${COMPOSE_PROJECT_NAME}_cluster-secret:/secret:ro" \
  --entrypoint sha256sum distributed-analytics-system:latest /secret/cluster-secret)
[[ $secret_before == "$secret_after" ]] || fail "the cluster secret changed across down and up"
log "the cluster secret was kept across down and up"

# ---- the console, /metrics, and das-load inside the image -----------------------------------
curl -fsS -m 10 "$base/" | grep -q '<title>das console</title>' || fail "GET / is not the console"
curl -fsS -m 10 "$base/console/console.js" >/dev/null || fail "the console's script is missing"
metrics=$(curl -fsS -m 10 "$base/metrics") || fail "GET /metrics on the control node failed"
grep -q '^das_http_requests_total{code="200",route="/analytics"}' <<<"$metrics" ||
  fail "the control node's /metrics does not count /analytics"
curl -fsS -m 10 "http://127.0.0.1:$(worker_port 1)/metrics" | grep -q '^das_raft_term{shard="0"}' ||
  fail "worker_1's /metrics has no raft term"
log "GET / serves the console; /metrics on the control node and worker_1"
load() { # das-load in the control node's container, on a CSV written there
  dc exec -T control bash -c 'printf "partition_key,value\nload-a,2\nload-b,3\nload-c,4\n" \
    >/tmp/smoke.csv && das-load --progress lines --url http://127.0.0.1:8080 /tmp/smoke.csv'
}
load >>"$build_log" 2>&1 || fail "das-load failed (its output is in $build_log)"
load >>"$build_log" 2>&1 || fail "das-load failed the second time"
expected_count=21 expected_sum=63 expected_average=3
check_all_rows "das-load of 3 rows, run twice (stored once)"

# ---- down -v removes the volumes ----------------------------------------------------------------
dc down -v >/dev/null 2>&1
volumes=$(docker volume ls -q --filter "name=${COMPOSE_PROJECT_NAME}_")
[[ -z $volumes ]] || fail "volumes left after down -v: $volumes"
log "down -v: containers, network and volumes removed"
log "PASS"
