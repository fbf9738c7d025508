#!/usr/bin/env bash
# Smoke test of the docker-compose stack, end to end, against the host ports:
#   1. builds the image and starts control, worker1, worker2 from nothing (no old volumes);
#   2. waits until the three containers are healthy;
#   3. inserts 16 rows through :8080 (JSON single rows, a JSON batch, protobuf single rows) and
#      checks the exact count, sum, average, min and max from /analytics?format=json;
#   4. every worker holds a replica of every shard (16 rows each: two workers and the control
#      node as witness, replication factor 3);
#   5. freezes worker2 (docker pause: a hung worker), then kills it (docker kill: SIGKILL):
#      /analytics must stay complete and exact (is_partial false, count 16, responding_nodes 1)
#      within 1.5 s + slack once the shards it led have a new leader, and inserts go on;
#   6. starts worker2 again: it catches up and holds every row;
#   7. `docker-compose down` (volumes kept) and `up` again: every row survived the full restart;
#      (with the cluster secret the one-shot `secret` service made on the first up);
#   8. `docker-compose down -v`: the volumes are gone.
# After 2, a worker's host port refuses an unsigned internal request (401: the cluster secret).
# Exits non-zero on the first mismatch; always removes its containers, network and volumes.
#
#   scripts/compose-smoke.sh
# Env: COMPOSE_PROJECT_NAME (default das-smoke), CONTROL_PORT/WORKER1_PORT/WORKER2_PORT (host
# ports, default 8080-8082), BUILD_JOBS (ninja jobs in the image build, default 2),
# SLACK_S (seconds allowed beyond the 1.5 s analytics deadline, default 1.0).
set -euo pipefail
cd "$(dirname "$0")/.."

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-das-smoke}
export CONTROL_PORT=${CONTROL_PORT:-8080} WORKER1_PORT=${WORKER1_PORT:-8081}
export WORKER2_PORT=${WORKER2_PORT:-8082} BUILD_JOBS=${BUILD_JOBS:-2}
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
for port in "$CONTROL_PORT" "$WORKER1_PORT" "$WORKER2_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "host port $port is in use: set CONTROL_PORT, WORKER1_PORT, WORKER2_PORT"
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

# Waits until each named service's container reports healthy (Docker's HEALTHCHECK).
wait_healthy() {
  local svc id state
  local until=$((SECONDS + 120))
  for svc in "$@"; do
    while :; do
      id=$(dc ps -q "$svc")
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
# binary, so any summation order gives these digits).
expected_count=16 expected_sum=50 expected_average=3.125
check_all_rows() { # check_all_rows WHEN: complete, both workers answering, exact figures
  local code secs body i
  # A worker back from a pause or a restart counts as responding once the control node's
  # once-a-second health check saw it again.
  for ((i = 0; i < 100; i++)); do
    read -r code secs body < <(analytics)
    [[ $code == 200 && $body == *'"responding_nodes":2'* ]] && break
    sleep 0.2
  done
  [[ $code == 200 ]] || fail "$1: /analytics HTTP $code: $body"
  expect_field is_partial false "$body"
  expect_field total_nodes 2 "$body"
  expect_field responding_nodes 2 "$body"
  expect_field count "$expected_count" "$body"
  expect_field sum "$expected_sum" "$body"
  expect_field average "$expected_average" "$body"
  expect_field min -1 "$body"
  expect_field max 8 "$body"
  log "$1: all $expected_count rows: $body"
}

log "project $COMPOSE_PROJECT_NAME: starting from a clean state"
dc down -v --remove-orphans >/dev/null 2>&1 || true
build_log=/tmp/$COMPOSE_PROJECT_NAME.build.log
log "building the image (BUILD_JOBS=$BUILD_JOBS; output in $build_log)"
started=$SECONDS
dc build >"$build_log" 2>&1 || { tail -n 40 "$build_log"; fail "docker-compose build"; }
log "built in $((SECONDS - started)) s: $(docker image ls distributed-analytics-system:latest \
  --format '{{.Repository}}:{{.Tag}} {{.Size}}')"
dc up -d
wait_healthy worker1 worker2 control
# The workers' host ports take no internal request without the cluster secret's signature.
for port in "$WORKER1_PORT" "$WORKER2_PORT"; do
  code=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/x-protobuf' \
    --data-binary '' "http://127.0.0.1:$port/internal/v1/write") || fail "POST to :$port failed"
  [[ $code == 401 ]] || fail "an unsigned internal write to :$port got $code, not 401"
done
log "unsigned internal writes to :$WORKER1_PORT and :$WORKER2_PORT: 401 (cluster secret)"

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

# Rows per worker, from the control node's /health: replicated, each holds all 16.
rows_of() { # rows_of WORKER_ID: that worker's rows in the control node's /health
  curl -sS -m 10 "$base/health?format=json" | grep -o "\"worker_id\":$1,[^}]*" |
    grep -o '"rows":"[0-9]*"' | tr -dc 0-9
}
wait_rows() { # wait_rows WORKER_ID COUNT: a restarted replica catches up from the log
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(rows_of "$1") == "$2" ]] && return 0
    sleep 0.2
  done
  fail "worker$1 holds $(rows_of "$1") rows, want $2"
}
wait_rows 1 16
wait_rows 2 16
log "placement: worker1 and worker2 each hold a replica of all 16 rows"

check_complete() { # check_complete WHAT COUNT: complete and exact, once the shards have leaders
  local code secs body i
  for ((i = 0; i < 100; i++)); do
    read -r code secs body < <(analytics)
    [[ $code == 200 && $body == *'"is_partial":false'* ]] && break
    sleep 0.2
  done
  [[ $code == 200 ]] || fail "$1: /analytics HTTP $code (want 200): $body"
  expect_field is_partial false "$body"
  expect_field total_nodes 2 "$body"
  expect_field responding_nodes 1 "$body"
  expect_field count "$2" "$body"
  awk -v s="$secs" -v d="$deadline_s" -v k="$slack_s" 'BEGIN { exit !(s <= d + k) }' ||
    fail "$1: /analytics took $secs s (deadline $deadline_s s + slack $slack_s s)"
  log "$1: complete in ${secs}s: $body"
}

# ---- a hung worker, then a killed one: nothing is missing ------------------------------------
dc pause worker2 >/dev/null 2>&1
check_complete "worker2 paused (hung)" 16
dc unpause worker2 >/dev/null 2>&1
check_all_rows "worker2 unpaused"

dc kill worker2 >/dev/null 2>&1
check_complete "worker2 killed" 16
answer=$(post_json /insert '{"partition_key": "while-down", "value": 1}')
expect_field rows_written 1 "$answer"
check_complete "an insert while worker2 is down" 17
expect_field status degraded "$(curl -sS -m 10 "$base/health?format=json")"
log "control /health says degraded while worker2 is down"

dc start worker2 >/dev/null 2>&1
wait_healthy worker2
wait_rows 2 17
log "worker2 caught up: it holds all 17 rows"
# The row written while worker2 was down (value 1) is in every answer from now on.
expected_count=17 expected_sum=51 expected_average=3

# ---- a full restart keeps the data (named volumes) ----------------------------------------------
dc down >/dev/null 2>&1
[[ -z $(dc ps -q) ]] || fail "containers left after docker-compose down"
volumes=$(docker volume ls -q --filter "name=${COMPOSE_PROJECT_NAME}_")
log "down (volumes kept): $(tr '\n' ' ' <<<"$volumes")"
[[ $(wc -w <<<"$volumes") == 4 ]] ||
  fail "want 4 volumes (2 workers, control, cluster secret) after down, got: $volumes"
secret_before=$(docker run --rm -v "${COMPOSE_PROJECT_NAME}_cluster-secret:/secret:ro" \
  --entrypoint sha256sum distributed-analytics-system:latest /secret/cluster-secret)
dc up -d >/dev/null 2>&1
wait_healthy worker1 worker2 control
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
curl -fsS -m 10 "http://127.0.0.1:$WORKER1_PORT/metrics" | grep -q '^das_raft_term{shard="0"}' ||
  fail "worker1's /metrics has no raft term"
log "GET / serves the console; /metrics on the control node and worker1"
load() { # das-load in the control node's container, on a CSV written there
  dc exec -T control bash -c 'printf "partition_key,value\nload-a,2\nload-b,3\nload-c,4\n" \
    >/tmp/smoke.csv && das-load --progress lines --url http://127.0.0.1:8080 /tmp/smoke.csv'
}
load >>"$build_log" 2>&1 || fail "das-load failed (its output is in $build_log)"
load >>"$build_log" 2>&1 || fail "das-load failed the second time"
expected_count=20 expected_sum=60 expected_average=3
check_all_rows "das-load of 3 rows, run twice (stored once)"

# ---- down -v removes the volumes ----------------------------------------------------------------
dc down -v >/dev/null 2>&1
volumes=$(docker volume ls -q --filter "name=${COMPOSE_PROJECT_NAME}_")
[[ -z $volumes ]] || fail "volumes left after down -v: $volumes"
log "down -v: containers, network and volumes removed"
log "PASS"
