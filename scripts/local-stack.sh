#!/usr/bin/env bash
# The local stack, and the one way to start it: `make dev`, the contract test,
# `make e2e-real` and the end-to-end test (tests/e2e) all start it here.
# DynamoDB Local (or a given DynamoDB), a table with an API key, and every
# function under the local runtime (llmchat-local) with the router in Cargo.toml, on the
# same paths as deployed.
#
#   local-stack.sh start DIR --owner NAME --llm URL [OPTION...]
#                            start it in the background; returns once every route answers
#   local-stack.sh env DIR   print how to reach it, as NAME=VALUE lines: STACK_BASE,
#                            STACK_KEY, STACK_TABLE, STACK_DYNAMODB, STACK_LLM (ok or down)
#   local-stack.sh stop DIR  stop what start started (nothing running is fine)
#
# Options of start:
#   --owner NAME       owner of the API key it issues (required)
#   --llm URL          the Ollama the functions call, their OLLAMA_URL (required)
#   --dynamodb URL     create the table in this DynamoDB (default: the one in
#                      LLMCHAT_TEST_DYNAMODB_ENDPOINT, as `make test` sets it)
#   --dynamodb-port N  start DynamoDB Local of the stack's own on port N; without it,
#                      one is started on a free port when no DynamoDB is given
#   --table NAME       the table (default: a new one, private to this stack)
#   --port N           port of the local runtime (default: a free port)
#   --bind ADDR        address it listens on (default 127.0.0.1)
#   --concurrency N    instances per function (default 2)
#   --env NAME=VALUE   a setting for the functions, over the stack's own (repeatable)
#   --dev              make dev's stack: a change to the code rebuilds and restarts the
#                      functions, which are built where cargo builds by default, and
#                      log in colour. Otherwise changes are ignored and the build goes
#                      to target/local-stack, clear of the build lock of a `cargo test`.
#   --release          release builds (the deployed profile) instead of debug ones:
#                      what `make bench` measures
#
# DIR holds the stack's pid files, logs (runtime.log, dynamodb-local.log), the
# functions' settings (functions.env) and stack.env (what `env` prints); one stack
# per DIR. Env: LLMCHAT_READY_TIMEOUT (seconds for the started watch to answer,
# default 1200), LLMCHAT_DEFAULT_MODEL (default: DEFAULT_MODEL in scripts/lib.sh).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DDB="$LLMCHAT_ROOT/scripts/dynamodb-local.sh"
WATCH_PATTERN="llmchat-local"

usage() {
    echo "usage:" >&2
    sed -n '8,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

# Writes the functions' env file: NAME=VALUE arguments, one line per name, the
# last value given for a name winning. An env file rather than --env-var, which
# splits values on commas (a list of CORS origins, of backends). Values are
# single-quoted, so the file's parser takes them literally (a backend list
# holds `=` and `:`); a value with a single quote of its own is refused.
write_env_file() { # FILE NAME=VALUE...
    local file=$1 arg
    shift
    for arg in "$@"; do
        [[ ${arg#*=} != *"'"* ]] || die "a setting for the functions cannot hold a single quote: ${arg%%=*}"
    done
    printf '%s\n' "$@" | awk '{
        at = index($0, "=")
        name = substr($0, 1, at - 1)
        if (!(name in value)) order[n++] = name
        value[name] = name "='"'"'" substr($0, at + 1) "'"'"'"
    } END { for (i = 0; i < n; i++) print value[order[i]] }' >"$file"
}

# Set once start has begun, for the EXIT trap: a start that fails or is
# interrupted stops whatever it had started.
START_DIR=
# shellcheck disable=SC2317 # invoked through the EXIT trap
abort_start() {
    local rc=$?
    trap '' INT TERM HUP
    if ((rc != 0)) && [[ -n $START_DIR ]]; then
        log "the local stack did not start; stopping what it started"
        cmd_stop "$START_DIR"
    fi
    exit "$rc"
}

cmd_start() {
    local dir=$1
    shift
    local owner='' llm='' dynamodb="${LLMCHAT_TEST_DYNAMODB_ENDPOINT:-}" dynamodb_given=0 ddb_port='' table=''
    # Bound to loopback by default: the stack runs with fake credentials.
    local port='' bind=127.0.0.1 concurrency=2 dev=0 profile=debug
    local -a extra=()
    while (($# > 0)); do
        if [[ $1 == --dev || $1 == --release ]]; then
            [[ $1 == --dev ]] && dev=1 || profile=release
            shift
            continue
        fi
        (($# >= 2)) || die "start: $1 is not an option, or its value is missing"
        case $1 in
            --owner) owner=$2 ;;
            --llm) llm=$2 ;;
            --dynamodb) dynamodb=$2 dynamodb_given=1 ;;
            --dynamodb-port) ddb_port=$2 ;;
            --table) table=$2 ;;
            --port) port=$2 ;;
            --bind) bind=$2 ;;
            --concurrency) concurrency=$2 ;;
            --env)
                [[ $2 =~ ^[A-Za-z_][A-Za-z0-9_]*= && $2 != *$'\n'* ]] || die "--env takes NAME=VALUE on one line, not '$2'"
                extra+=("$2")
                ;;
            *) die "start: unknown option $1" ;;
        esac
        shift 2
    done
    [[ -n $owner && -n $llm ]] || die "start: --owner and --llm are required"
    [[ -z $ddb_port ]] || valid_port "$ddb_port" || die "--dynamodb-port '$ddb_port' is not a port number"
    [[ -z $port ]] || valid_port "$port" || die "--port '$port' is not a port number"
    [[ $concurrency =~ ^[1-9][0-9]*$ ]] || die "--concurrency '$concurrency' is not a positive number"
    ((!dynamodb_given)) || [[ -z $ddb_port ]] || die "--dynamodb and --dynamodb-port exclude each other"
    # Its own DynamoDB Local when asked for one, or when none is given.
    [[ -z $ddb_port ]] || dynamodb=''
    local timeout="${LLMCHAT_READY_TIMEOUT:-1200}"
    [[ $timeout =~ ^[0-9]+$ ]] || die "LLMCHAT_READY_TIMEOUT='$timeout' is not a number"
    if [[ -f $dir/runtime.pid ]] && pid_runs "$(<"$dir/runtime.pid")" "$WATCH_PATTERN"; then
        die "a local stack already runs in $dir; stop it with: scripts/local-stack.sh stop $dir"
    fi
    if [[ -n $port ]] && port_in_use "$port"; then die "port $port is in use"; fi

    need_cmd cargo curl python3 setsid pgrep
    ensure_dev_tools
    mkdir -p "$dir"
    rm -f "$dir/stack.env"
    START_DIR=$dir
    on_exit_run abort_start
    use_local_aws_env

    if [[ -z $dynamodb ]]; then
        if [[ -n $ddb_port ]]; then
            "$DDB" start "$ddb_port" "$dir/dynamodb-local.pid" "$dir/dynamodb-local.log"
        else
            ddb_port="$(start_dynamodb_on_free_port "$dir/dynamodb-local.pid" "$dir/dynamodb-local.log")"
        fi
        dynamodb="http://127.0.0.1:$ddb_port"
    fi
    export DYNAMODB_ENDPOINT="$dynamodb"
    # By default a table of its own: a shared DynamoDB may hold other stacks' tables.
    export LLMCHAT_TABLE_NAME="${table:-llmchat-$owner-$$-$RANDOM$RANDOM}"

    # Every function, the admin tool and the local runtime, in one build
    # before anything starts: the runtime runs these binaries as they are.
    local -a functions bins=(--bin llmchat-admin --bin llmchat-local) quiet=(-q)
    [[ $profile == debug ]] || bins+=(--release)
    local f
    mapfile -t functions < <(function_packages)
    ((${#functions[@]} > 0)) || die "no function packages under functions/"
    for f in "${functions[@]}"; do bins+=(--bin "$f"); done
    # The router's names are checked by llmchat-local itself: a function it
    # routes to must be a binary built here.
    # target/local-stack is shared by every stack but make dev's: after
    # `cargo test` ran the end-to-end test, little is left to compile.
    ((dev)) || export CARGO_TARGET_DIR="$LLMCHAT_ROOT/target/local-stack"
    # Cargo's progress on a terminal; in logs, only what goes wrong.
    [[ ! -t 2 ]] || quiet=()
    log "building llmchat-admin and the functions: ${functions[*]} (the first build takes minutes)"
    cargo build "${quiet[@]}" --manifest-path "$LLMCHAT_ROOT/Cargo.toml" "${bins[@]}"
    local admin
    admin="$(cargo_target_dir)/$profile/llmchat-admin"

    log "creating table $LLMCHAT_TABLE_NAME at $DYNAMODB_ENDPOINT"
    "$admin" create-table >&2
    local key
    key="$("$admin" issue-key --owner "$owner" | tail -n 1)"
    [[ $key == lck_* ]] || die "llmchat-admin issue-key printed no key"

    local -a settings=(
        "LLMCHAT_TABLE_NAME=$LLMCHAT_TABLE_NAME"
        "DYNAMODB_ENDPOINT=$DYNAMODB_ENDPOINT"
        "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID"
        "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
        "AWS_REGION=$AWS_REGION"
        "OLLAMA_URL=$llm"
        "LLMCHAT_DEFAULT_MODEL=${LLMCHAT_DEFAULT_MODEL:-$DEFAULT_MODEL}"
        "LLMCHAT_LOG_FORMAT=pretty"
    )
    # NO_COLOR: the log is a file to read and grep; make dev shows it on a terminal.
    ((dev)) || settings+=(NO_COLOR=1)
    write_env_file "$dir/functions.env" "${settings[@]}" "${extra[@]}"

    [[ -n $port ]] || port="$(free_port)"
    local base="http://127.0.0.1:$port" bin_dir
    bin_dir="$(cargo_target_dir)/$profile"
    # Every function's instances start now, from the binaries just built: no
    # request waits for an instance to start or for a build.
    local -a runtime_args=(--bind "$bind" --port "$port" --concurrency "$concurrency"
        --bin-dir "$bin_dir" --env-file "$dir/functions.env" --manifest "$LLMCHAT_ROOT/Cargo.toml")
    if ((dev)); then
        # A change to the code rebuilds, then replaces the instances.
        local build
        build="$(printf '%q ' cargo build -q --manifest-path "$LLMCHAT_ROOT/Cargo.toml" "${bins[@]}")"
        runtime_args+=(--watch "$LLMCHAT_ROOT/shared" --watch "$LLMCHAT_ROOT/functions" --watch "$LLMCHAT_ROOT/Cargo.toml" --build "$build")
    fi
    log "starting the local runtime on $base (log: ${dir#"$LLMCHAT_ROOT"/}/runtime.log)"
    # setsid: a session of its own, so a Ctrl-C meant for the caller reaches it
    # only through stop, which stops the runtime and its function instances
    # together.
    setsid "$bin_dir/llmchat-local" "${runtime_args[@]}" </dev/null >"$dir/runtime.log" 2>&1 &
    local watch_pid=$!
    printf '%s\n' "$watch_pid" >"$dir/runtime.pid"

    local started=$SECONDS deadline=$((SECONDS + timeout)) next_note=$((SECONDS + 30)) health='' code=''
    # Ready once the functions answer and DynamoDB is reachable; /health is 503
    # while Ollama is down, which STACK_LLM reports instead of waiting on it.
    # With the key, /health names each check (without, only the overall status).
    log "waiting for $base/health"
    while :; do
        health="$(curl -s --max-time 30 -w '\n%{http_code}' -H "Authorization: Bearer $key" "$base/health" 2>/dev/null || true)"
        code="${health##*$'\n'}"
        [[ $health == *'"dynamodb":{"status":"ok"'* ]] && break
        if pid_gone "$watch_pid"; then
            print_log_tail "$dir/runtime.log"
            die "the local runtime exited before the stack became ready"
        fi
        if ((SECONDS >= deadline)); then
            print_log_tail "$dir/runtime.log"
            die "$base/health did not report DynamoDB ok within ${timeout}s (last status: $code)"
        fi
        if ((SECONDS >= next_note)); then
            log "still waiting for $base/health ($((SECONDS - started))s so far, last status: $code)"
            next_note=$((SECONDS + 30))
        fi
        sleep 1
    done

    local llm_status=down
    [[ "$(curl -s --max-time 30 -H "Authorization: Bearer $key" "$base/health" 2>/dev/null || true)" != *'"llm":{"status":"ok"'* ]] || llm_status=ok
    printf '%s=%s\n' \
        STACK_BASE "$base" \
        STACK_KEY "$key" \
        STACK_TABLE "$LLMCHAT_TABLE_NAME" \
        STACK_DYNAMODB "$DYNAMODB_ENDPOINT" \
        STACK_LLM "$llm_status" \
        >"$dir/stack.env"
    log "local stack ready at $base: ${#functions[@]} functions, Ollama $llm_status"
}

cmd_env() {
    local dir=$1
    [[ -s $dir/stack.env ]] || die "no local stack runs in $dir"
    if [[ ! -f $dir/runtime.pid ]] || ! pid_runs "$(<"$dir/runtime.pid")" "$WATCH_PATTERN"; then
        die "the local stack in $dir has stopped"
    fi
    cat "$dir/stack.env"
}

cmd_stop() {
    local dir=$1
    stop_pidfile "$dir/runtime.pid" "$WATCH_PATTERN" "the local runtime"
    "$DDB" stop "$dir/dynamodb-local.pid" || true
    rm -f "$dir/stack.env"
}

(($# >= 2)) || usage
sub=$1
# Absolute before the cd below: DIR may be relative to the caller's directory.
dir="$(realpath -m -- "$2")"
shift 2
cd "$LLMCHAT_ROOT"
case "$sub" in
    start) cmd_start "$dir" "$@" ;;
    env) (($# == 0)) || usage; cmd_env "$dir" ;;
    stop) (($# == 0)) || usage; cmd_stop "$dir" ;;
    *) usage ;;
esac
