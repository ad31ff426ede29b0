#!/usr/bin/env python3
"""Translate a SAM template to plain CloudFormation offline (no AWS calls).

Usage: sam_translate.py TEMPLATE [OUTPUT]   (OUTPUT defaults to stdout, JSON)

`sam validate` without --lint translates too, but asks IAM for the list of
managed policies (credentials needed). Here the managed-policy map is a fixed
table of the only AWS managed policy SAM attaches to our functions, so the
translation runs on any machine. cfn-lint then checks the translated template,
which catches what linting the SAM source cannot: dependency cycles between the
generated resources and malformed IAM policies.
"""

import json
import os
import sys

# The translator asks boto3 for a region to pick the partition; no call is made.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflineManagedPolicyLoader(ManagedPolicyLoader):
    """Managed-policy map without calling IAM ListPolicies."""

    POLICIES = {
        "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    }

    def __init__(self) -> None:  # no IAM client
        self._policy_map = dict(self.POLICIES)

    def load(self) -> dict:
        return dict(self.POLICIES)


def _replace_local_codeuri(sam: dict) -> None:
    """Point local CodeUri paths at a placeholder S3 object, as `sam validate`
    does: the translator only accepts S3 locations (sam package uploads)."""
    sections = [r.get("Properties") or {} for r in (sam.get("Resources") or {}).values()
                if r.get("Type") == "AWS::Serverless::Function"]
    sections.append((sam.get("Globals") or {}).get("Function") or {})
    for props in sections:
        uri = props.get("CodeUri")
        if isinstance(uri, str) and not uri.startswith("s3://"):
            props["CodeUri"] = "s3://placeholder-bucket/code.zip"


def translate(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        sam = yaml_parse(f.read())
    _replace_local_codeuri(sam)
    params = {"AWS::Region": os.environ["AWS_DEFAULT_REGION"]}
    return transform(sam, params, OfflineManagedPolicyLoader())


def main(argv: list) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        cfn = translate(argv[1])
    except Exception as e:  # InvalidDocumentException carries the causes
        causes = getattr(e, "causes", None)
        print(f"sam translation failed: {e}", file=sys.stderr)
        for c in causes or []:
            print(f"  - {c}", file=sys.stderr)
        return 1
    text = json.dumps(cfn, indent=2, sort_keys=True) + "\n"
    if len(argv) == 3:
        with open(argv[2], "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
