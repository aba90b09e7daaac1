#!/usr/bin/env bash
# `make bench`: what LlmChat adds on top of the model, side by side in one run
# with the floor (the scripted Ollama read straight) and a peer (LiteLLM's proxy
# in front of the same scripted Ollama). Release builds of the functions under
# the local runtime, DynamoDB Local, the scripted Ollama's `[bench N RATE]`
# replies; scripts/bench.py measures, prints Markdown tables and writes them
# with SVG charts.
#
# Starts: DynamoDB Local; the scripted Ollama (same build); the measured stack
# (--concurrency: one instance of each function per stream of the highest
# concurrency level, quotas lifted) with an API key per owner; a traced stack
# whose DynamoDB and LLM are reached through bench.py's timing relay (the
# breakdown); LiteLLM's proxy.
#
# Env (optional):
#   BENCH_SHORT=1   the short form (CI): few sends, concurrency 1 and 8, short replies
#   BENCH_OUT=DIR   where the report goes (default: docs/bench; the short form:
#                   a directory of the run, so CI leaves the committed report alone)
#   BENCH_LITELLM=0 leave LiteLLM out
#   BENCH_BUILD=release|debug  the functions' build (default: release; the short
#                   form: debug, which `make test` has built already, so CI spends
#                   no release build on a run whose figures nobody reads)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LLMCHAT_ROOT"
STARTED="$(date +%s)"
# Other work on the machine moves every figure: the report says how busy it was.
LOAD_BEFORE="$(cut -d' ' -f1 /proc/loadavg)"
if pgrep -x rustc >/dev/null || pgrep -f 'cargo test' >/dev/null; then
    log "warning: another build or test run is going on; the figures will show its load"
fi

SHORT="${BENCH_SHORT:-0}"
LITELLM="${BENCH_LITELLM:-1}"
[[ $SHORT == [01] ]] || die "BENCH_SHORT='$SHORT' is not 0 or 1"
[[ $LITELLM == [01] ]] || die "BENCH_LITELLM='$LITELLM' is not 0 or 1"
if ((SHORT)); then BUILD="${BENCH_BUILD:-debug}"; else BUILD="${BENCH_BUILD:-release}"; fi
[[ $BUILD == release || $BUILD == debug ]] || die "BENCH_BUILD='$BUILD' is not release or debug"
PROFILE_ARGS=()
[[ $BUILD == debug ]] || PROFILE_ARGS=(--release)
# One instance of each function per simultaneous stream, as Lambda would.
if ((SHORT)); then INSTANCES=8 OWNERS=8; else INSTANCES=64 OWNERS=64; fi

need_cmd cargo java curl python3 setsid pgrep
ensure_dev_tools
VENV="$LLMCHAT_CACHE_DIR/venv-bench"
ensure_venv "$VENV" "$LLMCHAT_ROOT/scripts/requirements-bench.txt"
"$LLMCHAT_ROOT/scripts/dynamodb-local.sh" install

mkdir -p "$LLMCHAT_STATE_DIR"
RUN_DIR="$(mktemp -d "$LLMCHAT_STATE_DIR/bench.XXXXXX")"
if ((SHORT)); then OUT="${BENCH_OUT:-$RUN_DIR/report}"; else OUT="${BENCH_OUT:-$LLMCHAT_ROOT/docs/bench}"; fi

# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
    local rc=$?
    trap '' INT TERM HUP
    local_stack stop "$RUN_DIR/traced" || true
    local_stack stop "$RUN_DIR/stack" || true
    stop_pidfile "$RUN_DIR/relay.pid" "bench.py" "the timing relay" || true
    stop_pidfile "$RUN_DIR/litellm.pid" "litellm" "LiteLLM" || true
    stop_pidfile "$RUN_DIR/ollama.pid" "scripted-ollama" "scripted Ollama" || true
    "$LLMCHAT_ROOT/scripts/dynamodb-local.sh" stop "$RUN_DIR/dynamodb.pid" || true
    if ((rc == 0)) && ((!SHORT)); then
        rm -rf "$RUN_DIR"
    elif ((rc == 0)); then
        # The short form's report stays (it is inside the run's directory); the rest goes.
        find "$RUN_DIR" -mindepth 1 -maxdepth 1 ! -name report -exec rm -rf {} +
    else
        log "bench FAILED; logs kept in ${RUN_DIR#"$LLMCHAT_ROOT"/}"
    fi
    exit "$rc"
}
on_exit_run cleanup
use_local_aws_env

# The same target directory as the local stack's, so one release build serves both.
export CARGO_TARGET_DIR="$LLMCHAT_ROOT/target/local-stack"
log "building the scripted Ollama ($BUILD)"
cargo build -q "${PROFILE_ARGS[@]}" -p llmchat-tests --bin scripted-ollama
: >"$RUN_DIR/ollama.out"
setsid "$CARGO_TARGET_DIR/$BUILD/scripted-ollama" </dev/null >"$RUN_DIR/ollama.out" 2>"$RUN_DIR/ollama.log" &
printf '%s\n' "$!" >"$RUN_DIR/ollama.pid"
LLM_URL=''
for _ in $(seq 100); do
    LLM_URL="$(head -n 1 "$RUN_DIR/ollama.out")"
    [[ -z $LLM_URL ]] || break
    sleep 0.1
done
[[ $LLM_URL == http://* ]] || die "scripted-ollama did not start"

DDB_PORT="$(start_dynamodb_on_free_port "$RUN_DIR/dynamodb.pid" "$RUN_DIR/dynamodb.log")"
DDB="http://127.0.0.1:$DDB_PORT"

# Quotas lifted: every stream is measured, none refused.
QUOTAS=(--env LLMCHAT_QUOTA_ACTIVE_REPLIES=1000 --env LLMCHAT_QUOTA_REQUESTS_PER_MINUTE=1000000
    --env LLMCHAT_QUOTA_TOKENS_PER_DAY=1000000000000 --env LLMCHAT_QUOTA_TOKENS_PER_MONTH=1000000000000)
log "starting the measured stack: $BUILD build, $INSTANCES instances of each function"
local_stack start "$RUN_DIR/stack" --owner bench0 --llm "$LLM_URL" --dynamodb "$DDB" "${PROFILE_ARGS[@]}" \
    --concurrency "$INSTANCES" "${QUOTAS[@]}"
load_stack_env "$RUN_DIR/stack"
BASE=$STACK_BASE TABLE=$STACK_TABLE
BIN_DIR="$CARGO_TARGET_DIR/$BUILD"
# One owner per simultaneous stream: sends of one owner share its quota items.
KEYS=("$STACK_KEY")
for ((i = 1; i < OWNERS; i++)); do
    KEYS+=("$(LLMCHAT_TABLE_NAME=$TABLE DYNAMODB_ENDPOINT=$DDB "$BIN_DIR/llmchat-admin" issue-key --owner "bench$i" | tail -n 1)")
done

log "starting the timing relay and the traced stack (the breakdown)"
setsid "$VENV/bin/python" "$LLMCHAT_ROOT/scripts/bench.py" relay --ddb-upstream "$DDB" --llm-upstream "$LLM_URL" \
    --events "$RUN_DIR/relay.jsonl" --ports "$RUN_DIR/relay.ports" </dev/null >"$RUN_DIR/relay.log" 2>&1 &
printf '%s\n' "$!" >"$RUN_DIR/relay.pid"
for _ in $(seq 100); do [[ -s $RUN_DIR/relay.ports ]] && break; sleep 0.1; done
[[ -s $RUN_DIR/relay.ports ]] || { print_log_tail "$RUN_DIR/relay.log"; die "the timing relay did not start"; }
read -r RELAY_DDB RELAY_LLM < <(python3 -c 'import json, sys; p = json.load(open(sys.argv[1])); print(p["ddb"], p["llm"])' "$RUN_DIR/relay.ports")
local_stack start "$RUN_DIR/traced" --owner traced --llm "http://127.0.0.1:$RELAY_LLM" --dynamodb "http://127.0.0.1:$RELAY_DDB" \
    "${PROFILE_ARGS[@]}" --concurrency 1 "${QUOTAS[@]}"
load_stack_env "$RUN_DIR/traced"
TRACED_BASE=$STACK_BASE TRACED_KEY=$STACK_KEY

LITELLM_URL='' LITELLM_VERSION=''
if ((LITELLM)); then
    LITELLM_PORT="$(free_port)"
    LITELLM_URL="http://127.0.0.1:$LITELLM_PORT"
    LITELLM_VERSION="$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("litellm"))')"
    cat >"$RUN_DIR/litellm.yaml" <<EOF
model_list:
  - model_name: smollm2:135m
    litellm_params:
      model: ollama_chat/smollm2:135m
      api_base: $LLM_URL
general_settings:
  master_key: sk-bench
EOF
    log "starting LiteLLM $LITELLM_VERSION's proxy on $LITELLM_URL"
    # Its bundled price list, not a download; no telemetry.
    LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False setsid "$VENV/bin/litellm" --config "$RUN_DIR/litellm.yaml" \
        --host 127.0.0.1 --port "$LITELLM_PORT" </dev/null >"$RUN_DIR/litellm.log" 2>&1 &
    printf '%s\n' "$!" >"$RUN_DIR/litellm.pid"
    for i in $(seq 240); do
        [[ "$(http_code GET "$LITELLM_URL/health/liveliness")" == 200 ]] && break
        pid_gone "$(<"$RUN_DIR/litellm.pid")" && { print_log_tail "$RUN_DIR/litellm.log"; die "LiteLLM's proxy exited"; }
        ((i < 240)) || { print_log_tail "$RUN_DIR/litellm.log"; die "LiteLLM's proxy did not answer within 120 s"; }
        sleep 0.5
    done
fi

mapfile -t FUNCTIONS < <(function_packages)
python3 - "$RUN_DIR/bench.json" <<PY
import json, sys
json.dump({
    "short": bool($SHORT), "out": "$OUT", "base": "$BASE", "keys": "${KEYS[*]}".split(),
    "llm": "$LLM_URL", "dynamodb": "$DDB", "table": "$TABLE",
    "litellm": "$LITELLM_URL", "litellm_key": "sk-bench", "litellm_version": "$LITELLM_VERSION",
    "traced_base": "$TRACED_BASE", "traced_key": "$TRACED_KEY", "relay_events": "$RUN_DIR/relay.jsonl",
    "relay_ddb": "http://127.0.0.1:$RELAY_DDB", "runtime_pid": int(open("$RUN_DIR/stack/runtime.pid").read()),
    "bin_dir": "$BIN_DIR", "functions": "${FUNCTIONS[*]}".split(),
    "commit": "$(git describe --always --dirty 2>/dev/null || echo unknown)", "build": "$BUILD", "started": $STARTED, "load_before": "$LOAD_BEFORE",
}, open(sys.argv[1], "w"))
PY
"$VENV/bin/python" "$LLMCHAT_ROOT/scripts/bench.py" run --config "$RUN_DIR/bench.json"
