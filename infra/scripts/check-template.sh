#!/usr/bin/env bash
# Offline checks of template.yaml (SPEC §11). No Docker, no AWS account.
#
#   1. sam validate --lint                      (cfn-lint on the SAM source)
#   2. aws-sam-translator -> cfn-lint           (the transformed CloudFormation:
#                                                finds cycles and IAM errors
#                                                that step 1 misses), once per
#                                                Architecture value and once with
#                                                the parameters sam-local.sh uses
#   3. pytest tests/template                    (exact IAM, routes, properties)
#
# Installs its tools into .venv-sam at the repo root on first use (aws-sam-cli
# pins boto3 exactly, which conflicts with moto's, so it gets its own venv).
# Exits non-zero on any failure, warnings included.
# --venv-only: just make sure .venv-sam exists with the pins below (sam-local.sh uses it).
set -euo pipefail

# TEMPLATE=path checks another template (e.g. a mutated copy); relative to the caller's cwd.
[[ -z "${TEMPLATE:-}" ]] || TEMPLATE="$(realpath -- "$TEMPLATE")"
cd "$(dirname "$0")/../.."
ROOT="$PWD"
VENV="$ROOT/.venv-sam"
TEMPLATE="${TEMPLATE:-$ROOT/template.yaml}"

# Versions that install together on Python 3.11 (aws-sam-cli 1.170.0 itself
# pins aws-sam-translator==1.115.0 and cfn-lint>=1.52,<1.59).
PINS="aws-sam-cli==1.170.0 aws-sam-translator==1.115.0 cfn-lint==1.58.0 pytest==9.2.0 PyYAML==6.0.4"

# No AWS calls are made; the region only satisfies boto3's lookups.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_EC2_METADATA_DISABLED=true
export SAM_CLI_TELEMETRY=0
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n==> %s\n' "$*"; }

ensure_venv() {
    if [[ -x "$VENV/bin/python" && -f "$VENV/.pins" && "$(cat "$VENV/.pins")" == "$PINS" ]]; then
        return
    fi
    local py
    py="$(command -v python3.11 || command -v python3 || true)"
    [[ -n "$py" ]] || { echo "check-template: python3 not found" >&2; exit 1; }
    step "installing $PINS into $VENV (first run only)"
    rm -f "$VENV/.pins"
    [[ -x "$VENV/bin/python" ]] || "$py" -m venv "$VENV"
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip install --quiet $PINS
    echo "$PINS" > "$VENV/.pins"
}

ensure_venv
[[ "${1:-}" != --venv-only ]] || exit 0
[[ -f "$TEMPLATE" ]] || { echo "check-template: $TEMPLATE not found" >&2; exit 1; }

# Every step runs, so one run shows every problem; any failure fails the script.
failed=()

step "sam validate --lint ($TEMPLATE)"
"$VENV/bin/sam" validate --lint --template-file "$TEMPLATE" || failed+=("sam validate --lint")

step "aws-sam-translator -> cfn-lint"
TRANSLATED="$VENV/translated.json"
rm -f "$TRANSLATED"
if "$VENV/bin/python" infra/scripts/sam_translate.py "$TEMPLATE" "$TRANSLATED"; then
    # cfn-lint resolves the parameters it is given (AllowedValues, and every property a
    # Ref to them reaches): the defaults, each Architecture, what sam-local.sh passes, and
    # the optional custom domain (domain + certificate; + Route 53 record and alarm e-mail;
    # + an IssuerUrl that wins over the domain's issuer).
    domain="DomainName=auth.example.com CertificateArn=arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
    for params in "" "Architecture=arm64" "Architecture=x86_64" \
                  "Architecture=x86_64 AwsEndpointUrl=http://172.30.253.1:4566" \
                  "$domain" \
                  "$domain HostedZoneId=Z0123456789ABCDEFGHIJ AlarmEmail=ops@example.com" \
                  "$domain HostedZoneId=Z0123456789ABCDEFGHIJ IssuerUrl=https://id.example.com/oauth"; do
        # shellcheck disable=SC2086
        if "$VENV/bin/cfn-lint" --format parseable ${params:+--parameters $params} -- "$TRANSLATED"; then
            echo "cfn-lint: translated template is clean (parameters: ${params:-defaults})"
        else
            failed+=("cfn-lint on the translated template (${params:-defaults})")
        fi
    done
else
    failed+=("sam translation")
fi

step "pytest tests/template"
TEMPLATE="$TEMPLATE" "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/template || failed+=("pytest tests/template")

if ((${#failed[@]})); then
    printf '\ncheck-template: FAILED: %s\n' "$(IFS=,; echo "${failed[*]}")" >&2
    exit 1
fi
printf '\ncheck-template: OK\n'
