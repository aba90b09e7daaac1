#!/usr/bin/env bash
# Contract test (`make contract-test`; also the last step of `make test`):
# schemathesis sends generated requests, valid and invalid, to every operation
# of the committed openapi-3.2.yaml (openapi.yaml's operations, with each event
# stream's events as itemSchema, so every SSE event is checked too) on the whole local stack (the local runtime
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
#   LLMCHAT_CONTRACT_RANDOM_EXAMPLES=20  then a second run with a random seed (printed,
#                                    so a failure can be replayed with LLMCHAT_CONTRACT_SEED)
#                                    and this many cases per operation; 0 skips it
#   LLMCHAT_CONTRACT_WORKERS=1       operations tested concurrently; more is faster,
#                                    but the order of requests, and so the run, varies
#   LLMCHAT_READY_TIMEOUT=1200       seconds the started stack may take to answer
#                                    (scripts/local-stack.sh)
#   LLMCHAT_CLIENT_TESTS=0           1: then the client tests (scripts/client-tests.sh:
#                                    the OpenAI SDK against /v1, generated clients) on
#                                    the same stack; the run fails when either fails
#   LLMCHAT_BROWSER_TESTS=1          1: then the browser tests (scripts/browser-tests.sh:
#                                    the chat page in headless Chromium, other origins)
#                                    on the same stack; 0 skips them
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LLMCHAT_ROOT"

MAX_EXAMPLES="${LLMCHAT_CONTRACT_MAX_EXAMPLES:-50}"
SEED="${LLMCHAT_CONTRACT_SEED:-1}"
RANDOM_EXAMPLES="${LLMCHAT_CONTRACT_RANDOM_EXAMPLES:-20}"
WORKERS="${LLMCHAT_CONTRACT_WORKERS:-1}"
# The client tests (scripts/client-tests.sh: the OpenAI SDK, generated clients)
# run on the same stack after schemathesis; LLMCHAT_CLIENT_TESTS=0 skips them.
CLIENT_TESTS="${LLMCHAT_CLIENT_TESTS:-1}"
# The browser tests (scripts/browser-tests.sh) after those; LLMCHAT_BROWSER_TESTS=0 skips them.
BROWSER_TESTS="${LLMCHAT_BROWSER_TESTS:-1}"
for n in MAX_EXAMPLES SEED RANDOM_EXAMPLES WORKERS; do
    [[ ${!n} =~ ^[0-9]+$ ]] || die "$n='${!n}' is not a number"
done
[[ $CLIENT_TESTS == [01] ]] || die "LLMCHAT_CLIENT_TESTS='$CLIENT_TESTS' is not 0 or 1"
[[ $BROWSER_TESTS == [01] ]] || die "LLMCHAT_BROWSER_TESTS='$BROWSER_TESTS' is not 0 or 1"

need_cmd cargo java mvn curl python3 setsid pgrep
# schemathesis, pinned in scripts/requirements-dev.txt.
ensure_dev_tools
need_cmd schemathesis

mkdir -p "$LLMCHAT_STATE_DIR"
# A directory per run, so concurrent runs never share pid files or logs.
RUN_DIR="$(mktemp -d "$LLMCHAT_STATE_DIR/contract.XXXXXX")"
WATCH_LOG="$RUN_DIR/runtime.log"

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
    stop_scripted_stack "$RUN_DIR"
    if ((rc == 0)); then
        rm -rf "$RUN_DIR"
    elif ((rc >= 128)); then
        log "contract test interrupted; logs kept in ${RUN_DIR#"$LLMCHAT_ROOT"/}"
    else
        log "contract test FAILED; logs and reports kept in ${RUN_DIR#"$LLMCHAT_ROOT"/}"
    fi
    exit "$rc"
}
on_exit_run cleanup

start_scripted_stack "$RUN_DIR" contract-test
load_stack_env "$RUN_DIR"
base="$STACK_BASE"
key="$STACK_KEY"

# Written per run and passed explicitly, so no schemathesis.toml elsewhere
# changes the run, and its crash cache (replayed by later runs, which would
# make them differ) stays off.
printf '[cache]\nenabled = false\n' >"$RUN_DIR/schemathesis.toml"

CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"

# One schemathesis run: SEED EXAMPLES NAME [EXTRA_ARGS...]. Bounded and
# repeatable: the seed, a number of cases per operation, and no example
# database carried over from earlier runs. Every failure counts: a 5xx from
# any layer, the local runtime's included, fails the run.
run_schemathesis() {
    local seed=$1 examples=$2 name=$3 status=0 started=$SECONDS
    shift 3
    local -a args=(
        --config-file "$RUN_DIR/schemathesis.toml"
        run openapi-3.2.yaml
        --url "$base"
        --header "Authorization: Bearer $key"
        --checks "$CHECKS"
        --max-examples "$examples"
        --seed "$seed"
        --generation-database none
        --workers "$WORKERS"
        --request-timeout 15
        --continue-on-failure
        --report junit
        --report-junit-path "$RUN_DIR/junit-$name.xml"
    )
    log "schemathesis $(schemathesis --version | awk '{print $NF}') ($name): ${args[*]/Bearer */Bearer <key>} $*"
    # Hypothesis keeps its caches (Unicode tables) in the user cache, not the checkout.
    HYPOTHESIS_STORAGE_DIRECTORY="$LLMCHAT_CACHE_DIR/hypothesis" schemathesis "${args[@]}" "$@" || status=$?
    local elapsed=$((SECONDS - started))
    if ((status == 0)); then
        log "contract test ($name) passed: no failures against openapi-3.2.yaml (seed $seed, $examples examples, ${elapsed}s)"
        return 0
    fi
    log "contract test ($name) failed (schemathesis exit $status, seed $seed, ${elapsed}s); by operation:"
    # One line per failing operation, from the JUnit report: the details and a
    # curl command reproducing each failure are in schemathesis' FAILURES above.
    python3 - "$RUN_DIR/junit-$name.xml" >&2 <<'PY' || true
import re, sys, xml.etree.ElementTree as ET
for case in ET.parse(sys.argv[1]).iter("testcase"):
    for bad in case.findall("failure") + case.findall("error"):
        text = bad.text or ""
        checks = dict.fromkeys(re.findall(r"^- (ST\d+ .+)$", text, re.M)) or [bad.get("message", "")]
        statuses = dict.fromkeys(re.findall(r"^\[(\d{3})\]", text, re.M))
        print(f"  {case.get('name')}: {'; '.join(checks)} (got {', '.join(statuses) or 'no response'})")
PY
    log "JUnit report: ${RUN_DIR#"$LLMCHAT_ROOT"/}/junit-$name.xml (replay: LLMCHAT_CONTRACT_SEED=$seed LLMCHAT_CONTRACT_MAX_EXAMPLES=$examples)"
    return "$status"
}

status=0
run_schemathesis "$SEED" "$MAX_EXAMPLES" fixed-seed "$@" || status=$?
# The same operations with requests no earlier run sent.
if ((RANDOM_EXAMPLES > 0)); then
    random_seed=$(( (RANDOM << 15) | RANDOM ))
    run_schemathesis "$random_seed" "$RANDOM_EXAMPLES" random-seed "$@" || { ((status != 0)) || status=1; }
fi

# The client tests on the same stack, whatever schemathesis found: real
# clients (the OpenAI SDK, generated ones) as judges of the API.
if ((CLIENT_TESTS)); then
    client_status=0
    "$LLMCHAT_ROOT/scripts/client-tests.sh" --stack "$RUN_DIR" || client_status=$?
    ((status != 0)) || status=$client_status
fi
# The chat page in a real browser, on the same stack.
if ((BROWSER_TESTS)); then
    browser_status=0
    "$LLMCHAT_ROOT/scripts/browser-tests.sh" --stack "$RUN_DIR" || browser_status=$?
    ((status != 0)) || status=$browser_status
fi
exit "$status"
