#!/usr/bin/env bash
# DynamoDB Local for development and tests, resolved from Maven Central into the
# user cache (no Docker needed).
#
#   dynamodb-local.sh install                      resolve into the cache if missing
#   dynamodb-local.sh dir                          print the install directory
#   dynamodb-local.sh start PORT PIDFILE LOGFILE   start in memory, wait until ready
#   dynamodb-local.sh stop PIDFILE                 stop it (no-op if not running)
#
# It listens on 127.0.0.1 only: DynamoDB Local's own entry point binds every
# interface and has no option to choose one, so it is started through
# scripts/dynamodb-local/LoopbackServer.java (compiled once into the cache),
# which gives its server the loopback address before it starts.
#
# Env: DYNAMODB_START_TIMEOUT (seconds, default 60); DYNAMODB_DATA_DIR (keep the
# data in this directory instead of in memory, so a restart finds it: the soak).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POM="$LLMCHAT_ROOT/scripts/dynamodb-local/pom.xml"
LAUNCHER="$LLMCHAT_ROOT/scripts/dynamodb-local/LoopbackServer.java"
MAIN_CLASS=LoopbackServer

usage() {
    echo "usage:" >&2
    sed -n '5,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

# Keyed by the pom's hash, so bumping the version there installs afresh
# instead of reusing stale jars.
install_dir() {
    printf '%s/dynamodb-local/%s\n' "$LLMCHAT_CACHE_DIR" "$(sha256sum "$POM" | cut -c1-16)"
}

cmd_install() {
    local dir lockfd tmp mvn_log
    dir="$(install_dir)"
    [[ -f $dir/.complete ]] && return 0

    need_cmd java javac mvn
    mkdir -p "$(dirname "$dir")"
    # `make dev` and `make test` may install at the same time on a fresh machine.
    exec {lockfd}>"$dir.lock"
    flock "$lockfd"
    if [[ ! -f $dir/.complete ]]; then
        log "installing DynamoDB Local into $dir (first run only; downloads from Maven Central)"
        # Resolve into a temporary sibling and rename, so an interrupted run
        # never leaves a half-filled directory that looks installed.
        tmp="$(mktemp -d "$dir.tmp.XXXXXX")"
        mvn_log="$tmp.mvn.log"
        # Full Maven output goes to a log; only a download counter is shown.
        if ! mvn -B -f "$POM" dependency:copy-dependencies \
            -DoutputDirectory="$tmp" -Dmdep.stripVersion=true 2>&1 |
            awk -v logf="$mvn_log" '
                { print > logf; fflush(logf) }
                /Downloaded from/ { n++; if (n % 50 == 0) { printf "[llmchat]   ... %d files downloaded\n", n > "/dev/stderr" } }
            '; then
            print_log_tail "$mvn_log" 30
            rm -rf "$tmp" "$mvn_log"
            die "Maven could not resolve DynamoDB Local (see above)"
        fi
        if [[ ! -f $tmp/DynamoDBLocal.jar || ! -f $tmp/libsqlite4java-linux-amd64.so ]]; then
            rm -rf "$tmp" "$mvn_log"
            die "Maven finished but DynamoDBLocal.jar or libsqlite4java-linux-amd64.so is missing"
        fi
        touch "$tmp/.complete"
        rm -rf "$dir" "$mvn_log"
        mv "$tmp" "$dir"
        log "DynamoDB Local installed ($(find "$dir" -name '*.jar' | wc -l) jars)"
    fi
    exec {lockfd}>&-
}

# Compiles the loopback launcher against the installed jars, once per version
# of its source; prints the directory of its class.
launcher_classes() {
    local dir=$1 classes lockfd tmp
    classes="$dir/launcher-$(sha256sum "$LAUNCHER" | cut -c1-16)"
    if [[ ! -f $classes/$MAIN_CLASS.class ]]; then
        need_cmd javac
        exec {lockfd}>"$classes.lock"
        flock "$lockfd"
        if [[ ! -f $classes/$MAIN_CLASS.class ]]; then
            tmp="$(mktemp -d "$classes.tmp.XXXXXX")"
            javac -nowarn -cp "$dir/*" -d "$tmp" "$LAUNCHER" >&2 ||
                { rm -rf "$tmp"; die "could not compile $LAUNCHER"; }
            rm -rf "$classes"
            mv "$tmp" "$classes"
        fi
        exec {lockfd}>&-
    fi
    printf '%s\n' "$classes"
}

cmd_start() {
    (($# == 3)) || usage
    local port=$1 pidfile=$2 logfile=$3 dir classes pid code deadline
    valid_port "$port" || die "invalid port '$port'"
    cmd_install
    dir="$(install_dir)"
    classes="$(launcher_classes "$dir")"

    if [[ -f $pidfile ]] && pid_runs "$(<"$pidfile")" "$MAIN_CLASS"; then
        die "DynamoDB Local is already running (pid $(<"$pidfile"), pid file $pidfile); stop it with: $0 stop $pidfile"
    fi
    if port_in_use "$port"; then
        die "port $port is already in use; DynamoDB Local cannot start there"
    fi

    mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
    # setsid: own process group, so stop can signal the JVM and anything it
    # spawns, and a Ctrl-C meant for the caller does not kill it mid-cleanup.
    local -a storage=(-inMemory)
    if [[ -n ${DYNAMODB_DATA_DIR:-} ]]; then
        mkdir -p "$DYNAMODB_DATA_DIR"
        storage=(-dbPath "$DYNAMODB_DATA_DIR")
    fi
    setsid java -Djava.library.path="$dir" -cp "$classes:$dir/*" "$MAIN_CLASS" \
        "${storage[@]}" -sharedDb -port "$port" -disableTelemetry \
        </dev/null >"$logfile" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$pidfile"

    deadline=$((SECONDS + ${DYNAMODB_START_TIMEOUT:-60}))
    while :; do
        # Any HTTP answer (DynamoDB rejects the empty request) means it is serving.
        code="$(http_code POST "http://127.0.0.1:$port/")"
        if [[ $code != 000 ]]; then
            log "DynamoDB Local ready on http://127.0.0.1:$port (pid $pid, log $logfile)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pidfile"
            print_log_tail "$logfile"
            die "DynamoDB Local exited during startup (log: $logfile)"
        fi
        if ((SECONDS >= deadline)); then
            print_log_tail "$logfile"
            stop_pidfile "$pidfile" "$MAIN_CLASS" "DynamoDB Local"
            die "DynamoDB Local did not answer on port $port within ${DYNAMODB_START_TIMEOUT:-60}s (log: $logfile)"
        fi
        sleep 0.3
    done
}

cmd_stop() {
    (($# == 1)) || usage
    stop_pidfile "$1" "$MAIN_CLASS" "DynamoDB Local"
}

(($# >= 1)) || usage
sub=$1
shift
case "$sub" in
    install) (($# == 0)) || usage; cmd_install ;;
    dir) (($# == 0)) || usage; install_dir ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    *) usage ;;
esac
