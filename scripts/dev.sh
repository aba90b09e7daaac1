#!/usr/bin/env bash
# Local dev stack (`make dev`) and the admin commands that act on it
# (`make api-key`, `make revoke-key`).
#
#   dev.sh [up]               install what is missing, start DynamoDB Local and
#                             the local runtime, issue a dev key, stay in the
#                             foreground; Ctrl-C stops everything it started
#   dev.sh api-key OWNER      issue a key on the running stack (key = last stdout line)
#   dev.sh revoke-key KEY_ID  revoke a key (a whole lck_<id>_<secret> key works too)
#   dev.sh quota OWNER        set the owner's own quotas from ACTIVE, RPM, TOKENS_DAY,
#                             TOKENS_MONTH (those given), or CLEAR=1; prints them
#
# The stack is scripts/local-stack.sh's, kept in .llmchat/, of its --dev kind:
# a change to the code rebuilds and restarts the functions.
#
# Env (optional): DYNAMODB_PORT=8000 LLMCHAT_PORT=9000 LLMCHAT_TABLE_NAME=llmchat
#   LLMCHAT_INSTANCES=4 (instances per function) LLMCHAT_BIND_ADDRESS=127.0.0.1
#   OLLAMA_URL (default: Ollama's default address, or the project's own Ollama)
#   LLAMACPP_URL (default: the project's own llama.cpp server), LLAMACPP_PORT,
#   LLMCHAT_LLAMACPP=0 (no second backend)
#   LLMCHAT_DEFAULT_MODEL (default: DEFAULT_MODEL in scripts/lib.sh)
#   LLMCHAT_LOG_FORMAT=pretty LLMCHAT_CORS_ORIGINS=* LLMCHAT_READY_TIMEOUT=1200
#   RUST_LOG (passed to the functions when set)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LLMCHAT_ROOT"

OLLAMA="$LLMCHAT_ROOT/scripts/ollama.sh"
OLLAMA_PIDFILE="$LLMCHAT_STATE_DIR/ollama.pid"
LLAMACPP="$LLMCHAT_ROOT/scripts/llamacpp.sh"
LLAMACPP_PIDFILE="$LLMCHAT_STATE_DIR/llamacpp.pid"

usage() {
    echo "usage:" >&2
    sed -n '5,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

# -q keeps cargo's own status lines out; build errors still reach stderr, and
# stdout is exactly what the admin binary prints. --bin, as the local stack
# builds it: the same features, so the dev stack's build is reused.
admin() { cargo run -q --bin llmchat-admin -- "$@"; }

require_dynamodb() {
    [[ "$(http_code POST "$DYNAMODB_ENDPOINT/")" != 000 ]] ||
        die "nothing answers at $DYNAMODB_ENDPOINT; start the dev stack first with: make dev (same DYNAMODB_PORT)"
}

cmd_api_key() {
    [[ $# -eq 1 && -n $1 ]] || die "usage: make api-key OWNER=name"
    load_dev_env
    need_cmd cargo curl
    require_dynamodb
    admin issue-key --owner "$1"
}

cmd_revoke_key() {
    [[ $# -eq 1 && -n $1 ]] || die "usage: make revoke-key KEY_ID=id"
    local id=$1
    # A whole key is accepted too: the id is the part between the underscores.
    if [[ $id =~ ^lck_([^_]+)_ ]]; then id=${BASH_REMATCH[1]}; fi
    load_dev_env
    need_cmd cargo curl
    require_dynamodb
    admin revoke-key --key-id "$id"
}

cmd_quota() {
    [[ $# -eq 1 && -n $1 ]] || die "usage: make quota OWNER=name [ACTIVE=n] [RPM=n] [TOKENS_DAY=n] [TOKENS_MONTH=n] [CLEAR=1]"
    load_dev_env
    need_cmd cargo curl
    require_dynamodb
    local -a args=(quota --owner "$1")
    [[ -z ${ACTIVE:-} ]] || args+=(--active-replies "$ACTIVE")
    [[ -z ${RPM:-} ]] || args+=(--requests-per-minute "$RPM")
    [[ -z ${TOKENS_DAY:-} ]] || args+=(--tokens-per-day "$TOKENS_DAY")
    [[ -z ${TOKENS_MONTH:-} ]] || args+=(--tokens-per-month "$TOKENS_MONTH")
    [[ ${CLEAR:-0} == 0 ]] || args+=(--clear)
    admin "${args[@]}"
}

# Runs on every exit of `dev.sh up` (Ctrl-C, SIGTERM, errors, the local runtime ending).
cleanup() {
    local status=$?
    # A second Ctrl-C must not cut the cleanup short and leave orphans.
    trap '' INT TERM HUP
    if [[ -n ${TAIL_PID:-} ]]; then kill "$TAIL_PID" 2>/dev/null || true; fi
    local_stack stop "$LLMCHAT_STATE_DIR" || true
    "$OLLAMA" stop "$OLLAMA_PIDFILE" || true
    "$LLAMACPP" stop "$LLAMACPP_PIDFILE" || true
    log "dev stack stopped"
    exit "$status"
}

cmd_up() {
    (($# == 0)) || usage
    load_dev_env
    export LLMCHAT_DEFAULT_MODEL="${LLMCHAT_DEFAULT_MODEL:-$DEFAULT_MODEL}"
    local -a stack_args=(
        --dev --owner dev
        --dynamodb-port "$DYNAMODB_PORT" --table "$LLMCHAT_TABLE_NAME" --port "$LLMCHAT_PORT"
        --bind "${LLMCHAT_BIND_ADDRESS:-127.0.0.1}" --concurrency "${LLMCHAT_INSTANCES:-4}"
        --env "LLMCHAT_LOG_FORMAT=${LLMCHAT_LOG_FORMAT:-pretty}"
        --env "LLMCHAT_CORS_ORIGINS=${LLMCHAT_CORS_ORIGINS:-*}"
    )
    if [[ -n ${RUST_LOG:-} ]]; then stack_args+=(--env "RUST_LOG=$RUST_LOG"); fi
    need_cmd cargo java mvn curl python3 setsid flock pgrep

    mkdir -p "$LLMCHAT_STATE_DIR"
    # One dev stack per checkout. Holding the lock also proves that pid files
    # found now belong to a run that died without cleaning up. fd 9 is closed
    # for long-lived children so they cannot keep holding it.
    exec 9>"$LLMCHAT_STATE_DIR/dev.lock"
    flock -n 9 || die "make dev is already running in this checkout (lock: $LLMCHAT_STATE_DIR/dev.lock)"
    local_stack stop "$LLMCHAT_STATE_DIR"
    "$OLLAMA" stop "$OLLAMA_PIDFILE"
    "$LLAMACPP" stop "$LLAMACPP_PIDFILE"

    # Fail before starting anything, with a hint at the knob to turn.
    if port_in_use "$DYNAMODB_PORT"; then
        die "port $DYNAMODB_PORT is in use; choose another with DYNAMODB_PORT=..."
    fi
    if port_in_use "$LLMCHAT_PORT"; then
        die "port $LLMCHAT_PORT is in use; choose another with LLMCHAT_PORT=..."
    fi

    ensure_dev_tools
    "$LLMCHAT_ROOT/scripts/dynamodb-local.sh" install

    on_exit_run cleanup

    # A user's own Ollama (OLLAMA_URL, or anything on the default port) is used
    # as it is; only when neither is there does the stack bring up its own.
    use_ollama "$LLMCHAT_STATE_DIR" "$OLLAMA_DEFAULT_PORT" 9>&-
    if [[ "$(http_code GET "$OLLAMA_URL/api/tags" 3)" == 000 ]]; then
        log "warning: Ollama does not answer at $OLLAMA_URL; chat replies will fail until it runs"
        log "         (ollama serve; ollama pull $LLMCHAT_DEFAULT_MODEL)"
    fi
    # The second backend: llama.cpp's OpenAI-compatible server, models as llamacpp/<name>.
    use_llamacpp "$LLMCHAT_STATE_DIR" "${LLAMACPP_PORT:-$(free_port)}" 9>&-
    stack_args+=(--env "LLMCHAT_BACKENDS=$(local_backends)")

    # Follow the local runtime's log from its start: build progress and errors show up
    # while the stack starts, requests afterwards. -F survives the file being
    # recreated.
    : >"$LLMCHAT_STATE_DIR/runtime.log"
    tail -n +1 -F "$LLMCHAT_STATE_DIR/runtime.log" 9>&- 2>/dev/null &
    TAIL_PID=$!

    log "starting the dev stack (the first build can take several minutes)"
    local_stack start "$LLMCHAT_STATE_DIR" --llm "$OLLAMA_URL" "${stack_args[@]}" 9>&-
    load_stack_env "$LLMCHAT_STATE_DIR"
    local llm_note="all answering"
    [[ $STACK_LLM == ok ]] || llm_note="NOT all answering (GET /health with the key names which): their routes give 503 llm_unavailable"
    # Handy for scripts and manual curl calls; .llmchat/ is gitignored.
    printf '%s\n' "$STACK_KEY" >"$LLMCHAT_STATE_DIR/dev-api-key"

    cat <<EOF

================================================================================
  LlmChat dev stack is up
    Base URL:  $STACK_BASE
    Chat page: $STACK_BASE/chat   (open it, click "API key", paste the key below)
    API key:   $STACK_KEY   (owner "dev"; also in .llmchat/dev-api-key)
    DynamoDB:  $STACK_DYNAMODB (in memory, table $STACK_TABLE)
    Backends:  ollama   $OLLAMA_URL (default; model $LLMCHAT_DEFAULT_MODEL)
               llamacpp ${LLAMACPP_URL:-(off: LLMCHAT_LLAMACPP=0)} (model llamacpp/$LLMCHAT_DEFAULT_MODEL)
               $llm_note
    Logs:      .llmchat/runtime.log (followed below), .llmchat/dynamodb-local.log
  More keys: make api-key OWNER=name    Stop: Ctrl-C
================================================================================

EOF

    # In the foreground while the local runtime runs; Ctrl-C ends both through cleanup.
    local watch_pid
    watch_pid="$(<"$LLMCHAT_STATE_DIR/runtime.pid")"
    while pid_runs "$watch_pid" "llmchat-local"; do sleep 1; done
    log "the local runtime exited"
    exit 1
}

sub="${1:-up}"
(($# == 0)) || shift
case "$sub" in
    up) cmd_up "$@" ;;
    api-key) cmd_api_key "$@" ;;
    revoke-key) cmd_revoke_key "$@" ;;
    quota) cmd_quota "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
