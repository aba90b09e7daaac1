#!/usr/bin/env bash
# Browser tests (`make browser-tests`; a step of the contract test, and so of
# `make test`, unless LLMCHAT_BROWSER_TESTS=0): the chat page at /chat in a
# real, headless Chromium (Debian's package) driven by Playwright for Python
# (tests/browser/), against the local stack with the scripted Ollama; and
# requests from other origins, preflights included.
#
#   browser-tests.sh [--stack DIR] [PYTEST_ARGS...]
#
#   --stack DIR   test the local stack running in DIR (scripts/local-stack.sh,
#                 started by start_scripted_stack, which allows the origin in
#                 DIR/cors-origin); without it a fresh one is started and stopped after
#   PYTEST_ARGS   go to pytest (e.g. -k stop -x)
#
# Screenshots of every test go to .llmchat/browser-artifacts/<time>/ and are
# kept (the newest 5 runs); the run's log says where.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    echo "usage:" >&2
    sed -n '8,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

STACK_DIR=''
while (($# > 0)); do
    case $1 in
        --stack)
            (($# >= 2)) || usage
            STACK_DIR="$(realpath -m -- "$2")"
            shift 2
            ;;
        -h | --help) usage ;;
        *) break ;;
    esac
done
cd "$LLMCHAT_ROOT"

need_cmd cargo curl python3 setsid pgrep
ensure_browser_tools

mkdir -p "$LLMCHAT_STATE_DIR"
ARTIFACTS="$LLMCHAT_STATE_DIR/browser-artifacts/$(date -u +%Y%m%dT%H%M%SZ)-$$"
mkdir -p "$ARTIFACTS"
# Older runs' screenshots go, the newest five stay.
find "$LLMCHAT_STATE_DIR/browser-artifacts" -mindepth 1 -maxdepth 1 -type d | sort | head -n -5 | xargs -r rm -rf

OWN_STACK=0
if [[ -z $STACK_DIR ]]; then
    OWN_STACK=1
    STACK_DIR="$(mktemp -d "$LLMCHAT_STATE_DIR/browser.XXXXXX")"
fi
# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
    local rc=$?
    trap '' INT TERM HUP
    if ((OWN_STACK)); then
        if ((rc != 0 && rc < 128)) && [[ -s $STACK_DIR/runtime.log ]]; then print_log_tail "$STACK_DIR/runtime.log" 30; fi
        stop_scripted_stack "$STACK_DIR"
        ((rc != 0)) || rm -rf "$STACK_DIR"
    fi
    log "browser test screenshots: ${ARTIFACTS#"$LLMCHAT_ROOT"/}"
    exit "$rc"
}
on_exit_run cleanup

if ((OWN_STACK)); then start_scripted_stack "$STACK_DIR" browser-tests; fi
load_stack_env "$STACK_DIR"
[[ -s $STACK_DIR/cors-origin ]] || die "the stack in $STACK_DIR allows no test origin (start it with start_scripted_stack)"
# A key of a fresh owner: an empty session list, and quotas that no earlier
# test on this stack used up. The admin tool is where the stack built it.
admin="$(CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$LLMCHAT_ROOT/target/local-stack}" cargo_target_dir)/debug/llmchat-admin"
[[ -x $admin ]] || die "no llmchat-admin at $admin (the local stack builds it)"
STACK_KEY="$(
    use_local_aws_env
    LLMCHAT_TABLE_NAME="$STACK_TABLE" DYNAMODB_ENDPOINT="$STACK_DYNAMODB" \
        "$admin" issue-key --owner "browser-tests-$$-$RANDOM" | tail -n 1
)"
[[ $STACK_KEY == lck_* ]] || die "llmchat-admin issue-key printed no key"
export STACK_BASE STACK_KEY
LLMCHAT_CORS_TEST_ORIGIN="$(<"$STACK_DIR/cors-origin")"
export LLMCHAT_CORS_TEST_ORIGIN
export LLMCHAT_BROWSER_ARTIFACTS="$ARTIFACTS"

log "pytest tests/browser $* (stack at $STACK_BASE, $LLMCHAT_CHROMIUM)"
python -m pytest -c "$LLMCHAT_ROOT/tests/browser/pytest.ini" --rootdir "$LLMCHAT_ROOT/tests/browser" \
    "$LLMCHAT_ROOT/tests/browser" "$@"
