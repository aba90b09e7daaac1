#!/usr/bin/env bash
# `make e2e-real`: the full local stack against real model servers serving a
# real model, on each backend kind: BACKEND=ollama (a real Ollama), openai
# (llama.cpp's OpenAI-compatible server), or both (the default, one stack with
# the two backends). Uses the Ollama at OLLAMA_URL, or on Ollama's default
# port, as it is; otherwise builds and starts the project's own
# (scripts/ollama.sh); the llama.cpp server at LLAMACPP_URL, or the project's
# own (scripts/llamacpp.sh). First builds take minutes. For each backend:
# a factual answer, a buffered and a streamed send, the stored history,
# statuses and usage, then time to first token and tokens per second through
# LlmChat's stream against straight from the server (scripts/e2e_real.py);
# then the OpenAI SDK scenario (scripts/e2e_real_openai.py). Exits non-zero
# on any failure.
#
# Env: BACKEND, OLLAMA_URL, LLAMACPP_URL, LLMCHAT_DEFAULT_MODEL (default:
# DEFAULT_MODEL in scripts/lib.sh), E2E_REAL_RUNS (5).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LLMCHAT_ROOT"

need_cmd cargo java mvn curl python3 setsid pgrep
ensure_dev_tools
mkdir -p "$LLMCHAT_STATE_DIR"
RUN_DIR="$(mktemp -d "$LLMCHAT_STATE_DIR/e2e-real.XXXXXX")"

# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
    local rc=$?
    trap '' INT TERM HUP
    local_stack stop "$RUN_DIR"
    "$LLMCHAT_ROOT/scripts/ollama.sh" stop "$RUN_DIR/ollama.pid" || true
    "$LLMCHAT_ROOT/scripts/llamacpp.sh" stop "$RUN_DIR/llamacpp.pid" || true
    if ((rc == 0)); then rm -rf "$RUN_DIR"; else log "e2e-real FAILED; logs kept in ${RUN_DIR#"$LLMCHAT_ROOT"/}"; fi
    exit "$rc"
}
on_exit_run cleanup

export LLMCHAT_DEFAULT_MODEL="${LLMCHAT_DEFAULT_MODEL:-$DEFAULT_MODEL}"
BACKEND="${BACKEND:-both}"
case "$BACKEND" in
    ollama | openai | both) ;;
    *) die "BACKEND is ollama, openai or both (not $BACKEND)" ;;
esac
# Only the servers this run asks for: local_backends names the ones set.
OLLAMA_URL_GIVEN="${OLLAMA_URL:-}"
unset OLLAMA_URL
if [[ $BACKEND != openai ]]; then
    [[ -z $OLLAMA_URL_GIVEN ]] || export OLLAMA_URL="$OLLAMA_URL_GIVEN"
    use_ollama "$RUN_DIR" "$(free_port)"
    curl -s --max-time 5 "$OLLAMA_URL/api/tags" | grep -q "\"$LLMCHAT_DEFAULT_MODEL\"" ||
        die "Ollama at $OLLAMA_URL does not serve $LLMCHAT_DEFAULT_MODEL (ollama pull $LLMCHAT_DEFAULT_MODEL)"
    log "real Ollama at $OLLAMA_URL, model $LLMCHAT_DEFAULT_MODEL"
fi
if [[ $BACKEND == ollama ]]; then
    unset LLAMACPP_URL
else
    LLMCHAT_LLAMACPP=1 use_llamacpp "$RUN_DIR" "$(free_port)"
    log "OpenAI-compatible server at $LLAMACPP_URL, model $LLMCHAT_DEFAULT_MODEL"
fi

# A CPU model loads slowly: the stack gets the deployed default first-token wait.
local_stack start "$RUN_DIR" --owner e2e-real --llm "${OLLAMA_URL:-$LLAMACPP_URL}" \
    --env LLMCHAT_LLM_FIRST_TOKEN_TIMEOUT_MS=120000 \
    --env "LLMCHAT_BACKENDS=$(local_backends)"
load_stack_env "$RUN_DIR"
run_backend() { # NAME DIRECT_URL DIALECT
    log "e2e-real on backend $1 ($3 dialect)"
    python3 "$LLMCHAT_ROOT/scripts/e2e_real.py" "$STACK_BASE" "$STACK_KEY" "$2" "$3" "$1/$LLMCHAT_DEFAULT_MODEL" "${E2E_REAL_RUNS:-5}"
    # The OpenAI SDK (pinned in the dev tools' venv, first on PATH) against the same stack and model.
    python "$LLMCHAT_ROOT/scripts/e2e_real_openai.py" "$STACK_BASE" "$STACK_KEY" "$1/$LLMCHAT_DEFAULT_MODEL"
}
[[ -z ${OLLAMA_URL:-} ]] || run_backend ollama "$OLLAMA_URL" ollama
[[ -z ${LLAMACPP_URL:-} ]] || run_backend llamacpp "$LLAMACPP_URL" openai
