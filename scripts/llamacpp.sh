#!/usr/bin/env bash
# llama.cpp's OpenAI-compatible server (llama-cpp-python's, from PyPI) with the
# project's own model: the same GGUF file the project's Ollama serves
# (scripts/ollama.sh), under the same name, so the stack can talk to either.
# Cached under ~/.cache/llmchat/llamacpp so the long first build happens once
# per machine.
#
#   llamacpp.sh install                    build llama-cpp-python, fetch the model
#   llamacpp.sh start PORT PIDFILE LOGFILE serve /v1 on 127.0.0.1:PORT
#   llamacpp.sh stop PIDFILE
#
# pip builds llama.cpp from llama-cpp-python's sdist (pinned with its server's
# dependencies in scripts/requirements-llamacpp.txt) for this machine's CPU:
# about ten minutes on 2 cores, the first time. The server speaks
# /v1/models and /v1/chat/completions (streamed too); its one model is
# LOCAL_MODEL (scripts/lib.sh), prompted in ChatML (see
# scripts/ollama/Modelfile.* for why not the GGUF's own template).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LLAMACPP_DIR="$LLMCHAT_CACHE_DIR/llamacpp"
LLAMACPP_VENV="$LLAMACPP_DIR/venv"

install_llamacpp() {
    need_cmd gcc g++
    # Quick when the venv is in place; else pip prints nothing while it compiles.
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        with_progress "installing llama-cpp-python (compiling llama.cpp: about ten minutes)" \
        ensure_venv "$LLAMACPP_VENV" "$LLMCHAT_ROOT/scripts/requirements-llamacpp.txt" ||
        die "could not install scripts/requirements-llamacpp.txt into $LLAMACPP_VENV"
}

cmd_start() {
    local port=$1 pidfile=$2 logfile=$3 base pid
    base="http://127.0.0.1:$port"
    port_in_use "$port" && die "port $port is in use"
    mkdir -p "$(dirname "$pidfile")"
    setsid "$LLAMACPP_VENV/bin/python" -m llama_cpp.server \
        --model "$LOCAL_MODEL_GGUF" --model_alias "$LOCAL_MODEL" --chat_format chatml \
        --n_ctx 4096 --n_threads "$(nproc)" \
        --host 127.0.0.1 --port "$port" </dev/null >"$logfile" 2>&1 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$pidfile"
    wait_until_serving "$base/v1/models" "$pid" "$logfile" "the llama.cpp server"
    log "llama.cpp server (llama-cpp-python) serving $LOCAL_MODEL at $base/v1 (pid $pid)"
}

case "${1:-}" in
    install) ensure_local_model; install_llamacpp ;;
    start) [[ $# -eq 4 ]] || die "usage: llamacpp.sh start PORT PIDFILE LOGFILE"; ensure_local_model; install_llamacpp; cmd_start "$2" "$3" "$4" ;;
    stop) [[ $# -eq 2 ]] || die "usage: llamacpp.sh stop PIDFILE"; stop_pidfile "$2" "llama_cpp.server" "llama.cpp server" ;;
    *) die "usage: llamacpp.sh install | start PORT PIDFILE LOGFILE | stop PIDFILE" ;;
esac
