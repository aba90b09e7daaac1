#!/usr/bin/env bash
# `make figures`: size of each function's arm64 bootstrap (the deployed
# artifact) and a local cold-start figure per function: from process start
# until the function asks the Lambda runtime API for its first invocation,
# i.e. configuration read, logging set up and clients built. Measured on the
# x86_64 release build of the same code, against a stand-in runtime API, the
# median of RUNS starts. Prints a Markdown table.
#
# Env: RUNS (default 15).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LLMCHAT_ROOT"
ensure_dev_tools

# Every function crate, and nothing else of the workspace (tools, tests).
mapfile -t FUNCTIONS < <(function_packages)
FUNCTION_PACKAGES=()
for f in "${FUNCTIONS[@]}"; do FUNCTION_PACKAGES+=(-p "$f"); done

RUNS="${RUNS:-15}"

log "building release bootstraps for arm64 (deployed) and x86_64 (measured here)"
cargo lambda build --release --arm64 "${FUNCTION_PACKAGES[@]}" >&2
CARGO_TARGET_DIR=target/x86 cargo lambda build --release "${FUNCTION_PACKAGES[@]}" >&2

cold_start_ms() { # BINARY: median milliseconds from exec to the first /invocation/next
    python3 - "$1" "$RUNS" <<'PY'
import http.server, os, socketserver, statistics, subprocess, sys, threading, time

binary, runs = sys.argv[1], int(sys.argv[2])
first_poll = threading.Event()

class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            first_poll.set()
        # Never hand out an invocation: the figure ends at the first poll.
        time.sleep(5)
    def log_message(self, *args):
        pass

server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), RuntimeApi)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
env = dict(os.environ,
           AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
           AWS_LAMBDA_FUNCTION_NAME="figures", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
           AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_LAMBDA_LOG_STREAM_NAME="figures",
           AWS_LAMBDA_LOG_GROUP_NAME="figures", AWS_REGION="us-east-1",
           AWS_ACCESS_KEY_ID="figures", AWS_SECRET_ACCESS_KEY="figures",
           LLMCHAT_TABLE_NAME="figures", RUST_LOG="off")
samples = []
for _ in range(runs):
    first_poll.clear()
    started = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not first_poll.wait(10):
        proc.kill()
        sys.exit(f"{binary} never polled for an invocation")
    samples.append((time.perf_counter() - started) * 1000)
    proc.kill()
    proc.wait()
print(f"{statistics.median(samples):.1f}")
PY
}

echo "| function | arm64 bootstrap | cold start to first poll (x86_64, median of $RUNS) |"
echo "|---|---|---|"
for f in "${FUNCTIONS[@]}"; do
    arm="target/lambda/$f/bootstrap"
    x86="target/x86/lambda/$f/bootstrap"
    size="$(du -k "$arm" | cut -f1)"
    echo "| $f | $(awk -v k="$size" 'BEGIN { printf "%.1f MiB", k / 1024 }') | $(cold_start_ms "$x86") ms |"
done
