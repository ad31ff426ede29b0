"""Checks of template.yaml against SPEC §2, §3, §6, §7, §11 and §12, and issue #13 (rotation
schedule, alarms, dashboard, custom domain).

Run by infra/scripts/check-template.sh (in .venv-sam, which has PyYAML and
aws-sam-translator). TEMPLATE=path overrides the template, so a mutated copy
can be checked: every test here must fail on the matching mutation.
"""

import copy
import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = Path(os.environ.get("TEMPLATE", REPO / "template.yaml"))

API = "HttpApi"
TABLE = "Table"
SECRET = "SigningKeysSecret"
TABLE_ARN = {"Fn::GetAtt": [TABLE, "Arn"]}
SECRET_REF = {"Ref": SECRET}

FUNCTIONS = {  # logical id -> cargo-lambda binary
    "TokenFunction": "token",
    "TokenInfoFunction": "tokeninfo",
    "DiscoveryFunction": "discovery",
    "AuthorizeFunction": "authorize",
    "RotateFunction": "rotate",
}

# Secrets Manager's rotation function (SPEC §6): invoked by Secrets Manager, never by the API,
# and the only function that may write the signing-key secret.
ROTATE = "RotateFunction"
API_FUNCTIONS = [name for name in FUNCTIONS if name != ROTATE]


def leading_keys(*prefixes):
    """IAM condition: every partition key the request touches starts with one of `prefixes`."""
    return {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [p + "*" for p in prefixes]}}


# (function, action) -> the only Condition it may be granted under; every other grant (the
# reads, GetSecretValue) has none. SPEC §7 / §11: each write is limited to the key prefixes
# its function owns.
CONDITIONS = {
    # The token function: new refresh families, revoked access-token markers and used
    # private_key_jwt assertions (first_use: PutItem, attribute_not_exists) ...
    ("TokenFunction", "dynamodb:PutItem"): leading_keys("rfam#", "revoked#", "jti#", "dpop#", "par#"),
    # ... rotation / revocation of families, the password and client failure counters, and
    # redemption of authorization codes (one conditional UpdateItem marks a code consumed).
    ("TokenFunction", "dynamodb:UpdateItem"):
        leading_keys("rfam#", "lock#user#", "lock#client#", "code#"),
    # Introspection counts failed client authentications and spends assertions; nothing else.
    ("TokenInfoFunction", "dynamodb:UpdateItem"): leading_keys("lock#client#"),
    ("TokenInfoFunction", "dynamodb:PutItem"): leading_keys("jti#", "dpop#"),
    # Browser sign-in (SPEC §12): login transactions, sessions, codes and consent; logout
    # buries the session's refresh families (bury_family: PutItem, attribute_not_exists) ...
    ("AuthorizeFunction", "dynamodb:PutItem"):
        leading_keys("authz#", "sess#", "code#", "consent#", "rfam#"),
    # ... a form completes once (finish_transaction), a login or logout ends a session ...
    ("AuthorizeFunction", "dynamodb:DeleteItem"): leading_keys("authz#", "sess#", "par#"),
    # ... a session slides (touch_session) and lists its families (add_session_family), the
    # login form counts failures per username, and logout revokes existing families.
    ("AuthorizeFunction", "dynamodb:UpdateItem"): leading_keys("sess#", "rfam#", "lock#user#"),
}

# Written by oauthctl alone (an operator with admin credentials): no function may write them,
# so a compromised function cannot plant a known client secret or a user.
ADMIN_PREFIXES = ("client#", "user#", "uid#")

# DynamoDB actions that do not write; every other dynamodb action counts as a write.
DYNAMODB_READS = {"dynamodb:getitem", "dynamodb:batchgetitem"}

# A key-prefix pattern: literal segments ending in '#', then one '*' (no '?', no policy variables).
_PREFIX_PATTERN = re.compile(r"^((?:[a-z]+#)+)\*$")

# SPEC §3: (method, path) -> function
ROUTES = {
    ("POST", "/oauth/v2/token"): "TokenFunction",
    ("POST", "/oauth/v2/revoke"): "TokenFunction",
    # RFC 9126: pushed authorization requests are client-authenticated, like the token endpoint.
    ("POST", "/oauth/v2/par"): "TokenFunction",
    ("POST", "/oauth2/token"): "TokenFunction",
    ("POST", "/api/id/v1/auth/token"): "TokenFunction",
    ("POST", "/oauth/v2/tokeninfo"): "TokenInfoFunction",
    ("GET", "/oauth/v2/tokeninfo"): "TokenInfoFunction",
    ("GET", "/oauth/v2/userinfo"): "TokenInfoFunction",
    ("POST", "/oauth/v2/userinfo"): "TokenInfoFunction",
    ("GET", "/oauth/.well-known/openid-configuration"): "DiscoveryFunction",
    ("GET", "/.well-known/oauth-authorization-server/oauth"): "DiscoveryFunction",
    ("GET", "/oauth/v2/jwks"): "DiscoveryFunction",
    # SPEC §12: the authorization endpoint, seed 002's alias, the login and consent forms,
    # RP-Initiated Logout.
    ("GET", "/oauth/v2/authorize"): "AuthorizeFunction",
    ("POST", "/oauth/v2/authorize"): "AuthorizeFunction",
    ("GET", "/oauth/v2/ui/authorize"): "AuthorizeFunction",
    ("POST", "/oauth/v2/ui/authorize"): "AuthorizeFunction",
    ("POST", "/oauth/v2/authorize/login"): "AuthorizeFunction",
    ("POST", "/oauth/v2/authorize/consent"): "AuthorizeFunction",
    ("GET", "/oauth/v2/logout"): "AuthorizeFunction",
    ("POST", "/oauth/v2/logout"): "AuthorizeFunction",
}

# SPEC §11: action -> resource, per function; nothing else.
IAM = {
    "TokenFunction": {
        "dynamodb:GetItem": TABLE_ARN,
        "dynamodb:BatchGetItem": TABLE_ARN,
        "dynamodb:PutItem": TABLE_ARN,  # only under CONDITIONS above
        "dynamodb:UpdateItem": TABLE_ARN,  # only under CONDITIONS above
        "secretsmanager:GetSecretValue": SECRET_REF,
    },
    "TokenInfoFunction": {
        "dynamodb:GetItem": TABLE_ARN,
        "dynamodb:BatchGetItem": TABLE_ARN,
        "dynamodb:PutItem": TABLE_ARN,  # only under CONDITIONS above
        "dynamodb:UpdateItem": TABLE_ARN,  # only under CONDITIONS above
        "secretsmanager:GetSecretValue": SECRET_REF,
    },
    "DiscoveryFunction": {
        "secretsmanager:GetSecretValue": SECRET_REF,
    },
    # Reads are one BatchGetItem each (TokenRecords::read), never GetItem; the key set verifies
    # a logout's id_token_hint.
    "AuthorizeFunction": {
        "dynamodb:BatchGetItem": TABLE_ARN,
        "dynamodb:PutItem": TABLE_ARN,  # only under CONDITIONS above
        "dynamodb:DeleteItem": TABLE_ARN,  # only under CONDITIONS above
        "dynamodb:UpdateItem": TABLE_ARN,  # only under CONDITIONS above
        "secretsmanager:GetSecretValue": SECRET_REF,
    },
    # What SecretsRotation (shared/src/storage/secrets.rs) calls, on the secret only; no
    # DynamoDB at all.
    "RotateFunction": {
        "secretsmanager:DescribeSecret": SECRET_REF,  # stages(): labels, rotation enabled
        "secretsmanager:GetSecretValue": SECRET_REF,  # at_stage(), pending()
        "secretsmanager:PutSecretValue": SECRET_REF,  # put_pending(): AWSPENDING only
        "secretsmanager:UpdateSecretVersionStage": SECRET_REF,  # make_current()
    },
}

# Secrets Manager actions that change nothing; every other secretsmanager action (and any
# wildcard) counts as a write. IAM action names are case-insensitive.
SECRETSMANAGER_READS = {"secretsmanager:getsecretvalue", "secretsmanager:describesecret",
                        "secretsmanager:listsecretversionids", "secretsmanager:getresourcepolicy",
                        "secretsmanager:listsecrets", "secretsmanager:batchgetsecretvalue",
                        "secretsmanager:getrandompassword"}
# The rotate function's writes, and the one read every other function has.
SECRET_WRITES = {"secretsmanager:putsecretvalue", "secretsmanager:updatesecretversionstage"}
SECRET_READ = "secretsmanager:getsecretvalue"

# ISSUER: IssuerUrl when set, else the custom domain's https://<DomainName>/oauth, else empty
# (per request, from the API Gateway request context).
ISSUER_VALUE = {"Fn::If": ["HasIssuerUrl", {"Ref": "IssuerUrl"},
                           {"Fn::If": ["HasCustomDomain", {"Fn::Sub": "https://${DomainName}/oauth"}, ""]}]}

ENV_VARS = {"TABLE_NAME", "SIGNING_KEYS_SECRET_ID", "ISSUER", "ACCESS_TOKEN_ALG",
            "MAX_TOKEN_TTL", "KEY_CACHE_SECONDS", "API_KEY_HEADER", "LOCKOUT_THRESHOLD",
            "LOCKOUT_WINDOW_SECONDS", "DPOP_NONCE_REQUIRED", "REQUIRE_PAR", "DYNAMODB_SDK_ONLY"}

# Read by the authorize function alone (sessions and the login page's look, SPEC §12):
# variable -> the parameter that sets it.
SIGN_IN_ENV_VARS = {
    "SESSION_IDLE_SECONDS": "SessionIdleSeconds",
    "SESSION_MAX_SECONDS": "SessionMaxSeconds",
    "LOGIN_TITLE": "LoginTitle",
    "LOGIN_LOGO_URL": "LoginLogoUrl",
    "LOGIN_EXTRA_CSS": "LoginExtraCss",
}


# --- loading -----------------------------------------------------------------

class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags into long form."""


def _construct_tag(loader, tag_suffix, node):
    name = "Ref" if tag_suffix == "Ref" else "Fn::" + tag_suffix
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":  # !GetAtt A.B -> ["A", "B"]
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path=TEMPLATE):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_CfnLoader)


@pytest.fixture(scope="module")
def tpl():
    return load_template()


@pytest.fixture(scope="module")
def translated():
    """The template after the SAM transform (plain CloudFormation)."""
    pytest.importorskip("samtranslator")
    sys.path.insert(0, str(REPO / "infra" / "scripts"))
    try:
        import sam_translate
    finally:
        sys.path.pop(0)
    return sam_translate.translate(str(TEMPLATE))


# --- helpers -----------------------------------------------------------------

def _merge(global_value, local_value):
    """SAM Globals semantics: maps merge (local wins), anything else is replaced."""
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        out = copy.deepcopy(global_value)
        for k, v in local_value.items():
            out[k] = _merge(out[k], v) if k in out else copy.deepcopy(v)
        return out
    return copy.deepcopy(local_value)


def function_props(tpl, name):
    """A function's effective Properties, Globals.Function merged in."""
    res = tpl["Resources"][name]
    assert res["Type"] == "AWS::Serverless::Function", name
    glob = (tpl.get("Globals") or {}).get("Function") or {}
    return _merge(glob, res.get("Properties") or {})


_SUB_VAR = re.compile(r"\$\{([A-Za-z0-9:]+)(?:\.[^}]*)?\}")


def references(node):
    """Logical ids / parameters that a template fragment refers to."""
    found = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::GetAtt":
                target = v.split(".", 1)[0] if isinstance(v, str) else v[0]
                if isinstance(target, str):
                    found.add(target)
            elif k == "Fn::Sub":
                text, variables = (v, {}) if isinstance(v, str) else (v[0], v[1] if len(v) > 1 else {})
                if isinstance(text, str):
                    found |= set(_SUB_VAR.findall(text)) - set(variables)
                found |= references(variables)
            if k != "Ref":
                found |= references(v)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return found


def dependencies(resources, start):
    """Every resource `start` depends on, directly or not (Ref/GetAtt/Sub/DependsOn)."""
    seen, todo = set(), [start]
    while todo:
        res = resources[todo.pop()]
        deps = references(res.get("Properties") or {})
        depends_on = res.get("DependsOn") or []
        deps |= set([depends_on] if isinstance(depends_on, str) else depends_on)
        for d in deps:
            if d in resources and d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def policy_statements(props, name):
    policies = props.get("Policies")
    assert isinstance(policies, list) and policies, f"{name}: Policies must be a list of inline policies"
    statements = []
    for p in policies:
        assert isinstance(p, dict) and set(p) <= {"Version", "Statement"}, \
            f"{name}: only inline policy documents allowed, no SAM policy templates or managed policies: {p!r}"
        st = p["Statement"]
        statements += st if isinstance(st, list) else [st]
    return statements


def as_list(x):
    return x if isinstance(x, list) else [x]


def is_dynamodb_write(action):
    # IAM action names are case-insensitive.
    return action.lower().startswith("dynamodb:") and action.lower() not in DYNAMODB_READS


def check_write_statements(name, statements):
    """Every statement of `name` that grants a DynamoDB write: writes only, under exactly
    ForAllValues:StringLike on dynamodb:LeadingKeys, whose patterns are whole key prefixes
    (`<prefix>#*`) that can match no oauthctl-owned key. Returns {action: [prefixes]}."""
    found = {}
    for st in statements:
        actions = as_list(st["Action"])
        writes = [a for a in actions if is_dynamodb_write(a)]
        if not writes:
            continue
        assert writes == actions, f"{name}: reads and writes in one statement: {st}"
        condition = st.get("Condition")
        assert condition is not None, f"{name}: write without a condition: {st}"
        assert set(condition) == {"ForAllValues:StringLike"}, \
            f"{name}: writes must be conditioned by ForAllValues:StringLike only: {st}"
        assert set(condition["ForAllValues:StringLike"]) == {"dynamodb:LeadingKeys"}, st
        patterns = as_list(condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"])
        assert patterns, st
        prefixes = []
        for pattern in patterns:
            m = _PREFIX_PATTERN.match(pattern)
            assert m, f"{name}: {pattern!r} is not a key prefix `<prefix>#*`"
            prefix = m.group(1)
            for admin in ADMIN_PREFIXES:
                assert not (prefix.startswith(admin) or admin.startswith(prefix)), \
                    f"{name}: {pattern!r} can write {admin}… items, which only oauthctl writes"
            prefixes.append(prefix)
        for action in writes:
            assert action not in found, f"{name}: {action} granted twice"
            found[action] = sorted(prefixes)
    return found


def expected_write_prefixes(name):
    return {action: sorted(p[:-1] for p in cond["ForAllValues:StringLike"]["dynamodb:LeadingKeys"])
            for (fn, action), cond in CONDITIONS.items() if fn == name and is_dynamodb_write(action)}


# --- functions (§1, §11) -------------------------------------------------------

def test_exactly_five_functions(tpl):
    funcs = {k for k, v in tpl["Resources"].items()
             if v["Type"] in ("AWS::Serverless::Function", "AWS::Lambda::Function")}
    assert funcs == set(FUNCTIONS)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_properties(tpl, name):
    props = function_props(tpl, name)
    assert props["CodeUri"] == "."
    assert props["Handler"] == "bootstrap"
    assert props["Runtime"] == "provided.al2023"
    assert props["Architectures"] == [{"Ref": "Architecture"}]
    assert tpl["Resources"][name]["Metadata"] == {
        "BuildMethod": "rust-cargolambda",
        "BuildProperties": {"Binary": FUNCTIONS[name]},
    }


def test_architecture_parameter(tpl):
    """arm64 unless a deploy (or sam-local.sh, on an x86 machine) says x86_64; nothing else."""
    param = tpl["Parameters"]["Architecture"]
    assert param["Type"] == "String"
    assert param["Default"] == "arm64"
    assert param["AllowedValues"] == ["arm64", "x86_64"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_translated_function_architecture_is_the_parameter(translated, name):
    props = translated["Resources"][name]["Properties"]
    assert props["Architectures"] == [{"Ref": "Architecture"}]
    assert translated["Parameters"]["Architecture"]["Default"] == "arm64"


# What infra/scripts/sam-local.sh passes to `sam local start-api --env-vars` (CloudFormation
# parameter-file shape: one set for every function).
SAM_LOCAL_ENV_VARS = {
    "TABLE_NAME": "oauth-sam",
    "SIGNING_KEYS_SECRET_ID": "oauth-sam-keys",
    "ISSUER": "http://127.0.0.1:3000/oauth",
    "AWS_ENDPOINT_URL": "http://172.30.253.1:4566",
}


_SAM_LOCAL_FUNCTIONS = {}


def _sam_local_functions(parameter_overrides=None):
    """The functions as SAM CLI's own provider reads them for `sam build` / `sam local`."""
    pytest.importorskip("samcli")
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    key = tuple(sorted((parameter_overrides or {}).items()))
    if key not in _SAM_LOCAL_FUNCTIONS:
        stacks, _ = SamLocalStackProvider.get_stacks(str(TEMPLATE), parameter_overrides=parameter_overrides)
        _SAM_LOCAL_FUNCTIONS[key] = {f.name: f for f in SamFunctionProvider(stacks).get_all()}
    return _SAM_LOCAL_FUNCTIONS[key]


# SAM CLI runs the translator's deprecated validator API: its warnings are not ours.
SAM_CLI_WARNINGS = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@SAM_CLI_WARNINGS
@pytest.mark.parametrize("overrides, expected", [
    (None, "arm64"),
    ({"Architecture": "arm64"}, "arm64"),
    ({"Architecture": "x86_64"}, "x86_64"),
])
def test_sam_cli_resolves_the_architecture(overrides, expected):
    """`sam build` / `sam local --parameter-overrides Architecture=x86_64` (sam-local.sh) build
    and run x86_64 functions; without it every function is arm64."""
    functions = _sam_local_functions(overrides)
    assert set(functions) == set(FUNCTIONS)
    for name, fn in functions.items():
        assert fn.architectures == [expected], name
        assert fn.architecture == expected, name


def _sam_local_environment(fn, env_vars_values, monkeypatch):
    """The environment `sam local` gives fn's container (SAM CLI's own resolution), with
    dummy credentials in the shell as sam-local.sh sets them."""
    from samcli.commands.local.lib.local_lambda import LocalLambdaRunner

    for k in list(os.environ):
        if k.startswith("AWS_") or k in SAM_LOCAL_ENV_VARS:
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    runner = LocalLambdaRunner(local_runtime=None, function_provider=None, cwd=str(REPO),
                               real_path=str(REPO), aws_region="us-east-1",
                               env_vars_values=env_vars_values)
    return runner._make_env_vars(fn).resolve()


@SAM_CLI_WARNINGS
@pytest.mark.parametrize("name", FUNCTIONS)
def test_sam_local_env_vars_reach_every_function(name, monkeypatch):
    """`--env-vars` only overrides variables the template declares: each one sam-local.sh sets
    (AWS_ENDPOINT_URL included, declared through the HasAwsEndpointUrl condition) reaches the
    container, and the credentials are the shell's dummy ones."""
    fn = _sam_local_functions({"Architecture": "x86_64"})[name]
    env = _sam_local_environment(fn, {"Parameters": dict(SAM_LOCAL_ENV_VARS)}, monkeypatch)
    for k, v in SAM_LOCAL_ENV_VARS.items():
        assert env.get(k) == v, (k, env.get(k))
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_REGION"] == "us-east-1"
    # Without the file nothing points at an emulator (on AWS the variable is absent: Fn::If).
    env = _sam_local_environment(fn, {}, monkeypatch)
    assert not env.get("AWS_ENDPOINT_URL"), env.get("AWS_ENDPOINT_URL")
    # The AwsEndpointUrl parameter alone does not reach a container either: sam local leaves the
    # Fn::If unresolved (declared, blank), so the --env-vars file is what sets it (docs §5).
    fn = _sam_local_functions({"Architecture": "x86_64",
                               "AwsEndpointUrl": SAM_LOCAL_ENV_VARS["AWS_ENDPOINT_URL"]})[name]
    env = _sam_local_environment(fn, {}, monkeypatch)
    assert not env.get("AWS_ENDPOINT_URL"), env.get("AWS_ENDPOINT_URL")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_translated_endpoint_override_is_absent_by_default(translated, name):
    """After the transform AWS_ENDPOINT_URL is still conditional: a deploy that leaves
    AwsEndpointUrl empty gives the functions no such variable."""
    env = translated["Resources"][name]["Properties"]["Environment"]["Variables"]
    assert env["AWS_ENDPOINT_URL"] == \
        {"Fn::If": ["HasAwsEndpointUrl", {"Ref": "AwsEndpointUrl"}, {"Ref": "AWS::NoValue"}]}
    assert translated["Conditions"]["HasAwsEndpointUrl"] == \
        {"Fn::Not": [{"Fn::Equals": [{"Ref": "AwsEndpointUrl"}, ""]}]}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_environment(tpl, name):
    env = function_props(tpl, name)["Environment"]["Variables"]
    assert ENV_VARS <= set(env), ENV_VARS - set(env)
    assert env["TABLE_NAME"] == {"Ref": TABLE}
    assert env["SIGNING_KEYS_SECRET_ID"] == SECRET_REF
    assert env["ISSUER"] == ISSUER_VALUE
    # The rotation policy (SPEC §6) is the deployed stack's.
    assert env["KEY_CACHE_SECONDS"] == {"Ref": "KeyCacheSeconds"}
    assert env["MAX_TOKEN_TTL"] == {"Ref": "MaxTokenTtl"}
    # Declared (so `sam local --env-vars` can set it) but absent on AWS by default.
    assert env.get("AWS_ENDPOINT_URL") == \
        {"Fn::If": ["HasAwsEndpointUrl", {"Ref": "AwsEndpointUrl"}, {"Ref": "AWS::NoValue"}]}
    assert tpl["Parameters"]["AwsEndpointUrl"]["Default"] == ""
    assert tpl["Parameters"]["IssuerUrl"]["Default"] == ""
    alg = tpl["Parameters"]["AccessTokenAlg"]
    assert alg["Default"] == "RS256" and sorted(alg["AllowedValues"]) == ["ES256", "EdDSA", "RS256"]


@pytest.mark.parametrize("param", ["MaxTokenTtl", "KeyCacheSeconds", "LockoutThreshold",
                                   "LockoutWindowSeconds", "SessionIdleSeconds",
                                   "SessionMaxSeconds"])
def test_numeric_settings_cannot_take_values_the_functions_reject(tpl, param):
    """Config::from_env refuses 0 and negatives for these: a deploy must not be able to pass
    a value that makes every cold start exit."""
    assert tpl["Parameters"][param]["MinValue"] >= 1


def test_lockout_settings_are_parameters(tpl):
    """Deploy-time lockout settings; defaults match the code's (5 / 15 min)."""
    params = tpl["Parameters"]
    assert params["LockoutThreshold"]["Default"] == 5
    assert params["LockoutWindowSeconds"]["Default"] == 900
    for name in FUNCTIONS:
        env = function_props(tpl, name)["Environment"]["Variables"]
        assert env["LOCKOUT_THRESHOLD"] == {"Ref": "LockoutThreshold"}
        assert env["LOCKOUT_WINDOW_SECONDS"] == {"Ref": "LockoutWindowSeconds"}


def test_sign_in_settings_reach_the_authorize_function_only(tpl):
    """SESSION_* and LOGIN_* are parameters of the authorize function alone (the others
    neither read them nor should fail a cold start on them)."""
    for name in FUNCTIONS:
        env = function_props(tpl, name)["Environment"]["Variables"]
        if name == "AuthorizeFunction":
            assert {k: env.get(k) for k in SIGN_IN_ENV_VARS} == \
                {k: {"Ref": p} for k, p in SIGN_IN_ENV_VARS.items()}
        else:
            assert not set(SIGN_IN_ENV_VARS) & set(env), name
    # Globals' variables still reach it: SAM merges a function's Variables into them.
    assert ENV_VARS <= set(function_props(tpl, "AuthorizeFunction")["Environment"]["Variables"])


def test_boolean_settings_are_off_by_default_and_take_only_what_the_code_parses(tpl):
    """DPOP_NONCE_REQUIRED, REQUIRE_PAR and DYNAMODB_SDK_ONLY (config.rs parse_bool: "true" or
    "false")."""
    for name in ("DpopNonceRequired", "RequirePar", "DynamoDbSdkOnly"):
        param = tpl["Parameters"][name]
        assert (param["Default"], sorted(param["AllowedValues"])) == ("false", ["false", "true"])


def test_the_client_cache_is_a_token_function_setting_off_by_default(tpl):
    """CLIENT_CACHE_SECONDS (config.rs: 0-3600, default 0) reaches the token function alone,
    from ClientCacheSeconds, whose bounds are the code's."""
    param = tpl["Parameters"]["ClientCacheSeconds"]
    assert (param["Default"], param["MinValue"], param["MaxValue"]) == (0, 0, 3600)
    for name in FUNCTIONS:
        env = function_props(tpl, name)["Environment"]["Variables"]
        if name == "TokenFunction":
            assert env["CLIENT_CACHE_SECONDS"] == {"Ref": "ClientCacheSeconds"}
            assert ENV_VARS <= set(env)
        else:
            assert "CLIENT_CACHE_SECONDS" not in env, name


def test_sign_in_defaults_are_the_codes(tpl):
    """Defaults as config.rs has them: Keycloak's 30 min idle / 10 h max; empty page settings,
    which config.rs treats as unset (title "Sign in", no logo, no extra CSS)."""
    params = tpl["Parameters"]
    assert params["SessionIdleSeconds"]["Default"] == 1800
    assert params["SessionMaxSeconds"]["Default"] == 36000
    for name in ("LoginTitle", "LoginLogoUrl", "LoginExtraCss"):
        assert params[name]["Type"] == "String" and params[name]["Default"] == "", name


@pytest.mark.parametrize("url, allowed", [
    ("", True),
    ("https://cdn.example.com/logo.svg", True),
    ("https://cdn.example.com:8443/a/logo.png?v=1&x=2", True),
    ("http://cdn.example.com/logo.svg", False),
    ("javascript:alert(1)", False),
    ("//cdn.example.com/logo.svg", False),
    ("https:///logo.svg", False),
    ("https://", False),
    ("https://cdn.example.com/a logo.svg", False),
    ("data:image/svg+xml,<svg/>", False),
])
def test_logo_url_is_https_only(tpl, url, allowed):
    """CloudFormation refuses a LoginLogoUrl the pages would drop (Branding::safe_logo_url shows
    only an https:// URL with a host, and the CSP allows https images only)."""
    param = tpl["Parameters"]["LoginLogoUrl"]
    assert (re.fullmatch(param["AllowedPattern"], url) is not None) == allowed
    assert len(url) <= param["MaxLength"]


def test_translated_authorize_environment(translated):
    """After the transform the authorize function has Globals' variables and its own."""
    env = translated["Resources"]["AuthorizeFunction"]["Properties"]["Environment"]["Variables"]
    assert ENV_VARS <= set(env), ENV_VARS - set(env)
    for var, param in SIGN_IN_ENV_VARS.items():
        assert env[var] == {"Ref": param}, var


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_does_not_reference_api(tpl, name):
    """SPEC §11: a function that refers to the HttpApi makes a cycle (the API's
    OpenAPI body refers to the function). Events.*.ApiId is the one allowed
    mention: the SAM transform consumes it into the API, not the function."""
    props = function_props(tpl, name)
    for event_name, event in (props.get("Events") or {}).items():
        assert set(references(event)) <= {API}, f"{name}.{event_name}"
        assert event["Properties"].get("ApiId") == {"Ref": API}, f"{name}.{event_name}"
    rest = {k: v for k, v in props.items() if k != "Events"}
    assert API not in references(rest), f"{name} refers to {API}"
    assert API not in references(tpl["Resources"][name].get("Metadata") or {})


@pytest.mark.parametrize("name", FUNCTIONS)
def test_translated_function_does_not_depend_on_api(translated, name):
    resources = translated["Resources"]
    deps = dependencies(resources, name)
    assert API not in deps, f"{name} depends on {API} (cycle) via {sorted(deps)}"


# --- IAM (§11) ----------------------------------------------------------------

@pytest.mark.parametrize("name", FUNCTIONS)
def test_iam_exact(tpl, name):
    props = function_props(tpl, name)
    assert "Role" not in props, "a custom role would bypass these checks"
    granted, sids = {}, set()
    for st in policy_statements(props, name):
        assert st.get("Effect") == "Allow"
        assert set(st) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, st  # no NotAction/NotResource
        resources = as_list(st["Resource"])
        assert "*" not in resources and len(resources) == 1, st
        assert st.get("Sid") and st["Sid"] not in sids, f"{name}: every statement needs its own Sid: {st}"
        sids.add(st["Sid"])
        for action in as_list(st["Action"]):
            assert "*" not in action, action
            assert action not in granted, f"{action} granted twice"
            assert st.get("Condition") == CONDITIONS.get((name, action)), (action, st)
            granted[action] = resources[0]
    assert granted == IAM[name]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_translated_role_exact(translated, name):
    """After the transform: the role holds our statements plus only
    AWSLambdaBasicExecutionRole (CloudWatch Logs)."""
    role = translated["Resources"][name + "Role"]["Properties"]
    assert [p.split(":policy/")[1] for p in role.get("ManagedPolicyArns", [])] == \
        ["service-role/AWSLambdaBasicExecutionRole"]
    granted = {}
    for policy in role["Policies"]:
        for st in as_list(policy["PolicyDocument"]["Statement"]):
            for action in as_list(st["Action"]):
                granted[action] = st["Resource"]
                assert st.get("Condition") == CONDITIONS.get((name, action)), (action, st)
    assert granted == IAM[name]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_writes_limited_to_owned_key_prefixes(tpl, name):
    """No statement grants a DynamoDB write without the LeadingKeys condition, none mixes reads
    and writes, and no function may write a client#, user# or uid# item."""
    statements = policy_statements(function_props(tpl, name), name)
    assert check_write_statements(name, statements) == expected_write_prefixes(name)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_translated_writes_limited_to_owned_key_prefixes(translated, name):
    """The same on the role the transform generates (what IAM enforces)."""
    role = translated["Resources"][name + "Role"]["Properties"]
    statements = [st for policy in role["Policies"]
                  for st in as_list(policy["PolicyDocument"]["Statement"])]
    assert check_write_statements(name, statements) == expected_write_prefixes(name)


# --- routes (§3) ---------------------------------------------------------------

def test_rotate_function_has_no_route(tpl):
    """Secrets Manager invokes the rotate function directly; no event of any kind reaches it."""
    assert not function_props(tpl, ROTATE).get("Events")
    assert set(ENDPOINT_SOURCES) == set(API_FUNCTIONS)


def test_routes(tpl):
    seen = {}
    for name in FUNCTIONS:
        for event_name, event in (function_props(tpl, name).get("Events") or {}).items():
            assert event["Type"] == "HttpApi", f"{name}.{event_name}"
            p = event["Properties"]
            key = (p["Method"].upper(), p["Path"])
            assert key not in seen, f"route {key} declared twice"
            seen[key] = name
    assert seen == ROUTES


def test_single_http_api(tpl):
    apis = {k: v for k, v in tpl["Resources"].items()
            if v["Type"] in ("AWS::Serverless::HttpApi", "AWS::Serverless::Api",
                             "AWS::ApiGatewayV2::Api", "AWS::ApiGateway::RestApi")}
    assert list(apis) == [API] and apis[API]["Type"] == "AWS::Serverless::HttpApi"
    props = apis[API].get("Properties") or {}
    assert "Domain" not in props and "DefinitionBody" not in props and "DefinitionUri" not in props
    throttle = props["DefaultRouteSettings"]
    assert throttle["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}
    assert throttle["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}


def test_translated_routes(translated):
    """The deployed API (OpenAPI body after the transform) has exactly §3's routes."""
    resources = translated["Resources"]
    body = resources[API]["Properties"]["Body"]
    seen = {}
    for path, methods in body["paths"].items():
        for method, op in methods.items():
            uri = op["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            target = re.search(r"\$\{(\w+)\.Arn\}", uri).group(1)
            seen[(method.upper(), path)] = target
    assert seen == ROUTES


# Which source file handles which function's routes (its `pub const *_PATH(S)`).
ENDPOINT_SOURCES = {
    "TokenFunction": "token.rs",
    "TokenInfoFunction": "tokeninfo.rs",
    "DiscoveryFunction": "discovery.rs",
    "AuthorizeFunction": "authorize.rs",
}

_PATH_CONST = re.compile(r"pub const \w+_PATHS?\s*:[^=]*=\s*([^;]+);")


def handler_paths(function):
    """The paths a function's handler serves: its `pub const *_PATH` / `*_PATHS` literals."""
    text = (REPO / "shared" / "src" / "endpoints" / ENDPOINT_SOURCES[function]).read_text()
    paths = set()
    for value in _PATH_CONST.findall(text):
        paths |= set(re.findall(r'"(/[^"]*)"', value))
    return paths


@pytest.mark.parametrize("name", API_FUNCTIONS)
def test_routes_are_the_paths_each_handler_serves(name):
    """A path the code answers (shared/src/endpoints/<fn>.rs) reaches that function on AWS, and
    the template sends a function no path its handler does not answer."""
    paths = handler_paths(name)
    assert paths, f"no path constants found for {name}"
    for path in paths:
        targets = {fn for (_, p), fn in ROUTES.items() if p == path}
        assert targets == {name}, (path, targets)
    assert {p for (_, p), fn in ROUTES.items() if fn == name} == paths


def test_every_endpoint_discovery_advertises_is_routed():
    """Each `{issuer}/…` URL in the metadata (discovery.rs) is a route (issuer = https://host/oauth)."""
    text = (REPO / "shared" / "src" / "endpoints" / "discovery.rs").read_text()
    advertised = {"/oauth" + rest for rest in re.findall(r'format!\("\{issuer\}(/[^"]*)"\)', text)}
    assert {"/oauth/v2/authorize", "/oauth/v2/logout", "/oauth/v2/token"} <= advertised
    routed = {path for _, path in ROUTES}
    assert advertised <= routed, advertised - routed


def test_local_router_agrees_with_the_template():
    """`make dev`'s router (Cargo.toml, cargo lambda watch) has the template's paths, each sent
    to the binary the template routes it to (with the template's methods where it names any)."""
    import tomllib

    cargo = tomllib.loads((REPO / "Cargo.toml").read_text())
    router = cargo["workspace"]["metadata"]["lambda"]["watch"]["router"]
    assert set(router) == {p for _, p in ROUTES}, set(router) ^ {p for _, p in ROUTES}
    for path, target in router.items():
        routed = {m: FUNCTIONS[fn] for (m, p), fn in ROUTES.items() if p == path}
        if isinstance(target, str):  # every method
            assert set(routed.values()) == {target}, (path, routed)
        else:
            assert {t["method"]: t["function"] for t in target} == routed, (path, routed)


# --- concurrency ---------------------------------------------------------------

@pytest.mark.parametrize("name", FUNCTIONS)
def test_reserved_concurrency_is_optional(tpl, name):
    rc = function_props(tpl, name).get("ReservedConcurrentExecutions")
    assert rc == {"Fn::If": ["HasReservedConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert tpl["Parameters"]["ReservedConcurrency"]["Default"] == -1


# --- logs ------------------------------------------------------------------------

@pytest.mark.parametrize("name", FUNCTIONS)
def test_log_group_with_retention(tpl, name):
    group = function_props(tpl, name)["LoggingConfig"]["LogGroup"]
    target = group["Ref"]
    res = tpl["Resources"][target]
    assert res["Type"] == "AWS::Logs::LogGroup"
    assert res["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert name not in references(res), "log group must not refer back to its function"


# --- table (§7) and secret (§6) -------------------------------------------------------

def test_table(tpl):
    res = tpl["Resources"][TABLE]
    assert res["Type"] == "AWS::DynamoDB::Table"
    assert res.get("DeletionPolicy") == "Retain" and res.get("UpdateReplacePolicy") == "Retain"
    p = res["Properties"]
    assert p["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert p["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert "GlobalSecondaryIndexes" not in p and "LocalSecondaryIndexes" not in p
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert p["DeletionProtectionEnabled"] == {"Ref": "TableDeletionProtection"}


def test_secret(tpl):
    res = tpl["Resources"][SECRET]
    assert res["Type"] == "AWS::SecretsManager::Secret"
    assert res.get("DeletionPolicy") == "Retain" and res.get("UpdateReplacePolicy") == "Retain"
    p = res.get("Properties") or {}
    assert "SecretString" not in p and "GenerateSecretString" not in p, "created empty; oauthctl init fills it"


def test_outputs(tpl):
    outputs = tpl["Outputs"]
    assert {"ApiUrl", "Issuer", "TokenEndpoint", "AuthorizationEndpoint", "DiscoveryUrl",
            "TableName", "SigningKeysSecretArn"} <= set(outputs)
    assert outputs["TableName"]["Value"] == {"Ref": TABLE}
    assert outputs["SigningKeysSecretArn"]["Value"] == SECRET_REF
    issuer = outputs["Issuer"]["Value"]["Fn::If"]
    assert issuer[0] == "HasIssuerUrl" and issuer[1] == {"Ref": "IssuerUrl"}
    assert issuer[2] == {"Fn::If": ["HasCustomDomain", {"Fn::Sub": "https://${DomainName}/oauth"},
                                    {"Fn::Sub": "${HttpApi.ApiEndpoint}/oauth"}]}
    assert outputs["AuthorizationEndpoint"]["Value"] == {"Fn::If": [
        "HasIssuerUrl", {"Fn::Sub": "${IssuerUrl}/v2/authorize"},
        {"Fn::If": ["HasCustomDomain", {"Fn::Sub": "https://${DomainName}/oauth/v2/authorize"},
                    {"Fn::Sub": "${HttpApi.ApiEndpoint}/oauth/v2/authorize"}]}]}


# --- the signing-key secret's one writer (§6, §11, issue #13) -------------------------------

IAM_POLICY_TYPES = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy",
                    "AWS::IAM::RolePolicy", "AWS::IAM::UserPolicy", "AWS::IAM::GroupPolicy")


def secretsmanager_grants(statements, where):
    """{lower-cased secretsmanager action (or wildcard): [resources]} over `statements`."""
    found = {}
    for st in statements:
        assert "NotAction" not in st and "NotResource" not in st, f"{where}: {st}"
        for action in as_list(st.get("Action", [])):
            a = action.lower()
            if a == "*" or a.startswith("secretsmanager:"):
                found.setdefault(a, []).extend(as_list(st.get("Resource")))
    return found


def is_secret_write(action):
    return action not in SECRETSMANAGER_READS  # wildcards ("*", "secretsmanager:*") included


def iam_documents(resources):
    """(resource id, statements) of every IAM role or policy in a (translated) template."""
    for rid, res in resources.items():
        if res["Type"] not in IAM_POLICY_TYPES:
            continue
        props = res.get("Properties") or {}
        docs = [p["PolicyDocument"] for p in props.get("Policies") or []]
        if "PolicyDocument" in props:
            docs.append(props["PolicyDocument"])
        yield rid, [st for doc in docs for st in as_list(doc["Statement"])]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_only_the_rotate_function_writes_the_secret(tpl, name):
    """Every function but rotate has exactly GetSecretValue on the secret and no other
    secretsmanager action; rotate's writes are PutSecretValue and UpdateSecretVersionStage."""
    grants = secretsmanager_grants(policy_statements(function_props(tpl, name), name), name)
    assert all(resources == [SECRET_REF] for resources in grants.values()), grants
    writes = {a for a in grants if is_secret_write(a)}
    if name == ROTATE:
        assert writes == SECRET_WRITES
    else:
        assert not writes, f"{name} may write the signing-key secret: {sorted(writes)}"
        assert set(grants) == {SECRET_READ}, grants


def test_translated_only_the_rotate_role_writes_the_secret(translated):
    """After the transform, over every IAM role and policy in the stack (not only the ones
    SAM generates for the functions): the rotate function's role is the only one with a
    secretsmanager write, on the secret only; every function's role reads the secret."""
    writers = {}
    for rid, statements in iam_documents(translated["Resources"]):
        grants = secretsmanager_grants(statements, rid)
        writes = {a: r for a, r in grants.items() if is_secret_write(a)}
        if writes:
            writers[rid] = writes
        if rid in {n + "Role" for n in FUNCTIONS}:
            assert grants.get(SECRET_READ) == [SECRET_REF], (rid, grants)
    assert writers == {ROTATE + "Role": {a: [SECRET_REF] for a in SECRET_WRITES}}, writers


def test_no_secret_resource_policy(tpl):
    """A resource policy on the secret could grant writes that the roles do not show."""
    assert not [k for k, v in tpl["Resources"].items()
                if v["Type"] == "AWS::SecretsManager::ResourcePolicy"]


# --- rotation schedule (§6, issue #13) --------------------------------------------------------

ROTATE_ARN = {"Fn::GetAtt": [ROTATE, "Arn"]}


def resources_of_type(resources, rtype):
    return {k: v for k, v in resources.items() if v["Type"] == rtype}


def _check_rotation_wiring(resources):
    schedules = resources_of_type(resources, "AWS::SecretsManager::RotationSchedule")
    assert len(schedules) == 1, schedules
    (sid, schedule), = schedules.items()
    p = schedule["Properties"]
    assert p["SecretId"] == SECRET_REF
    assert p["RotationLambdaARN"] == ROTATE_ARN
    assert "HostedRotationLambda" not in p
    assert p["RotationRules"] == {"AutomaticallyAfterDays": {"Ref": "KeyRotationDays"}}
    # The secret is empty until `oauthctl init`: no rotation at creation (or on updates).
    assert p["RotateImmediatelyOnUpdate"] is False
    # Who may invoke the rotate function: Secrets Manager, for this account's secret, only.
    permissions = {k: v for k, v in resources_of_type(resources, "AWS::Lambda::Permission").items()
                   if ROTATE in references(v["Properties"]["FunctionName"])}
    assert len(permissions) == 1, permissions
    (pid, permission), = permissions.items()
    assert permission["Properties"] == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": ROTATE_ARN,
        "Principal": "secretsmanager.amazonaws.com",
        "SourceAccount": {"Ref": "AWS::AccountId"},
        "SourceArn": SECRET_REF,
    }
    # Secrets Manager checks that it may invoke the function when the schedule is created.
    assert pid in as_list(schedule.get("DependsOn") or [])
    # No other function can be invoked by Secrets Manager.
    for k, v in resources_of_type(resources, "AWS::Lambda::Permission").items():
        if k != pid:
            assert v["Properties"]["Principal"] != "secretsmanager.amazonaws.com", k


def test_rotation_schedule(tpl):
    _check_rotation_wiring(tpl["Resources"])


def test_translated_rotation_schedule(translated):
    _check_rotation_wiring(translated["Resources"])


def test_rotation_interval_parameter(tpl):
    param = tpl["Parameters"]["KeyRotationDays"]
    assert param["Type"] == "Number"
    assert (param["Default"], param["MinValue"], param["MaxValue"]) == (30, 1, 1000)


# --- alarms (issue #13) -----------------------------------------------------------------------

NAMESPACE = "OAuthProvider"
NAMESPACE_REF = {"Fn::FindInMap": ["Metrics", "Custom", "Namespace"]}
TOPIC_REF = {"Ref": "AlarmTopic"}

# The custom metrics the functions emit (EMF, namespace NAMESPACE): metric -> its one
# dimension set (None: the template does not depend on it). Every dimension combination is a
# billed custom metric, so the sets stay this small.
CUSTOM_METRICS = {
    "TokensIssued": ("Grant",),
    "Refusals": ("Error",),
    "TemporarilyUnavailable": ("Dependency",),
    "Lockouts": (),
    "RotationOutcome": ("Outcome",),
    "HandlerMs": None,
    # Browser sign-in (SPEC §12).
    "CodesIssued": (),
    "LoginFailures": (),
}
GRANTS = ["client_credentials", "password", "refresh_token", "authorization_code"]

# Alarm -> (namespace, metric, FunctionName dimension's function, threshold), for the
# single-metric alarms; a threshold is a parameter's name, or a fixed number.
SINGLE_METRIC_ALARMS = {
    **{f"{fn}ErrorsAlarm": ("AWS/Lambda", "Errors", fn, "AlarmFunctionErrors")
       for fn in API_FUNCTIONS},
    # A failed rotation step always alarms.
    "RotationFailuresAlarm": ("AWS/Lambda", "Errors", ROTATE, 1),
    **{f"{fn}ThrottlesAlarm": ("AWS/Lambda", "Throttles", fn, "AlarmFunctionThrottles")
       for fn in FUNCTIONS},
    "LockoutSpikeAlarm": (NAMESPACE_REF, "Lockouts", None, "AlarmLockouts"),
}
ALARMS = set(SINGLE_METRIC_ALARMS) | {"Api5xxRateAlarm", "TemporarilyUnavailableAlarm"}

# Threshold parameter -> (default, minimum)
ALARM_THRESHOLDS = {
    "AlarmApi5xxRatePercent": (1, 0.1),
    "AlarmFunctionErrors": (1, 1),
    "AlarmFunctionThrottles": (1, 1),
    "AlarmTemporarilyUnavailable": (5, 1),
    "AlarmLockouts": (20, 1),
}


def test_alarm_topic_and_optional_email(tpl):
    res = tpl["Resources"]
    assert res["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    subscriptions = resources_of_type(res, "AWS::SNS::Subscription")
    assert list(subscriptions) == ["AlarmEmailSubscription"]
    sub = subscriptions["AlarmEmailSubscription"]
    assert sub["Condition"] == "HasAlarmEmail"
    assert sub["Properties"] == {"TopicArn": TOPIC_REF, "Protocol": "email",
                                 "Endpoint": {"Ref": "AlarmEmail"}}
    assert tpl["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    param = tpl["Parameters"]["AlarmEmail"]
    assert param["Default"] == ""
    for value, allowed in [("", True), ("ops@example.com", True), ("ops", False),
                           ("a b@example.com", False), ("ops@example", False)]:
        assert (re.fullmatch(param["AllowedPattern"], value) is not None) == allowed, value


def test_exactly_these_alarms(tpl):
    assert set(resources_of_type(tpl["Resources"], "AWS::CloudWatch::Alarm")) == ALARMS


@pytest.mark.parametrize("name", sorted(ALARMS))
def test_alarm_notifies_the_topic(tpl, name):
    """Each alarm (and its recovery) goes to the topic; no data is not a breach (no traffic,
    no lockout, no rotation running)."""
    p = tpl["Resources"][name]["Properties"]
    assert p["AlarmActions"] == [TOPIC_REF] and p["OKActions"] == [TOPIC_REF]
    assert p["TreatMissingData"] == "notBreaching"
    assert p["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert p["EvaluationPeriods"] == 1
    assert p.get("ActionsEnabled", True) is True


@pytest.mark.parametrize("name", sorted(SINGLE_METRIC_ALARMS))
def test_single_metric_alarm(tpl, name):
    namespace, metric, function, threshold = SINGLE_METRIC_ALARMS[name]
    p = tpl["Resources"][name]["Properties"]
    assert (p["Namespace"], p["MetricName"], p["Statistic"], p["Period"]) == \
        (namespace, metric, "Sum", 300)
    expected_dims = [{"Name": "FunctionName", "Value": {"Ref": function}}] if function else None
    assert p.get("Dimensions") == expected_dims
    assert p["Threshold"] == ({"Ref": threshold} if isinstance(threshold, str) else threshold)


def test_api_5xx_rate_alarm(tpl):
    """5xx / Count of the HTTP API (dimension ApiId), as a percentage, over the same period."""
    p = tpl["Resources"]["Api5xxRateAlarm"]["Properties"]
    assert p["Threshold"] == {"Ref": "AlarmApi5xxRatePercent"}
    queries = {q["Id"]: q for q in p["Metrics"]}
    stats = {}
    for qid, q in queries.items():
        if "MetricStat" in q:
            assert q["ReturnData"] is False, qid
            stat = q["MetricStat"]
            metric = stat["Metric"]
            assert metric["Namespace"] == "AWS/ApiGateway"
            assert metric["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": API}}]
            assert (stat["Stat"], stat["Period"]) == ("Sum", 300)
            stats[metric["MetricName"]] = qid
    assert set(stats) == {"5xx", "Count"}
    (rate,) = [q for q in queries.values() if q.get("ReturnData")]
    expr = rate["Expression"]
    assert re.search(rf"100 \* {stats['5xx']} / {stats['Count']}\b", expr), expr


def test_temporarily_unavailable_alarm(tpl):
    """503s summed over every Dependency value (Metrics Insights), from the mapped namespace."""
    p = tpl["Resources"]["TemporarilyUnavailableAlarm"]["Properties"]
    assert p["Threshold"] == {"Ref": "AlarmTemporarilyUnavailable"}
    (query,) = p["Metrics"]
    assert query["ReturnData"] is True and query["Period"] == 300
    text, variables = query["Expression"]["Fn::Sub"]
    assert variables == {"Namespace": NAMESPACE_REF}
    assert text == 'SELECT SUM(TemporarilyUnavailable) FROM "${Namespace}"'


def test_alarm_thresholds_are_parameters(tpl):
    params = tpl["Parameters"]
    for name, (default, minimum) in ALARM_THRESHOLDS.items():
        assert params[name]["Type"] == "Number", name
        assert (params[name]["Default"], params[name]["MinValue"]) == (default, minimum), name
    used = {p for res in resources_of_type(tpl["Resources"], "AWS::CloudWatch::Alarm").values()
            for p in references(res["Properties"].get("Threshold"))}
    assert used == set(ALARM_THRESHOLDS)


def _strings(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(k, path)
            yield from _strings(v, path + (k,))
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, path)
    elif isinstance(node, str):
        yield path, node


def test_metric_namespace_is_named_once(tpl):
    """The namespace is the mapping's value; alarms and dashboard take it from there."""
    assert tpl["Mappings"]["Metrics"]["Custom"]["Namespace"] == NAMESPACE
    places = [path for path, text in _strings(tpl) if NAMESPACE in text]
    assert places == [("Mappings", "Metrics", "Custom", "Namespace")], places


def test_translated_alarms(translated):
    """The alarms survive the transform unchanged, and so does the mapping they read."""
    res = translated["Resources"]
    assert set(resources_of_type(res, "AWS::CloudWatch::Alarm")) == ALARMS
    assert translated["Mappings"]["Metrics"]["Custom"]["Namespace"] == NAMESPACE
    for name in ALARMS:
        assert res[name]["Properties"]["AlarmActions"] == [TOPIC_REF], name


# --- dashboard (issue #13) --------------------------------------------------------------------

def dashboard(tpl_or_translated):
    """The dashboard body as JSON, with ${Namespace} resolved and every other ${X} left as
    the string "<X>" (after checking X is a pseudo parameter or a resource of the template)."""
    resources = tpl_or_translated["Resources"]
    (res,) = resources_of_type(resources, "AWS::CloudWatch::Dashboard").values()
    text, variables = res["Properties"]["DashboardBody"]["Fn::Sub"]
    assert variables == {"Namespace": NAMESPACE_REF}

    def resolve(m):
        name = m.group(1)
        if name == "Namespace":
            return NAMESPACE
        target = name.split(".", 1)[0]
        assert target in resources or name == "AWS::Region", name
        return f"<{name}>"

    return json.loads(re.sub(r"\$\{([^}!]+)\}", resolve, text))


def _widget_metrics(body):
    """[(title, stat, metric array or expression)] of every metric widget."""
    for w in body["widgets"]:
        if w["type"] != "metric":
            continue
        props = w["properties"]
        for m in props["metrics"]:
            yield props["title"], props.get("stat"), m


def _plain(metric):
    """A metric array -> (namespace, name, {dimension: value}, options)."""
    options = metric[-1] if isinstance(metric[-1], dict) else {}
    parts = metric[:-1] if options else metric
    ns, name, *dims = parts
    return ns, name, dict(zip(dims[::2], dims[1::2])), options


def _dashboard_metrics(body):
    plain, searches = [], []
    for title, stat, m in _widget_metrics(body):
        if len(m) == 1 and isinstance(m[0], dict):
            searches.append((title, m[0]["expression"]))
        else:
            ns, name, dims, options = _plain(m)
            plain.append((title, options.get("stat", stat), ns, name, dims))
    return plain, searches


_SEARCH = re.compile(r"""^SEARCH\('\{([^}]*)\} MetricName="(\w+)"', '(\w+)', (\d+)\)$""")


def test_dashboard(tpl):
    body = dashboard(tpl)
    plain, searches = _dashboard_metrics(body)
    functions = {f"<{fn}>" for fn in FUNCTIONS}

    def series(ns, name, stat=None):
        return [(dims, s) for _, s, n_, m, dims in plain
                if n_ == ns and m == name and (stat is None or s == stat)]

    # Tokens issued per grant: one series per grant type.
    assert sorted(d["Grant"] for d, s in series(NAMESPACE, "TokensIssued", "Sum")) == sorted(GRANTS)
    assert all(set(d) == {"Grant"} for d, _ in series(NAMESPACE, "TokensIssued"))
    # p50 and p99 Duration, errors and throttles of every function.
    for metric, stat in [("Duration", "p50"), ("Duration", "p99"), ("Errors", "Sum"),
                         ("Throttles", "Sum")]:
        got = [d for d, _ in series("AWS/Lambda", metric, stat)]
        assert all(set(d) == {"FunctionName"} for d in got), (metric, got)
        assert sorted(d["FunctionName"] for d in got) == sorted(functions), (metric, stat)
    # The API's 4xx and 5xx.
    for metric in ("4xx", "5xx"):
        assert series("AWS/ApiGateway", metric, "Sum") == [({"ApiId": f"<{API}>"}, "Sum")], metric
    # Every custom metric it shows is one the functions emit, with its dimensions.
    for _, _, ns, name, dims in plain:
        if ns == NAMESPACE:
            assert name in CUSTOM_METRICS and tuple(dims) == CUSTOM_METRICS[name], (name, dims)
    searched = set()
    for title, expr in searches:
        m = _SEARCH.match(expr)
        assert m, (title, expr)
        schema, name = m.group(1).split(","), m.group(2)
        assert schema[0] == NAMESPACE and name in CUSTOM_METRICS, expr
        if CUSTOM_METRICS[name] is not None:
            assert tuple(schema[1:]) == CUSTOM_METRICS[name], expr
        searched.add(name)
    shown = searched | {name for _, _, ns, name, _ in plain if ns == NAMESPACE}
    assert shown == set(CUSTOM_METRICS), set(CUSTOM_METRICS) - shown
    # One widget shows the state of every alarm.
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(f"<{a}.Arn>" for a in ALARMS)
    for w in body["widgets"]:
        assert w["properties"].get("region", "<AWS::Region>") == "<AWS::Region>"


def test_translated_dashboard(translated):
    body = dashboard(translated)
    assert _dashboard_metrics(body)[0]


def test_custom_metrics_match_the_code():
    """Once the functions emit EMF (the namespace appears in shared/src), each metric name and
    dimension name the template uses is a string literal there too."""
    sources = "\n".join(p.read_text() for p in (REPO / "shared" / "src").rglob("*.rs"))
    if f'"{NAMESPACE}"' not in sources:
        pytest.skip(f"shared/src does not emit namespace {NAMESPACE!r} yet")
    missing = [n for n in CUSTOM_METRICS if f'"{n}"' not in sources]
    missing += [d for dims in CUSTOM_METRICS.values() for d in dims or () if f'"{d}"' not in sources]
    missing += [g for g in GRANTS if f'"{g}"' not in sources]
    assert not missing, f"not found as string literals in shared/src: {missing}"


# --- custom domain (issue #13) and the issuer -------------------------------------------------

DOMAIN = "auth.example.com"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
ZONE = "Z0123456789ABCDEFGHIJ"
OTHER_ISSUER = "https://id.example.com/oauth"
EXECUTE_API = "<HttpApi.ApiEndpoint>"

DOMAIN_RESOURCES = {"ApiDomainName": "HasCustomDomain", "ApiMapping": "HasCustomDomain",
                    "ApiDnsRecord": "HasDnsRecord"}

_NO_VALUE = object()


class RuleFailed(Exception):
    pass


def evaluate(node, params, conditions):
    """A CloudFormation value with the intrinsics this template uses, for given parameters;
    ${Resource.Attr} in Fn::Sub and Fn::GetAtt become "<Resource.Attr>"."""
    ev = lambda n: evaluate(n, params, conditions)  # noqa: E731
    if isinstance(node, list):
        return [v for v in map(ev, node) if v is not _NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, arg), = node.items()
        if key == "Ref":
            return _NO_VALUE if arg == "AWS::NoValue" else params.get(arg, f"<{arg}>")
        if key in ("Condition", "Fn::Condition"):  # the loader spells !Condition Fn::Condition
            return condition(arg, params, conditions)
        if key == "Fn::If":
            name, yes, no = arg
            return ev(yes if condition(name, params, conditions) else no)
        if key == "Fn::Equals":
            a, b = map(ev, arg)
            return str(a) == str(b)
        if key == "Fn::Not":
            return not ev(arg[0])
        if key == "Fn::And":
            return all(ev(a) for a in arg)
        if key == "Fn::Or":
            return any(ev(a) for a in arg)
        if key == "Fn::GetAtt":
            return "<{}.{}>".format(*(arg.split(".", 1) if isinstance(arg, str) else arg))
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            values = {k: ev(v) for k, v in variables.items()}
            return re.sub(r"\$\{([^}!]+)\}",
                          lambda m: str(values.get(m.group(1), params.get(m.group(1), f"<{m.group(1)}>"))),
                          text)
        assert not key.startswith("Fn::"), f"evaluate() does not know {key}"
    return {k: v for k, v in ((k, ev(v)) for k, v in node.items()) if v is not _NO_VALUE}


def condition(name, params, conditions):
    return bool(evaluate(conditions[name], params, conditions))


def deploy(template, overrides, rules=True):
    """What a deploy with these parameter overrides gets: the rules checked (RuleFailed, unless
    `rules` is false), the resources that exist, and each function's ISSUER and the Issuer
    output."""
    params = {k: v.get("Default") for k, v in template["Parameters"].items()}
    unknown = set(overrides) - set(params)
    assert not unknown, unknown
    params.update(overrides)
    for name, value in overrides.items():
        pattern = template["Parameters"][name].get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, value):
            raise RuleFailed(f"{name}={value!r} does not match {pattern}")
    conditions = template.get("Conditions") or {}
    for name, rule in (template.get("Rules") or {}).items() if rules else ():
        if evaluate(rule.get("RuleCondition", True), params, conditions):
            for assertion in rule["Assertions"]:
                if not evaluate(assertion["Assert"], params, conditions):
                    raise RuleFailed(f"{name}: {assertion['AssertDescription']}")
    resources = {k for k, v in template["Resources"].items()
                 if "Condition" not in v or condition(v["Condition"], params, conditions)}
    issuers = {}
    for fn in FUNCTIONS:
        if template["Resources"][fn]["Type"] == "AWS::Serverless::Function":
            env = function_props(template, fn)["Environment"]["Variables"]
        else:
            env = template["Resources"][fn]["Properties"]["Environment"]["Variables"]
        issuers[fn] = evaluate(env["ISSUER"], params, conditions)
    output = evaluate(template["Outputs"]["Issuer"]["Value"], params, conditions)
    return resources, issuers, output


# parameters -> (the domain resources that exist, ISSUER of every function, Issuer output);
# None: the deploy is refused (Rules or a parameter's pattern).
DOMAIN_CASES = [
    ({}, set(), "", f"{EXECUTE_API}/oauth"),
    ({"DomainName": DOMAIN, "CertificateArn": CERT}, {"ApiDomainName", "ApiMapping"},
     f"https://{DOMAIN}/oauth", f"https://{DOMAIN}/oauth"),
    ({"DomainName": DOMAIN, "CertificateArn": CERT, "HostedZoneId": ZONE}, set(DOMAIN_RESOURCES),
     f"https://{DOMAIN}/oauth", f"https://{DOMAIN}/oauth"),
    # IssuerUrl wins over the domain's issuer (a second name in front of the API).
    ({"DomainName": DOMAIN, "CertificateArn": CERT, "HostedZoneId": ZONE, "IssuerUrl": OTHER_ISSUER},
     set(DOMAIN_RESOURCES), OTHER_ISSUER, OTHER_ISSUER),
    ({"IssuerUrl": OTHER_ISSUER}, set(), OTHER_ISSUER, OTHER_ISSUER),
    # Half-filled sets are refused rather than deployed without a domain.
    ({"DomainName": DOMAIN}, None, None, None),
    ({"CertificateArn": CERT}, None, None, None),
    ({"HostedZoneId": ZONE}, None, None, None),
    ({"DomainName": DOMAIN, "HostedZoneId": ZONE}, None, None, None),
    ({"DomainName": "Auth.Example.com", "CertificateArn": CERT}, None, None, None),
    ({"DomainName": "https://auth.example.com", "CertificateArn": CERT}, None, None, None),
    ({"DomainName": DOMAIN, "CertificateArn": "arn:aws:iam::123456789012:server-certificate/x"},
     None, None, None),
]


def _domain_case_id(case):
    return ",".join(sorted(case[0])) or "defaults"


@pytest.mark.parametrize("overrides, present, issuer, output", DOMAIN_CASES,
                         ids=[_domain_case_id(c) for c in DOMAIN_CASES])
def test_custom_domain_conditions(tpl, overrides, present, issuer, output):
    if present is None:
        with pytest.raises(RuleFailed):
            deploy(tpl, overrides)
        return
    resources, issuers, issuer_output = deploy(tpl, overrides)
    assert resources & set(DOMAIN_RESOURCES) == present
    assert issuers == {fn: issuer for fn in FUNCTIONS}
    assert issuer_output == output


@pytest.mark.parametrize("overrides, present, issuer, output",
                         [c for c in DOMAIN_CASES if c[1] is not None],
                         ids=[_domain_case_id(c) for c in DOMAIN_CASES if c[1] is not None])
def test_translated_custom_domain_conditions(translated, overrides, present, issuer, output):
    """The same on the transformed template (its conditions, resources and environments)."""
    resources, issuers, issuer_output = deploy(translated, overrides)
    assert resources & set(DOMAIN_RESOURCES) == present
    assert issuers == {fn: issuer for fn in FUNCTIONS}
    assert issuer_output == output


@pytest.mark.parametrize("overrides", [{"DomainName": DOMAIN}, {"CertificateArn": CERT},
                                       {"HostedZoneId": ZONE},
                                       {"DomainName": DOMAIN, "HostedZoneId": ZONE}])
def test_conditions_alone_need_domain_and_certificate(tpl, overrides):
    """Even without the Rules, a half-filled set creates no domain, record or issuer."""
    resources, issuers, _ = deploy(tpl, overrides, rules=False)
    assert not resources & set(DOMAIN_RESOURCES)
    assert set(issuers.values()) == {""}


def test_translated_rules_refuse_half_filled_domain(translated):
    with pytest.raises(RuleFailed):
        deploy(translated, {"DomainName": DOMAIN})


def test_custom_domain_resources(tpl):
    res = tpl["Resources"]
    for name, cond in DOMAIN_RESOURCES.items():
        assert res[name]["Condition"] == cond, name
    domain = res["ApiDomainName"]
    assert domain["Type"] == "AWS::ApiGatewayV2::DomainName"
    assert domain["Properties"] == {
        "DomainName": {"Ref": "DomainName"},
        "DomainNameConfigurations": [{"CertificateArn": {"Ref": "CertificateArn"},
                                      "EndpointType": "REGIONAL", "SecurityPolicy": "TLS_1_2"}],
    }
    mapping = res["ApiMapping"]
    assert mapping["Type"] == "AWS::ApiGatewayV2::ApiMapping"
    # Empty path (no ApiMappingKey): /oauth/... and /.well-known/oauth-authorization-server/oauth
    # stay where the issuer https://<DomainName>/oauth puts them.
    assert mapping["Properties"] == {"DomainName": {"Ref": "ApiDomainName"}, "ApiId": {"Ref": API},
                                     "Stage": {"Ref": f"{API}.Stage"}}
    record = res["ApiDnsRecord"]
    assert record["Type"] == "AWS::Route53::RecordSet"
    assert record["Properties"] == {
        "HostedZoneId": {"Ref": "HostedZoneId"}, "Name": {"Ref": "DomainName"}, "Type": "A",
        "AliasTarget": {"DNSName": {"Fn::GetAtt": ["ApiDomainName", "RegionalDomainName"]},
                        "HostedZoneId": {"Fn::GetAtt": ["ApiDomainName", "RegionalHostedZoneId"]},
                        "EvaluateTargetHealth": False},
    }
    for name in ("DomainName", "CertificateArn", "HostedZoneId"):
        assert tpl["Parameters"][name]["Default"] == "", name
    assert tpl["Outputs"]["CustomDomainTarget"]["Condition"] == "HasCustomDomain"


def test_translated_mapping_targets_the_default_stage(translated):
    """HttpApi.Stage resolves to the stage SAM generates ($default)."""
    res = translated["Resources"]
    stage = res["ApiMapping"]["Properties"]["Stage"]["Ref"]
    assert res[stage]["Type"] == "AWS::ApiGatewayV2::Stage"
    assert res[stage]["Properties"]["StageName"] == "$default"


@pytest.mark.parametrize("domain", ["auth.example.com", "a.io", "x-1.example.co.uk",
                                    "a" * 63 + ".example.com"])
def test_domain_issuer_is_one_the_functions_accept(tpl, domain):
    """Every DomainName the template accepts gives an issuer IssuerUrl's pattern (config.rs's
    validate_issuer: https://<host>/oauth) accepts too."""
    assert re.fullmatch(tpl["Parameters"]["DomainName"]["AllowedPattern"], domain)
    assert re.fullmatch(tpl["Parameters"]["IssuerUrl"]["AllowedPattern"], f"https://{domain}/oauth")
