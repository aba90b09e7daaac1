#!/usr/bin/env bash
# The fault-injection soak (`make soak`): many concurrent clients against the
# whole local stack (the local runtime, DynamoDB Local keeping its data in a
# directory so that it can be restarted mid-run, the scripted Ollama injecting
# cut connections, error lines, hangs past the idle timeout and slow tokens),
# through both send routes, with dropped connections, retries with the same
# client_message_id, rejoins and cancels; then an audit of every session
# (scripts/soak.py). Fails on any lost or duplicated message or server error.
#
# Env (optional):
#   SOAK_SENDS=1000    sends in all (10000 for the long run)
#   SOAK_CLIENTS=12    concurrent clients
#   SOAK_SEED          the clients' random seed (printed; the same seed, the same choices)
#   SOAK_RESTART=1     restart DynamoDB Local halfway (0: never)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LLMCHAT_ROOT"

SENDS="${SOAK_SENDS:-1000}"
CLIENTS="${SOAK_CLIENTS:-12}"
RESTART="${SOAK_RESTART:-1}"
for n in SENDS CLIENTS; do
    [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "SOAK_$n='${!n}' is not a positive number"
done
[[ $RESTART == [01] ]] || die "SOAK_RESTART='$RESTART' is not 0 or 1"
[[ -z ${SOAK_SEED:-} || $SOAK_SEED =~ ^[0-9]+$ ]] || die "SOAK_SEED='$SOAK_SEED' is not a number"

need_cmd cargo java mvn curl python3 setsid pgrep
ensure_dev_tools
"$LLMCHAT_ROOT/scripts/dynamodb-local.sh" install

mkdir -p "$LLMCHAT_STATE_DIR"
RUN_DIR="$(mktemp -d "$LLMCHAT_STATE_DIR/soak.XXXXXX")"
DDB_PID="$RUN_DIR/soak-dynamodb.pid"
DDB_LOG="$RUN_DIR/soak-dynamodb.log"

# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
    local rc=$?
    trap '' INT TERM HUP
    stop_scripted_stack "$RUN_DIR"
    "$LLMCHAT_ROOT/scripts/dynamodb-local.sh" stop "$DDB_PID" || true
    if ((rc == 0)); then
        rm -rf "$RUN_DIR"
    else
        if grep -qaE ' ERROR |panicked|\[local\]' "$RUN_DIR/runtime.log" 2>/dev/null; then
            log "---- errors in $RUN_DIR/runtime.log ----"
            grep -aE ' ERROR |panicked|\[local\]' "$RUN_DIR/runtime.log" | tail -n 20 >&2
        fi
        log "soak FAILED; logs kept in ${RUN_DIR#"$LLMCHAT_ROOT"/}"
    fi
    exit "$rc"
}
on_exit_run cleanup

# The data in a directory, not in memory: a restart finds it again.
export DYNAMODB_DATA_DIR="$RUN_DIR/dynamodb-data"
DDB_PORT="$(start_dynamodb_on_free_port "$DDB_PID" "$DDB_LOG")"
export LLMCHAT_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$DDB_PORT"

# A hang (4 s of silence, tests/src/bin/scripted-ollama.rs) outlasts the idle
# timeout; the clients share one owner, whose quotas are lifted.
start_scripted_stack "$RUN_DIR" soak --concurrency 4 \
    --env LLMCHAT_LLM_IDLE_TIMEOUT_MS=1500 \
    --env LLMCHAT_QUOTA_ACTIVE_REPLIES=1000 \
    --env LLMCHAT_QUOTA_TOKENS_PER_DAY=1000000000 \
    --env LLMCHAT_QUOTA_TOKENS_PER_MONTH=1000000000
load_stack_env "$RUN_DIR"

restart_cmd="$(printf '%q ' "$LLMCHAT_ROOT/scripts/dynamodb-local.sh" stop "$DDB_PID") && $(printf '%q ' "$LLMCHAT_ROOT/scripts/dynamodb-local.sh" start "$DDB_PORT" "$DDB_PID" "$DDB_LOG")"
args=(--base "$STACK_BASE" --key "$STACK_KEY" --sends "$SENDS" --clients "$CLIENTS")
[[ -z ${SOAK_SEED:-} ]] || args+=(--seed "$SOAK_SEED")
((RESTART == 0)) || args+=(--restart-dynamodb "$restart_cmd")
log "soak: $SENDS sends, $CLIENTS clients, stack at $STACK_BASE"
python3 "$LLMCHAT_ROOT/scripts/soak.py" "${args[@]}"
