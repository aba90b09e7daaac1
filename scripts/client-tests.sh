#!/usr/bin/env bash
# Client tests (`make client-tests`; a step of the contract test, and so of
# `make test`, when LLMCHAT_CLIENT_TESTS=1): real clients judge the API.
#   sdk         the official OpenAI Python SDK, unchanged, against /v1
#               (tests/clients/test_openai_sdk.py)
#   generators  clients generated from the OpenAPI document: Python with
#               openapi-python-client, called against the stack
#               (tests/clients/test_generated_client.py), and TypeScript types
#               with openapi-typescript, type-checked by tsc with code that uses
#               them (tests/clients/usage.ts); any warning fails
#
#   client-tests.sh [--stack DIR] [--spec FILE] [--only sdk|generators] [PYTEST_ARGS...]
#
#   --stack DIR   test the local stack running in DIR (scripts/local-stack.sh);
#                 without it a fresh one is started with the scripted Ollama
#                 (start_scripted_stack in scripts/lib.sh) and stopped after
#   --spec FILE   the document the generators read (default: openapi.yaml)
#   --only WHAT   only the SDK tests, or only the generated clients
#   PYTEST_ARGS   go to pytest (e.g. -k responses -x)
#
# The tools are pinned: openai, openapi-python-client and pytest in
# scripts/requirements-dev.txt (the dev tools' venv); openapi-typescript and
# typescript in tests/clients/package-lock.json, installed with `npm ci` into
# the user cache. Generated code and logs go to a directory under .llmchat/,
# kept when something fails.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENTS="$LLMCHAT_ROOT/tests/clients"

usage() {
    echo "usage:" >&2
    sed -n '12,19s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

STACK_DIR='' SPEC="$LLMCHAT_ROOT/openapi.yaml" ONLY=''
while (($# > 0)); do
    case $1 in
        --stack | --spec | --only) (($# >= 2)) || usage ;;&
        --stack) STACK_DIR="$(realpath -m -- "$2")" ;;
        --spec) SPEC="$(realpath -m -- "$2")" ;;
        --only) ONLY=$2 ;;
        -h | --help) usage ;;
        *) break ;;
    esac
    shift 2
done
[[ -z $ONLY || $ONLY == sdk || $ONLY == generators ]] || die "--only takes sdk or generators, not '$ONLY'"
[[ -f $SPEC ]] || die "no OpenAPI document at $SPEC"
cd "$LLMCHAT_ROOT"

# The npm tools of tests/clients/package-lock.json, installed with `npm ci`
# into the cache when the lock changed, their bin directory put first on PATH.
ensure_npm_tools() {
    local dir="$LLMCHAT_CACHE_DIR/npm-clients" want lockfd
    want="$(cat "$CLIENTS/package.json" "$CLIENTS/package-lock.json" | sha256sum | cut -d' ' -f1)"
    npm_ok() { [[ -f $dir/.lock.sha256 && "$(<"$dir/.lock.sha256")" == "$want" && -d $dir/node_modules ]]; }
    if ! npm_ok; then
        need_cmd node npm flock
        mkdir -p "$dir"
        exec {lockfd}>"$dir.lock"
        flock "$lockfd"
        if ! npm_ok; then
            log "installing tests/clients/package-lock.json into $dir (first run only)"
            rm -rf "$dir/node_modules" "$dir/.lock.sha256"
            cp "$CLIENTS/package.json" "$CLIENTS/package-lock.json" "$dir/"
            (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2) ||
                die "npm ci of tests/clients/package-lock.json failed"
            printf '%s\n' "$want" >"$dir/.lock.sha256"
        fi
        exec {lockfd}>&-
    fi
    export PATH="$dir/node_modules/.bin:$PATH"
}

# Runs a generator (COMMAND...) with its output in LOG and shown; fails when
# it fails or its output names a warning or an error.
run_generator() { # NAME LOG COMMAND...
    local name=$1 out=$2 rc=0 text
    shift 2
    log "$name: ${*//"$LLMCHAT_ROOT"\//}"
    "$@" >"$out" 2>&1 || rc=$?
    sed 's/^/    /' "$out" >&2
    if ((rc != 0)); then
        log "$name FAILED (exit $rc)"
        return 1
    fi
    # openapi-python-client: "Warning(s) encountered ..."; openapi-typescript:
    # " ⚠  ..." and " ✘  ..."; tsc: "error TS...". Paths, which could hold
    # such words, are left out.
    text="$(<"$out")"
    text=${text//"$LLMCHAT_ROOT"/}
    if grep -qiE 'warn|error|⚠|✘' <<<"$text"; then
        log "$name printed warnings or errors (above)"
        return 1
    fi
}

need_cmd cargo curl python3 setsid pgrep
ensure_dev_tools
[[ $ONLY == sdk ]] || ensure_npm_tools

mkdir -p "$LLMCHAT_STATE_DIR"
WORK="$(mktemp -d "$LLMCHAT_STATE_DIR/clients.XXXXXX")"
# Without --stack, a stack of its own in WORK, stopped on exit.
OWN_STACK=0
if [[ -z $STACK_DIR ]]; then
    OWN_STACK=1
    STACK_DIR=$WORK
fi
# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
    local rc=$?
    trap '' INT TERM HUP
    if ((OWN_STACK)); then
        if ((rc != 0 && rc < 128)) && [[ -s $WORK/runtime.log ]]; then print_log_tail "$WORK/runtime.log" 30; fi
        stop_scripted_stack "$WORK"
    fi
    if ((rc == 0)); then
        rm -rf "$WORK"
    else
        log "client tests FAILED; generated code and logs kept in ${WORK#"$LLMCHAT_ROOT"/}"
    fi
    exit "$rc"
}
on_exit_run cleanup

if ((OWN_STACK)); then start_scripted_stack "$WORK" client-tests; fi
local_stack env "$STACK_DIR" >/dev/null
load_stack_env "$STACK_DIR"
export STACK_BASE STACK_KEY STACK_TABLE STACK_DYNAMODB STACK_LLM

status=0
tests=()
if [[ $ONLY != generators ]]; then tests+=("$CLIENTS/test_openai_sdk.py"); fi
if [[ $ONLY != sdk ]]; then
    gen="$WORK/generated"
    mkdir -p "$gen"
    spec_name="${SPEC#"$LLMCHAT_ROOT"/}"
    # The Python client: a package llmchat_client in $gen (ruff, which
    # formats it, comes with the generator into the venv on PATH).
    if run_generator openapi-python-client "$WORK/openapi-python-client.log" \
        openapi-python-client generate --path "$SPEC" --output-path "$gen/llmchat_client" \
        --meta none --fail-on-warning; then
        export LLMCHAT_GENERATED_CLIENT="$gen"
        tests+=("$CLIENTS/test_generated_client.py")
    else
        status=1
    fi
    # The TypeScript types, then a strict type check of them and of code that
    # uses them (tests/clients/usage.ts, beside them).
    if run_generator openapi-typescript "$WORK/openapi-typescript.log" \
        openapi-typescript "$SPEC" --output "$gen/llmchat.d.ts"; then
        cp "$CLIENTS/usage.ts" "$gen/"
        run_generator tsc "$WORK/tsc.log" \
            tsc --noEmit --strict --target es2022 --module nodenext "$gen/usage.ts" || status=1
    else
        status=1
    fi
    ((status == 0)) || log "a generator rejected or warned about $spec_name (above)"
fi

if ((${#tests[@]} > 0)); then
    log "pytest ${tests[*]#"$LLMCHAT_ROOT"/} $* (stack at $STACK_BASE)"
    # None of the developer's OPENAI_* settings (base URL, organization, ...) reach the SDK.
    for v in "${!OPENAI_@}"; do unset "$v"; done
    python -m pytest -c "$CLIENTS/pytest.ini" --rootdir "$CLIENTS" "${tests[@]}" "$@" || status=$?
fi
exit "$status"
