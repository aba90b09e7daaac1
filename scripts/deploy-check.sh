#!/usr/bin/env bash
# `make deploy-check`: everything about deploying that can be checked without
# an AWS account. Lints template.yaml with cfn-lint and `sam validate --lint`,
# then builds every function for arm64 Lambda (release profile) and checks
# that each bootstrap is an aarch64 executable.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LLMCHAT_ROOT"
ensure_dev_tools
ensure_deploy_tools

need_cmd cargo rustup python3
# Every function crate, and nothing else of the workspace (tools, tests).
mapfile -t FUNCTIONS < <(function_packages)
FUNCTION_PACKAGES=()
for f in "${FUNCTIONS[@]}"; do FUNCTION_PACKAGES+=(-p "$f"); done

# sam and cfn-lint need a region and credentials to exist, never to be valid.
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=deploy-check AWS_SECRET_ACCESS_KEY=deploy-check
export SAM_CLI_TELEMETRY=0

log "cfn-lint template.yaml"
cfn-lint template.yaml
log "sam validate --lint"
sam validate --lint --template template.yaml

rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
log "cargo lambda build --release --arm64 (every function)"
cargo lambda build --release --arm64 "${FUNCTION_PACKAGES[@]}"

status=0
for f in "${FUNCTIONS[@]}"; do
    bootstrap="target/lambda/$f/bootstrap"
    if [[ ! -f $bootstrap ]]; then
        log "missing $bootstrap"
        status=1
        continue
    fi
    # ELF header: class 64-bit (byte 5 = 2), machine EM_AARCH64 (bytes 19-20 = 0xb7 0x00).
    machine="$(od -An -tx1 -j18 -N2 "$bootstrap" | tr -d ' \n')"
    if [[ $machine != b700 ]]; then
        log "$bootstrap is not an aarch64 executable (machine $machine)"
        status=1
        continue
    fi
    printf '  %-16s %6s KiB  aarch64\n' "$f" "$(du -k "$bootstrap" | cut -f1)"
done
((status == 0)) && log "deploy-check passed"
exit "$status"
