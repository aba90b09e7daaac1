# Shared helpers for the LlmChat scripts. Sourced by scripts/*.sh, never executed.
# shellcheck shell=bash

LLMCHAT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Downloads (DynamoDB Local, dev tools) live in the user's cache so every
# checkout and every run after the first reuses them.
LLMCHAT_CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/llmchat"
# Per-checkout runtime state (logs, pid files); gitignored.
# shellcheck disable=SC2034 # used by the scripts that source this file
LLMCHAT_STATE_DIR="$LLMCHAT_ROOT/.llmchat"

# Messages go to stderr so stdout stays clean for values callers capture (API keys).
# Runs FUNCTION on every exit; Ctrl-C, SIGTERM and SIGHUP exit with the
# conventional 128+signal status, so FUNCTION sees why and runs once.
on_exit_run() {
    # shellcheck disable=SC2064 # the function name, expanded now on purpose
    trap "$1" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

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
# cargo lambda watch starts each function instance in a session of its own.
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

# Installs the pinned Python-packaged dev tools (cargo-lambda, schemathesis) into
# a venv in the cache and puts it first on PATH. Reinstalls when the requirements
# file changes or a pinned package is missing or not at its pinned version.
ensure_dev_tools() {
    local req="$LLMCHAT_ROOT/scripts/requirements-dev.txt"
    local venv="$LLMCHAT_CACHE_DIR/venv"
    local stamp="$venv/.requirements.sha256"
    local want pinned have lockfd
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    pinned="$(sed -n 's/^cargo-lambda==\([^ ;#]*\).*/\1/p' "$req")"
    export PATH="$venv/bin:$PATH"

    dev_tools_ok() {
        [[ -f $stamp && "$(<"$stamp")" == "$want" ]] || return 1
        have="$(cargo lambda --version 2>/dev/null | awk '{print $2}')" || return 1
        [[ -z $pinned || $have == "$pinned" ]] || return 1
        # Every other pin too (schemathesis, ...): a venv changed by hand is repaired.
        "$venv/bin/python" - "$req" 2>/dev/null <<'PY'
import re, sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    m = re.match(r"\s*([A-Za-z0-9._-]+)==([^\s;#]+)", line)
    if m and version(m[1]) != m[2]:
        sys.exit(1)
PY
    }
    dev_tools_ok && return 0

    need_cmd python3
    mkdir -p "$LLMCHAT_CACHE_DIR"
    # Serialise with a concurrent `make dev` / `make api-key` doing the same.
    exec {lockfd}>"$LLMCHAT_CACHE_DIR/venv.lock"
    flock "$lockfd"
    if ! dev_tools_ok; then
        # A venv whose interpreter went away (e.g. a removed pyenv version) is rebuilt.
        if ! "$venv/bin/python" -c '' 2>/dev/null; then
            rm -rf "$venv"
            python3 -m venv "$venv" ||
                die "could not create a Python venv at $venv (on Debian: apt-get install python3-venv)"
        fi
        log "installing dev tools from scripts/requirements-dev.txt into $venv (first run only)"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" ||
            die "pip install -r scripts/requirements-dev.txt failed"
        printf '%s\n' "$want" >"$stamp"
        dev_tools_ok ||
            die "after pip install, cargo lambda reports '${have:-nothing}' (expected $pinned) or a pinned package is at another version"
    fi
    exec {lockfd}>&-
    log "using $(cargo lambda --version)"
}

# Installs cfn-lint and the SAM CLI (scripts/requirements-deploy.txt) into a
# venv of their own in the cache and puts it on PATH after the dev tools.
ensure_deploy_tools() {
    local req="$LLMCHAT_ROOT/scripts/requirements-deploy.txt"
    local venv="$LLMCHAT_CACHE_DIR/venv-deploy"
    local stamp="$venv/.requirements.sha256"
    local want lockfd
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    export PATH="$PATH:$venv/bin"
    [[ -f $stamp && "$(<"$stamp")" == "$want" && -x $venv/bin/sam && -x $venv/bin/cfn-lint ]] && return 0
    need_cmd python3
    mkdir -p "$LLMCHAT_CACHE_DIR"
    exec {lockfd}>"$LLMCHAT_CACHE_DIR/venv-deploy.lock"
    flock "$lockfd"
    if ! "$venv/bin/python" -c '' 2>/dev/null; then
        rm -rf "$venv"
        python3 -m venv "$venv" || die "could not create a Python venv at $venv"
    fi
    log "installing cfn-lint and the SAM CLI from scripts/requirements-deploy.txt into $venv (first run only)"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" ||
        die "pip install -r scripts/requirements-deploy.txt failed"
    printf '%s\n' "$want" >"$stamp"
    exec {lockfd}>&-
}
