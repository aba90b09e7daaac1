# shellcheck shell=bash
# Sourced by scripts that need the whole local stack on free ports, private
# to one run: DynamoDB Local (or the test one), a fresh table and API key, and
# every function under `cargo lambda watch` with the router in Cargo.toml.
#
#   start_local_stack RUN_DIR LLM_URL OWNER   sets STACK_BASE and STACK_KEY
#   stop_local_stack RUN_DIR
#
# Needs scripts/lib.sh sourced and ensure_dev_tools done.

start_local_stack() {
    local RUN_DIR=$1 llm_url=$2 owner=$3
    local DDB="$LLMCHAT_ROOT/scripts/dynamodb-local.sh" WATCH_LOG="$RUN_DIR/watch.log"
    local READY_TIMEOUT="${LLMCHAT_READY_TIMEOUT:-1200}"
    local ddb_port target_dir key port base watch_pid deadline code route method path f
    local -a routes functions
    use_local_aws_env
    if [[ -n ${LLMCHAT_TEST_DYNAMODB_ENDPOINT:-} ]]; then
        export DYNAMODB_ENDPOINT="$LLMCHAT_TEST_DYNAMODB_ENDPOINT"
    else
        "$DDB" install
        ddb_port="$(start_dynamodb_on_free_port "$RUN_DIR/dynamodb-local.pid" "$RUN_DIR/dynamodb-local.log")"
        export DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
    fi
    # A table of its own: a shared DynamoDB Local may hold other runs' tables.
    export LLMCHAT_TABLE_NAME="llmchat-${owner}-${RUN_DIR##*.}-$$"

    log "building llmchat-admin"
    cargo build -q -p llmchat-admin
    target_dir="$(cargo metadata -q --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    admin() { "$target_dir/debug/llmchat-admin" "$@"; }

    log "creating table $LLMCHAT_TABLE_NAME at $DYNAMODB_ENDPOINT"
    admin create-table
    key="$(admin issue-key --owner "$owner" | tail -n 1)"
    [[ $key == lck_* ]] || die "llmchat-admin issue-key printed no key"


    # NO_COLOR: the log is a file to read and grep, not a terminal.
    printf '%s=%s\n' \
        LLMCHAT_TABLE_NAME "$LLMCHAT_TABLE_NAME" \
        DYNAMODB_ENDPOINT "$DYNAMODB_ENDPOINT" \
        OLLAMA_URL "$llm_url" \
        AWS_ACCESS_KEY_ID "$AWS_ACCESS_KEY_ID" \
        AWS_SECRET_ACCESS_KEY "$AWS_SECRET_ACCESS_KEY" \
        AWS_REGION "$AWS_REGION" \
        LLMCHAT_LOG_FORMAT pretty \
        LLMCHAT_LLM_FIRST_TOKEN_TIMEOUT_MS "${LLMCHAT_STACK_FIRST_TOKEN_TIMEOUT_MS:-5000}" \
        LLMCHAT_DEFAULT_MODEL "${LLMCHAT_DEFAULT_MODEL:-$DEFAULT_MODEL}" \
        NO_COLOR 1 \
        >"$RUN_DIR/watch.env"

    # The watch builds each function on its first request, which would eat into
    # schemathesis' request timeout. Built here first, one `cargo build --bin` per
    # function exactly as the watch's `cargo run --bin` does, so features resolve
    # the same and the watch finds everything fresh. target/e2e-watch is shared
    # with the end-to-end test: after `cargo test` little is left to compile.
    local CARGO_TARGET_DIR="$LLMCHAT_ROOT/target/e2e-watch"
    export CARGO_TARGET_DIR
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
    # shellcheck disable=SC2034 # read by the caller
    STACK_BASE="$base" STACK_KEY="$key"
}

stop_local_stack() {
    local RUN_DIR=$1
    stop_pidfile "$RUN_DIR/watch.pid" "lambda watch" "cargo lambda watch"
    "$LLMCHAT_ROOT/scripts/dynamodb-local.sh" stop "$RUN_DIR/dynamodb-local.pid" || true
}
