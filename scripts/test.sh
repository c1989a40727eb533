#!/usr/bin/env bash
# Every check of the project, in the order a reviewer would run them:
#   rustfmt, clippy (warnings are errors), cfn-lint, `sam validate --lint` and checkov on
#   template.yaml, the OpenAPI description
#   checked by openapi-spec-validator, the whole workspace's
#   tests (embedded adapters, and the AWS adapters against a moto_server this script starts
#   on loopback), and the encryption test vectors checked by an independent Python
#   implementation.
#
# Needs: a Rust toolchain (rustup), python3 with the venv module, curl. Python tools are
# installed into .venv from scripts/requirements-dev.txt (once; again when that file changes).
# The console's browser test needs Debian's chromium and chromium-driver: installed with
# apt-get when missing (as root; otherwise the script says what to install).
#
# Arguments are passed to `cargo test`, e.g. `bash scripts/test.sh -- --nocapture`.
#
# WAPPLINE_SKIP_CARGO=1 skips every cargo step. It is for working on this script only (it
# checks nothing of the Rust code) and is never set in CI.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=.venv
REQUIREMENTS=scripts/requirements-dev.txt
STAMP="$VENV/.requirements.sha256"
# Cargo.lock is committed: builds must use exactly the locked versions.
LOCKED=--locked
SKIP_CARGO=${WAPPLINE_SKIP_CARGO:-0}

MOTO_PID=
MOTO_LOG=

# Each step says when it started (seconds since this script began), so a CI log shows where
# the minutes go.
step() { printf '\n==> [%4ds] %s\n' "$SECONDS" "$*"; }
fail() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

cleanup() {
    if [[ -n "$MOTO_PID" ]]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
        MOTO_PID=
    fi
    if [[ -n "$MOTO_LOG" ]]; then
        rm -f "$MOTO_LOG"
    fi
}
trap cleanup EXIT
# Turn signals into a normal exit so the EXIT trap stops moto_server in every case.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

python_tools() {
    step "python tools: $VENV from $REQUIREMENTS"
    command -v python3 >/dev/null || fail "python3 not found (install Python 3 with its venv module)"
    if ! "$VENV/bin/python" -c '' 2>/dev/null; then
        if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
            fail "python3 has no working venv module; on Debian/Ubuntu: apt-get install python3-venv"
        fi
        rm -rf "$VENV"
        python3 -m venv "$VENV" || fail "python3 -m venv $VENV failed"
    fi
    local want
    want=$("$VENV/bin/python" - "$REQUIREMENTS" <<'EOF'
import hashlib, sys
digest = hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()
print(f"{digest} python-{sys.version_info[0]}.{sys.version_info[1]}")
EOF
)
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
        echo "up to date"
    else
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
        printf '%s\n' "$want" >"$STAMP"
        echo "installed"
    fi
}

rust_components() {
    step "rust toolchain: rustfmt and clippy"
    command -v cargo >/dev/null || fail "cargo not found (install Rust with rustup)"
    if ! cargo fmt --version >/dev/null 2>&1; then
        command -v rustup >/dev/null || fail "rustfmt is missing and rustup is not available to add it"
        rustup component add rustfmt
    fi
    if ! cargo clippy --version >/dev/null 2>&1; then
        command -v rustup >/dev/null || fail "clippy is missing and rustup is not available to add it"
        rustup component add clippy
    fi
    cargo --version
    cargo fmt --version
    cargo clippy --version
}

browser() {
    step "chromium and chromedriver (the console's browser test)"
    if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
        if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
            fail "the console's browser test needs Debian's packages: apt-get install -y chromium chromium-driver"
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    fi
    chromium --version
    chromedriver --version
}

start_moto() {
    step "moto_server on loopback"
    local port
    port=$("$VENV/bin/python" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')
    MOTO_LOG=$(mktemp "${TMPDIR:-/tmp}/wappline-moto.XXXXXX")
    # The EXIT trap stops the server. On Linux the server also asks the kernel for SIGTERM
    # when this script dies (PR_SET_PDEATHSIG), which covers even a SIGKILL of the script.
    "$VENV/bin/python" -c '
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (AttributeError, OSError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit("test script already gone")
os.execv(sys.argv[2], sys.argv[2:])
' "$$" "$VENV/bin/python" scripts/moto_server.py 127.0.0.1 "$port" >"$MOTO_LOG" 2>&1 &
    MOTO_PID=$!
    local deadline=$((SECONDS + 30))
    # Any HTTP answer means the server is up.
    until curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; do
        if ! kill -0 "$MOTO_PID" 2>/dev/null; then
            cat "$MOTO_LOG" >&2
            MOTO_PID=
            fail "moto_server exited before answering (its log is above)"
        fi
        if ((SECONDS >= deadline)); then
            cat "$MOTO_LOG" >&2
            fail "moto_server did not answer on 127.0.0.1:$port within 30 s (its log is above)"
        fi
        sleep 0.5
    done
    export MOTO_ENDPOINT="http://127.0.0.1:$port"
    export AWS_ACCESS_KEY_ID=testing
    export AWS_SECRET_ACCESS_KEY=testing
    export AWS_DEFAULT_REGION=us-east-1
    export AWS_REGION=us-east-1
    echo "moto_server (pid $MOTO_PID) answers at $MOTO_ENDPOINT"
}

python_tools

if [[ "$SKIP_CARGO" == 1 ]]; then
    step "cargo steps skipped (WAPPLINE_SKIP_CARGO=1: for working on this script only)"
else
    rust_components

    step "cargo fmt --check"
    cargo fmt --all -- --check

    step "cargo clippy (warnings are errors)"
    cargo clippy --workspace --all-targets $LOCKED -- -D warnings
fi

step "cfn-lint template.yaml"
"$VENV/bin/cfn-lint" template.yaml

# SAM's own validation: the template is a valid SAM template and cfn-lint (with SAM's
# transform) finds nothing. It needs no AWS account: the dummy credentials and region only
# satisfy the CLI's configuration loading; no AWS API is called for this template.
step "sam validate --lint template.yaml"
AWS_ACCESS_KEY_ID=validate-only AWS_SECRET_ACCESS_KEY=validate-only AWS_SESSION_TOKEN= \
    AWS_DEFAULT_REGION=eu-central-1 AWS_REGION=eu-central-1 SAM_CLI_TELEMETRY=0 \
    "$VENV/bin/sam" validate --lint --template-file template.yaml

# The encryption and edge checks of issue 15 (decision 0035): SQS encryption, encrypted
# Lambda environment, function concurrency limits, API access logging, DynamoDB with our
# key. --skip-download keeps it offline (no guideline download).
step "checkov template.yaml (CKV_AWS_27, 173, 115, 95, 119)"
"$VENV/bin/checkov" --file template.yaml --framework cloudformation --skip-download \
    --compact --quiet --check CKV_AWS_27,CKV_AWS_173,CKV_AWS_115,CKV_AWS_95,CKV_AWS_119

step "docs/openapi.yaml is a valid OpenAPI description"
"$VENV/bin/python" - <<'PY'
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

spec, _ = read_from_filename("docs/openapi.yaml")
validate(spec)
print(f"valid: {len(spec['paths'])} paths")
PY
echo "no errors, no warnings"

start_moto

if [[ "$SKIP_CARGO" != 1 ]]; then
    browser
    step "cargo test (embedded adapters; AWS adapters against moto_server)"
    # Test threads get 8 MiB of stack instead of 2: in a debug build an AWS SDK call whose
    # credentials come from another SDK call (a tenant's session, decision 0037), awaited
    # deep inside a worker, nests two orchestrators whose unoptimised poll frames outgrew
    # 2 MiB in the IAM coverage scenario. Release builds (what Lambda runs) are far smaller.
    #
    # Three test threads a core, not cargo's one: the tests wait far more than they compute
    # (on moto_server, the Meta and Bitrix24 fakes, the local server's timers), and on 2 cores
    # the run takes about 300 s instead of about 430 s (decision 0123).
    RUST_MIN_STACK="${RUST_MIN_STACK:-8388608}" \
        RUST_TEST_THREADS="${RUST_TEST_THREADS:-$(($(nproc) * 3))}" \
        cargo test --workspace $LOCKED "$@"
fi

step "encryption test vectors (independent Python implementation)"
"$VENV/bin/python" tests/vectors/verify_vectors.py

if [[ "$SKIP_CARGO" == 1 ]]; then
    printf '\nnon-cargo checks passed; cargo steps were SKIPPED (WAPPLINE_SKIP_CARGO=1)\n'
else
    printf '\nall checks passed (%ds)\n' "$SECONDS"
fi
