#!/usr/bin/env bash
# `make test`: cargo test --workspace against a private, in-memory DynamoDB Local
# on a free port, so it never touches (or collides with) a running dev stack;
# then, when they pass, the contract test (scripts/contract-test.sh) against it,
# followed on the same local stack by the client tests and the browser tests
# (LLMCHAT_CLIENT_TESTS=0, LLMCHAT_BROWSER_TESTS=0 skip those).
#
#   test.sh                  run the whole workspace's tests and the contract test
#   TEST_ARGS='...' test.sh  only cargo test, with these extra arguments, word-split
#                            (e.g. TEST_ARGS='-p llmchat-shared -- --nocapture')
#
# Env: DYNAMODB_START_TIMEOUT (seconds, default 60).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LLMCHAT_ROOT"

need_cmd cargo java mvn curl python3 setsid pgrep
"$LLMCHAT_ROOT/scripts/dynamodb-local.sh" install
# schemathesis: the contract test; cargo-lambda: make deploy-check's builds.
ensure_dev_tools

# A local stack the end-to-end test had no chance to stop (it was killed).
# shellcheck disable=SC2317 # invoked through the EXIT trap
stop_leftover_stacks() {
    for stack in "$RUN_DIR"/*/; do
        if [[ -d $stack ]]; then local_stack stop "$stack" || true; fi
    done
}
start_private_dynamodb test stop_leftover_stacks
# Where the end-to-end test keeps its local stack (scripts/local-stack.sh).
export LLMCHAT_TEST_STATE_DIR="$RUN_DIR"

extra=()
if [[ -n ${TEST_ARGS:-} ]]; then read -r -a extra <<<"$TEST_ARGS"; fi
log "cargo test --workspace ${extra[*]} (DynamoDB Local at $LLMCHAT_TEST_DYNAMODB_ENDPOINT)"
status=0
cargo test --workspace "${extra[@]}" || status=$?

# The contract test (openapi.yaml against the running stack) on the same
# DynamoDB Local. Skipped when the tests failed, whose output comes first, and
# for filtered runs (TEST_ARGS), which are meant to be quick.
if ((status == 0)) && ((${#extra[@]} == 0)); then
    "$LLMCHAT_ROOT/scripts/contract-test.sh" || status=$?
fi
exit "$status"
