#!/usr/bin/env bash
# `make figures-durable`: figures for durable replies (the follower's lag, a
# reply's writes per 1,000 tokens), measured in process by the example
# tests/examples/durable_figures.rs against a private, in-memory DynamoDB
# Local on a free port and a scripted Ollama. Prints a Markdown section.
#
#   figures-durable.sh            print the figures
#   figures-durable.sh --write    also put them into docs/FIGURES.md, between
#                                 its durable-figures begin and end markers
#
# Env: DURABLE_FIGURES_SHORT=1 (a short form of a few seconds, which CI runs
# so that the benchmark cannot rot), DYNAMODB_START_TIMEOUT (seconds, 60).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LLMCHAT_ROOT"

FIGURES="$LLMCHAT_ROOT/docs/FIGURES.md"
BEGIN_MARK='<!-- durable-figures:begin -->'
END_MARK='<!-- durable-figures:end -->'

write=0
case "$*" in
    "") ;;
    --write) write=1 ;;
    *) die "usage: $0 [--write]" ;;
esac
if ((write)); then
    if ! grep -qxF "$BEGIN_MARK" "$FIGURES" || ! grep -qxF "$END_MARK" "$FIGURES"; then
        die "docs/FIGURES.md has no lines '$BEGIN_MARK' and '$END_MARK' to write between"
    fi
fi

need_cmd cargo java mvn curl python3 setsid pgrep
"$LLMCHAT_ROOT/scripts/dynamodb-local.sh" install
# Compiled before anything is timed, so the build's load is over when the figures are taken.
log "building the example durable_figures"
cargo build -q -p llmchat-tests --example durable_figures

start_private_dynamodb figures-durable

# The command the figures name.
command="scripts/figures-durable.sh"
if ((write)); then command="make figures-durable"; fi
if [[ -n ${DURABLE_FIGURES_SHORT:-} && ${DURABLE_FIGURES_SHORT} != 0 ]]; then
    command="DURABLE_FIGURES_SHORT=$DURABLE_FIGURES_SHORT $command"
fi
export DURABLE_FIGURES_COMMAND="$command"

# Timings on a busy machine are the machine's: say so (the figures print the load average too).
if pgrep -x rustc >/dev/null || pgrep -f 'cargo test' >/dev/null; then
    log "warning: another build or test run is going on; the figures will show its load"
fi
log "measuring (DynamoDB Local at $LLMCHAT_TEST_DYNAMODB_ENDPOINT)"
cargo run -q -p llmchat-tests --example durable_figures >"$RUN_DIR/figures.md"
cat "$RUN_DIR/figures.md"

if ((write)); then
    python3 - "$FIGURES" "$RUN_DIR/figures.md" "$BEGIN_MARK" "$END_MARK" <<'PY'
import os, sys
path, figures, begin, end = sys.argv[1:]
lines = open(path, encoding="utf-8").read().split("\n")
if lines.count(begin) != 1 or lines.count(end) != 1 or lines.index(begin) > lines.index(end):
    sys.exit(f"{path}: expected one '{begin}' line, then one '{end}' line")
new = open(figures, encoding="utf-8").read().rstrip("\n").split("\n")
lines[lines.index(begin) + 1 : lines.index(end)] = new
tmp = f"{path}.tmp"
with open(tmp, "w", encoding="utf-8") as f:
    f.write("\n".join(lines))
os.replace(tmp, path)
PY
    log "wrote the figures into ${FIGURES#"$LLMCHAT_ROOT"/}"
fi
