#!/usr/bin/env bash
# Contract test (`make contract-test`; also the last step of `make test`):
# schemathesis sends generated requests, valid and invalid, to every operation
# of the committed openapi.yaml on the whole local stack (cargo lambda watch
# with the deployed router, DynamoDB Local, a scripted Ollama) and fails on a
# 5xx, or a status code, content type or body the spec does not declare.
#
#   contract-test.sh [SCHEMATHESIS_RUN_ARGS...]   extra args go to `schemathesis run`
#                                                  (e.g. --include-path /sessions)
#
# Env (optional):
#   LLMCHAT_TEST_DYNAMODB_ENDPOINT   DynamoDB Local to use (make test sets it);
#                                    unset: a private one is started on a free port
#   LLMCHAT_CONTRACT_MAX_EXAMPLES=50 generated cases per operation (fuzzing phase)
#   LLMCHAT_CONTRACT_SEED=1          generation seed: the same seed, the same requests
#   LLMCHAT_CONTRACT_WORKERS=1       operations tested concurrently; more is faster,
#                                    but the order of requests, and so the run, varies
#   LLMCHAT_READY_TIMEOUT=1200       seconds to wait for the first build of the functions
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LLMCHAT_ROOT"

DDB="$LLMCHAT_ROOT/scripts/dynamodb-local.sh"
MAX_EXAMPLES="${LLMCHAT_CONTRACT_MAX_EXAMPLES:-50}"
SEED="${LLMCHAT_CONTRACT_SEED:-1}"
WORKERS="${LLMCHAT_CONTRACT_WORKERS:-1}"
READY_TIMEOUT="${LLMCHAT_READY_TIMEOUT:-1200}"
for n in MAX_EXAMPLES SEED WORKERS READY_TIMEOUT; do
    [[ ${!n} =~ ^[0-9]+$ ]] || die "$n='${!n}' is not a number"
done

need_cmd cargo java mvn curl python3 setsid pgrep
# cargo-lambda and schemathesis, pinned in scripts/requirements-dev.txt.
ensure_dev_tools
need_cmd schemathesis

mkdir -p "$LLMCHAT_STATE_DIR"
# A directory per run, so concurrent runs never share pid files or logs.
RUN_DIR="$(mktemp -d "$LLMCHAT_STATE_DIR/contract.XXXXXX")"
WATCH_LOG="$RUN_DIR/watch.log"

# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
    local rc=$?
    trap '' INT TERM HUP
    # The log as it was at the failure, before shutdown adds its own lines.
    if ((rc != 0 && rc < 128)) && [[ -s $WATCH_LOG ]]; then
        print_log_tail "$WATCH_LOG" 30
        # -a: logged request values may hold control characters.
        if grep -qaE ' ERROR |panicked' "$WATCH_LOG"; then
            log "---- last errors and panics in $WATCH_LOG ----"
            grep -aE ' ERROR |panicked' "$WATCH_LOG" | tail -n 20 >&2
        fi
    fi
    stop_pidfile "$RUN_DIR/watch.pid" "lambda watch" "cargo lambda watch"
    stop_pidfile "$RUN_DIR/ollama.pid" "scripted-ollama" "scripted Ollama"
    "$DDB" stop "$RUN_DIR/dynamodb-local.pid" || true
    if ((rc == 0)); then
        rm -rf "$RUN_DIR"
    elif ((rc >= 128)); then
        log "contract test interrupted; logs kept in ${RUN_DIR#"$LLMCHAT_ROOT"/}"
    else
        log "contract test FAILED; logs and reports kept in ${RUN_DIR#"$LLMCHAT_ROOT"/}"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

use_local_aws_env
if [[ -n ${LLMCHAT_TEST_DYNAMODB_ENDPOINT:-} ]]; then
    export DYNAMODB_ENDPOINT="$LLMCHAT_TEST_DYNAMODB_ENDPOINT"
else
    "$DDB" install
    ddb_port="$(start_dynamodb_on_free_port "$RUN_DIR/dynamodb-local.pid" "$RUN_DIR/dynamodb-local.log")"
    export DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
fi
# A table of its own: a shared DynamoDB Local may hold other runs' tables.
export LLMCHAT_TABLE_NAME="llmchat-contract-${RUN_DIR##*.}-$$"

log "building llmchat-admin and scripted-ollama"
cargo build -q -p llmchat-admin -p llmchat-tests --bins
target_dir="$(cargo metadata -q --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
admin() { "$target_dir/debug/llmchat-admin" "$@"; }

log "creating table $LLMCHAT_TABLE_NAME at $DYNAMODB_ENDPOINT"
admin create-table
key="$(admin issue-key --owner contract-test | tail -n 1)"
[[ $key == lck_* ]] || die "llmchat-admin issue-key printed no key"

# The scripted Ollama picks a free port itself and prints its URL first. The
# file exists before it starts, so reading it never races the redirection.
: >"$RUN_DIR/ollama.out"
setsid "$target_dir/debug/scripted-ollama" </dev/null >"$RUN_DIR/ollama.out" 2>"$RUN_DIR/ollama.log" &
printf '%s\n' "$!" >"$RUN_DIR/ollama.pid"
ollama_url=
for _ in $(seq 100); do
    ollama_url="$(head -n 1 "$RUN_DIR/ollama.out")"
    [[ -z $ollama_url ]] || break
    pid_gone "$(<"$RUN_DIR/ollama.pid")" && break
    sleep 0.1
done
[[ $ollama_url == http://* ]] || { print_log_tail "$RUN_DIR/ollama.log"; die "scripted-ollama did not start"; }
log "scripted Ollama at $ollama_url"

# NO_COLOR: the log is a file to read and grep, not a terminal.
printf '%s=%s\n' \
    LLMCHAT_TABLE_NAME "$LLMCHAT_TABLE_NAME" \
    DYNAMODB_ENDPOINT "$DYNAMODB_ENDPOINT" \
    OLLAMA_URL "$ollama_url" \
    AWS_ACCESS_KEY_ID "$AWS_ACCESS_KEY_ID" \
    AWS_SECRET_ACCESS_KEY "$AWS_SECRET_ACCESS_KEY" \
    AWS_REGION "$AWS_REGION" \
    LLMCHAT_LOG_FORMAT pretty \
    LLMCHAT_LLM_FIRST_TOKEN_TIMEOUT_MS 5000 \
    NO_COLOR 1 \
    >"$RUN_DIR/watch.env"

# The watch builds each function on its first request, which would eat into
# schemathesis' request timeout. Built here first, one `cargo build --bin` per
# function exactly as the watch's `cargo run --bin` does, so features resolve
# the same and the watch finds everything fresh. target/e2e-watch is shared
# with the end-to-end test: after `cargo test` little is left to compile.
export CARGO_TARGET_DIR="$LLMCHAT_ROOT/target/e2e-watch"
# The router in Cargo.toml, as lines "FUNCTION METHOD PATH" (METHOD GET where a
# function serves every method); path parameters filled with a UUID.
mapfile -t routes < <(python3 - <<'PY'
import re, tomllib
with open("Cargo.toml", "rb") as f:
    router = tomllib.load(f)["workspace"]["metadata"]["lambda"]["watch"]["router"]
for path, target in router.items():
    path = re.sub(r"\{[^}]*\}", "00000000-0000-0000-0000-000000000000", path)
    for t in [{"function": target}] if isinstance(target, str) else target:
        print(t["function"], t.get("method", "GET"), path)
PY
)
((${#routes[@]} > 0)) || die "no routes in the router of Cargo.toml"
mapfile -t functions < <(printf '%s\n' "${routes[@]}" | cut -d' ' -f1 | sort -u)
log "building the functions: ${functions[*]} (the first build takes minutes)"
for f in "${functions[@]}"; do
    cargo build -q --manifest-path Cargo.toml --bin "$f"
done

port="$(free_port)"
base="http://127.0.0.1:$port"
log "starting cargo lambda watch on $base (log: ${WATCH_LOG#"$LLMCHAT_ROOT"/})"
# setsid: one session to stop as a whole. --disable-cors: responses exactly as
# the functions make them.
setsid cargo lambda watch --ignore-changes -A 127.0.0.1 -P "$port" --concurrency 2 \
    --disable-cors --env-file "$RUN_DIR/watch.env" </dev/null >"$WATCH_LOG" 2>&1 &
watch_pid=$!
printf '%s\n' "$watch_pid" >"$RUN_DIR/watch.pid"

deadline=$((SECONDS + READY_TIMEOUT))
while :; do
    code="$(http_code GET "$base/health" 30)"
    [[ $code == 200 ]] && break
    if pid_gone "$watch_pid"; then die "cargo lambda watch exited before the stack became ready"; fi
    ((SECONDS < deadline)) || die "$base/health did not answer 200 within ${READY_TIMEOUT}s (last status: $code)"
    sleep 1
done
# The first request to a function starts its instances; one request per route
# here keeps that start-up out of schemathesis' run. Any answer will do: wrong
# ones are for schemathesis to find.
for route in "${routes[@]}"; do
    read -r _ method path <<<"$route"
    until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 -X "$method" "$base$path" \
        -H "Authorization: Bearer $key" -H 'content-type: application/json' \
        --data '{}' 2>/dev/null)" != 000 ]]; do
        ((SECONDS < deadline)) || die "$method $path did not answer within ${READY_TIMEOUT}s"
        sleep 1
    done
done
log "stack ready: ${#functions[@]} functions on ${#routes[@]} routes"

# Written per run and passed explicitly, so no schemathesis.toml elsewhere
# changes the run, and its crash cache (replayed by later runs, which would
# make them differ) stays off.
printf '[cache]\nenabled = false\n' >"$RUN_DIR/schemathesis.toml"

CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# Bounded and repeatable: a fixed seed, a fixed number of cases per operation,
# one worker, and no example database carried over from earlier runs.
args=(
    --config-file "$RUN_DIR/schemathesis.toml"
    run openapi.yaml
    --url "$base"
    --header "Authorization: Bearer $key"
    --checks "$CHECKS"
    --max-examples "$MAX_EXAMPLES"
    --seed "$SEED"
    --generation-database none
    --workers "$WORKERS"
    --request-timeout 15
    --continue-on-failure
    --report junit
    --report-junit-path "$RUN_DIR/junit.xml"
)
log "schemathesis $(schemathesis --version | awk '{print $NF}'): ${args[*]/Bearer */Bearer <key>} $*"
started=$SECONDS
status=0
# Hypothesis keeps its caches (Unicode tables) in the user cache, not the checkout.
# scripts/contract_hooks.py drops failures that are the local runtime's own
# 500s (see there), counting them in runtime-500s.txt.
HYPOTHESIS_STORAGE_DIRECTORY="$LLMCHAT_CACHE_DIR/hypothesis" \
    PYTHONPATH="$LLMCHAT_ROOT/scripts${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=contract_hooks \
    LLMCHAT_RUNTIME_500_COUNT_FILE="$RUN_DIR/runtime-500s.txt" \
    schemathesis "${args[@]}" "$@" || status=$?
elapsed=$((SECONDS - started))
if [[ -s $RUN_DIR/runtime-500s.txt ]]; then
    log "ignored $(wc -l <"$RUN_DIR/runtime-500s.txt") failure(s) that were cargo lambda watch's own 500s, by operation:"
    sort "$RUN_DIR/runtime-500s.txt" | uniq -c >&2
fi

if ((status == 0)); then
    log "contract test passed: no failures against openapi.yaml (seed $SEED, ${MAX_EXAMPLES} examples, ${elapsed}s)"
else
    log "contract test failed (schemathesis exit $status, seed $SEED, ${elapsed}s); by operation:"
    # One line per failing operation, from the JUnit report: the details and a
    # curl command reproducing each failure are in schemathesis' FAILURES above.
    python3 - "$RUN_DIR/junit.xml" >&2 <<'PY' || true
import re, sys, xml.etree.ElementTree as ET
for case in ET.parse(sys.argv[1]).iter("testcase"):
    for bad in case.findall("failure") + case.findall("error"):
        text = bad.text or ""
        checks = dict.fromkeys(re.findall(r"^- (ST\d+ .+)$", text, re.M)) or [bad.get("message", "")]
        statuses = dict.fromkeys(re.findall(r"^\[(\d{3})\]", text, re.M))
        print(f"  {case.get('name')}: {'; '.join(checks)} (got {', '.join(statuses) or 'no response'})")
PY
    log "JUnit report: ${RUN_DIR#"$LLMCHAT_ROOT"/}/junit.xml"
fi
exit "$status"
