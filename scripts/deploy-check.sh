#!/usr/bin/env bash
# `make deploy-check`: everything about deploying that can be checked without
# an AWS account. Lints template.yaml with cfn-lint and `sam validate --lint`,
# then builds every function for arm64 Lambda (release profile), checks that
# each bootstrap is an aarch64 executable of at most MAX_BOOTSTRAP_MIB, and
# prints its size and the size of its package zipped as SAM zips it.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LLMCHAT_ROOT"
ensure_dev_tools
ensure_deploy_tools

need_cmd cargo rustup python3
# The largest bootstrap allowed, in MiB: a smaller package is downloaded and
# started sooner on a cold start. What keeps them under it (TLS and crypto
# stacks, features, profile) is in docs/DEPLOY.md, "Package size".
MAX_BOOTSTRAP_MIB=6
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

mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
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
    # The deployment package: a zip holding `bootstrap`, deflated.
    read -r bytes zipped < <(python3 - "$bootstrap" <<'PY'
import io, os, sys, zipfile
package = io.BytesIO()
with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as z:
    z.write(sys.argv[1], "bootstrap")
print(os.path.getsize(sys.argv[1]), len(package.getvalue()))
PY
)
    verdict=ok
    if ((bytes > MAX_BOOTSTRAP_MIB * 1024 * 1024)); then
        verdict="over $MAX_BOOTSTRAP_MIB MiB"
        status=1
    fi
    printf '  %-16s bootstrap %5s MiB  zipped %5s MiB  aarch64  %s\n' "$f" "$(mib "$bytes")" "$(mib "$zipped")" "$verdict"
done
((status == 0)) && log "deploy-check passed (every bootstrap at most $MAX_BOOTSTRAP_MIB MiB)"
((status == 0)) || log "deploy-check failed"
exit "$status"
