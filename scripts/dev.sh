#!/usr/bin/env bash
# Local dev stack (`make dev`) and the admin commands that act on it
# (`make api-key`, `make revoke-key`).
#
#   dev.sh [up]               install what is missing, start DynamoDB Local and
#                             cargo lambda watch, issue a dev key, stay in the
#                             foreground; Ctrl-C stops everything it started
#   dev.sh api-key OWNER      issue a key on the running stack (key = last stdout line)
#   dev.sh revoke-key KEY_ID  revoke a key (a whole lck_<id>_<secret> key works too)
#
# Env (optional): DYNAMODB_PORT=8000 LLMCHAT_PORT=9000 LLMCHAT_TABLE_NAME=llmchat
#   LLMCHAT_WATCH_CONCURRENCY=4 LLMCHAT_BIND_ADDRESS=127.0.0.1
#   OLLAMA_URL (default: Ollama's default address, or the project's own Ollama)
#   LLMCHAT_DEFAULT_MODEL (default: DEFAULT_MODEL in scripts/lib.sh)
#   LLMCHAT_LOG_FORMAT=pretty LLMCHAT_CORS_ORIGINS=* LLMCHAT_READY_TIMEOUT=1200
#   RUST_LOG (passed to the functions when set)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LLMCHAT_ROOT"

DDB="$LLMCHAT_ROOT/scripts/dynamodb-local.sh"
DDB_PIDFILE="$LLMCHAT_STATE_DIR/dynamodb-local.pid"
DDB_LOG="$LLMCHAT_STATE_DIR/dynamodb-local.log"
WATCH_PIDFILE="$LLMCHAT_STATE_DIR/watch.pid"
WATCH_LOG="$LLMCHAT_STATE_DIR/watch.log"
WATCH_ENV="$LLMCHAT_STATE_DIR/watch.env"
WATCH_PATTERN="lambda watch"
OLLAMA_PIDFILE="$LLMCHAT_STATE_DIR/ollama.pid"

usage() {
    echo "usage:" >&2
    sed -n '5,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

# -q keeps cargo's own status lines out; build errors still reach stderr, and
# stdout is exactly what the admin binary prints.
admin() { cargo run -q -p llmchat-admin -- "$@"; }

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

# Runs on every exit of `dev.sh up` (Ctrl-C, SIGTERM, errors, the watcher dying).
cleanup() {
    local status=$?
    # A second Ctrl-C must not cut the cleanup short and leave orphans.
    trap '' INT TERM HUP
    if [[ -n ${TAIL_PID:-} ]]; then kill "$TAIL_PID" 2>/dev/null || true; fi
    stop_pidfile "$WATCH_PIDFILE" "$WATCH_PATTERN" "cargo lambda watch"
    "$DDB" stop "$DDB_PIDFILE" || true
    "$LLMCHAT_ROOT/scripts/ollama.sh" stop "$OLLAMA_PIDFILE" || true
    log "dev stack stopped"
    exit "$status"
}

cmd_up() {
    (($# == 0)) || usage
    load_dev_env
    local concurrency="${LLMCHAT_WATCH_CONCURRENCY:-4}"
    local bind="${LLMCHAT_BIND_ADDRESS:-127.0.0.1}"
    local timeout="${LLMCHAT_READY_TIMEOUT:-1200}"
    local base="http://127.0.0.1:$LLMCHAT_PORT"
    local key code started deadline next_note status
    export LLMCHAT_DEFAULT_MODEL="${LLMCHAT_DEFAULT_MODEL:-$DEFAULT_MODEL}"
    export LLMCHAT_LOG_FORMAT="${LLMCHAT_LOG_FORMAT:-pretty}"
    export LLMCHAT_CORS_ORIGINS="${LLMCHAT_CORS_ORIGINS:-*}"
    need_cmd cargo java mvn curl python3 setsid flock pgrep

    mkdir -p "$LLMCHAT_STATE_DIR"
    # One dev stack per checkout. Holding the lock also proves that pid files
    # found now belong to a run that died without cleaning up. fd 9 is closed
    # for long-lived children so they cannot keep holding it.
    exec 9>"$LLMCHAT_STATE_DIR/dev.lock"
    flock -n 9 || die "make dev is already running in this checkout (lock: $LLMCHAT_STATE_DIR/dev.lock)"
    stop_pidfile "$WATCH_PIDFILE" "$WATCH_PATTERN" "leftover cargo lambda watch"
    "$DDB" stop "$DDB_PIDFILE"
    "$LLMCHAT_ROOT/scripts/ollama.sh" stop "$OLLAMA_PIDFILE"

    # Fail before starting anything, with a hint at the knob to turn.
    if port_in_use "$DYNAMODB_PORT"; then
        die "port $DYNAMODB_PORT is in use; choose another with DYNAMODB_PORT=..."
    fi
    if port_in_use "$LLMCHAT_PORT"; then
        die "port $LLMCHAT_PORT is in use; choose another with LLMCHAT_PORT=..."
    fi

    ensure_dev_tools
    "$DDB" install

    on_exit_run cleanup

    # A user's own Ollama (OLLAMA_URL, or anything on the default port) is used
    # as it is; only when neither is there does the stack bring up its own.
    use_ollama "$LLMCHAT_STATE_DIR" "$OLLAMA_DEFAULT_PORT" 9>&-
    if [[ "$(http_code GET "$OLLAMA_URL/api/tags" 3)" == 000 ]]; then
        log "warning: Ollama does not answer at $OLLAMA_URL; chat replies will fail until it runs"
        log "         (ollama serve; ollama pull $LLMCHAT_DEFAULT_MODEL)"
    fi

    "$DDB" start "$DYNAMODB_PORT" "$DDB_PIDFILE" "$DDB_LOG" 9>&-

    log "building llmchat-admin"
    cargo build -p llmchat-admin
    log "creating table $LLMCHAT_TABLE_NAME"
    admin create-table

    # An env file rather than --env-var: --env-var splits values on commas,
    # which would break a list of CORS origins.
    {
        printf '%s=%s\n' \
            LLMCHAT_TABLE_NAME "$LLMCHAT_TABLE_NAME" \
            DYNAMODB_ENDPOINT "$DYNAMODB_ENDPOINT" \
            AWS_REGION "$AWS_REGION" \
            AWS_ACCESS_KEY_ID "$AWS_ACCESS_KEY_ID" \
            AWS_SECRET_ACCESS_KEY "$AWS_SECRET_ACCESS_KEY" \
            OLLAMA_URL "$OLLAMA_URL" \
            LLMCHAT_DEFAULT_MODEL "$LLMCHAT_DEFAULT_MODEL" \
            LLMCHAT_LOG_FORMAT "$LLMCHAT_LOG_FORMAT" \
            LLMCHAT_CORS_ORIGINS "$LLMCHAT_CORS_ORIGINS"
        if [[ -n ${RUST_LOG:-} ]]; then printf 'RUST_LOG=%s\n' "$RUST_LOG"; fi
    } >"$WATCH_ENV"

    log "starting cargo lambda watch on $base (log: ${WATCH_LOG#"$LLMCHAT_ROOT"/})"
    # setsid: its own session, so Ctrl-C reaches it only through cleanup, which
    # stops the watcher, its cargo builds and function instances together.
    # --disable-cors: the emulator's own CORS layer would replace the headers
    # the functions set from LLMCHAT_CORS_ORIGINS, hiding their behaviour.
    # Bound to loopback by default: the stack runs with fake credentials.
    setsid cargo lambda watch -A "$bind" -P "$LLMCHAT_PORT" --concurrency "$concurrency" \
        --disable-cors --env-file "$WATCH_ENV" </dev/null >"$WATCH_LOG" 2>&1 9>&- &
    local watch_pid=$!
    printf '%s\n' "$watch_pid" >"$WATCH_PIDFILE"
    # Follow the log from its start: build progress and errors show up while we
    # wait, requests afterwards. -F survives the file being recreated.
    tail -n +1 -F "$WATCH_LOG" 9>&- 2>/dev/null &
    TAIL_PID=$!

    log "waiting for $base/health (the first build can take several minutes)"
    started=$SECONDS
    deadline=$((started + timeout))
    next_note=$((started + 30))
    # Ready once the functions answer and DynamoDB is reachable; /health is 503
    # while Ollama is down, which the banner reports instead of waiting on it.
    while :; do
        health="$(curl -s --max-time 30 -w '\n%{http_code}' "$base/health" 2>/dev/null || true)"
        code="${health##*$'\n'}"
        [[ $health == *'"dynamodb":{"status":"ok"'* ]] && break
        if pid_gone "$watch_pid"; then
            print_log_tail "$WATCH_LOG"
            die "cargo lambda watch exited before the stack became ready"
        fi
        if ((SECONDS >= deadline)); then
            print_log_tail "$WATCH_LOG"
            die "$base/health did not report DynamoDB ok within ${timeout}s (last status: $code)"
        fi
        if ((SECONDS >= next_note)); then
            log "still waiting for $base/health ($((SECONDS - started))s so far, last status: $code)"
            next_note=$((SECONDS + 30))
        fi
        sleep 2
    done

    llm_note="answering"
    [[ $health == *'"llm":{"status":"ok"'* ]] ||
        llm_note="NOT answering: chat routes give 503 llm_unavailable until it does"
    key="$(admin issue-key --owner dev | tail -n 1)"
    [[ -n $key ]] || die "llmchat-admin issue-key printed no key"
    # Handy for scripts and manual curl calls; .llmchat/ is gitignored.
    printf '%s\n' "$key" >"$LLMCHAT_STATE_DIR/dev-api-key"

    cat <<EOF

================================================================================
  LlmChat dev stack is up
    Base URL:  $base
    API key:   $key   (owner "dev"; also in .llmchat/dev-api-key)
    DynamoDB:  $DYNAMODB_ENDPOINT (in memory, table $LLMCHAT_TABLE_NAME)
    Ollama:    $OLLAMA_URL (model $LLMCHAT_DEFAULT_MODEL) $llm_note
    Logs:      .llmchat/watch.log (followed below), .llmchat/dynamodb-local.log
  More keys: make api-key OWNER=name    Stop: Ctrl-C
================================================================================

EOF

    status=0
    wait "$watch_pid" || status=$?
    log "cargo lambda watch exited (status $status)"
    exit "$status"
}

sub="${1:-up}"
(($# == 0)) || shift
case "$sub" in
    up) cmd_up "$@" ;;
    api-key) cmd_api_key "$@" ;;
    revoke-key) cmd_revoke_key "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
