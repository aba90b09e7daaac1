#!/usr/bin/env bash
# `make e2e-real`: the full local stack against a real Ollama serving a real
# model. Uses the Ollama at OLLAMA_URL, or on Ollama's default port, as it
# is; otherwise builds and starts the project's own (scripts/ollama.sh; the
# first build takes minutes). Creates a session, sends a buffered message and
# streams another, checks the stored history, statuses and usage, then
# measures time to first token and tokens per second through LlmChat's stream
# against straight from Ollama (scripts/e2e_real.py). Exits non-zero on any
# failure. Then the OpenAI SDK scenario (scripts/e2e_real_openai.py) on the
# same stack.
#
# Env: OLLAMA_URL, LLMCHAT_DEFAULT_MODEL (default: DEFAULT_MODEL in
# scripts/lib.sh), E2E_REAL_RUNS (5).
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
    if ((rc == 0)); then rm -rf "$RUN_DIR"; else log "e2e-real FAILED; logs kept in ${RUN_DIR#"$LLMCHAT_ROOT"/}"; fi
    exit "$rc"
}
on_exit_run cleanup

export LLMCHAT_DEFAULT_MODEL="${LLMCHAT_DEFAULT_MODEL:-$DEFAULT_MODEL}"
use_ollama "$RUN_DIR" "$(free_port)"
curl -s --max-time 5 "$OLLAMA_URL/api/tags" | grep -q "\"$LLMCHAT_DEFAULT_MODEL\"" ||
    die "Ollama at $OLLAMA_URL does not serve $LLMCHAT_DEFAULT_MODEL (ollama pull $LLMCHAT_DEFAULT_MODEL)"
log "real Ollama at $OLLAMA_URL, model $LLMCHAT_DEFAULT_MODEL"

# A CPU model loads slowly: the stack gets the deployed default first-token wait.
local_stack start "$RUN_DIR" --owner e2e-real --llm "$OLLAMA_URL" \
    --env LLMCHAT_LLM_FIRST_TOKEN_TIMEOUT_MS=120000
load_stack_env "$RUN_DIR"
python3 "$LLMCHAT_ROOT/scripts/e2e_real.py" "$STACK_BASE" "$STACK_KEY" "$OLLAMA_URL" "$LLMCHAT_DEFAULT_MODEL" "${E2E_REAL_RUNS:-5}"
# The OpenAI SDK (pinned in the dev tools' venv, first on PATH) against the same stack and model.
python "$LLMCHAT_ROOT/scripts/e2e_real_openai.py" "$STACK_BASE" "$STACK_KEY" "$LLMCHAT_DEFAULT_MODEL"
