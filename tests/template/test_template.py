"""Checks of template.yaml against SPEC §2, §3, §7, §11 and §12.

Run by infra/scripts/check-template.sh (in .venv-sam, which has PyYAML and
aws-sam-translator). TEMPLATE=path overrides the template, so a mutated copy
can be checked: every test here must fail on the matching mutation.
"""

import copy
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
}


def leading_keys(*prefixes):
    """IAM condition: every partition key the request touches starts with one of `prefixes`."""
    return {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [p + "*" for p in prefixes]}}


# (function, action) -> the only Condition it may be granted under; every other grant (the
# reads, GetSecretValue) has none. SPEC §7 / §11: each write is limited to the key prefixes
# its function owns.
CONDITIONS = {
    # The token function: new refresh families and revoked access-token markers ...
    ("TokenFunction", "dynamodb:PutItem"): leading_keys("rfam#", "revoked#"),
    # ... rotation / revocation of families, the password and client failure counters, and
    # redemption of authorization codes (one conditional UpdateItem marks a code consumed).
    ("TokenFunction", "dynamodb:UpdateItem"):
        leading_keys("rfam#", "lock#user#", "lock#client#", "code#"),
    # Introspection counts failed client authentications and may write nothing else.
    ("TokenInfoFunction", "dynamodb:UpdateItem"): leading_keys("lock#client#"),
    # Browser sign-in (SPEC §12): login transactions, sessions, codes and consent; logout
    # buries the session's refresh families (bury_family: PutItem, attribute_not_exists) ...
    ("AuthorizeFunction", "dynamodb:PutItem"):
        leading_keys("authz#", "sess#", "code#", "consent#", "rfam#"),
    # ... a form completes once (finish_transaction), a login or logout ends a session ...
    ("AuthorizeFunction", "dynamodb:DeleteItem"): leading_keys("authz#", "sess#"),
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
}

ENV_VARS = {"TABLE_NAME", "SIGNING_KEYS_SECRET_ID", "ISSUER", "ACCESS_TOKEN_ALG",
            "MAX_TOKEN_TTL", "KEY_CACHE_SECONDS", "API_KEY_HEADER", "LOCKOUT_THRESHOLD",
            "LOCKOUT_WINDOW_SECONDS"}

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

def test_exactly_four_functions(tpl):
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
    assert env["ISSUER"] == {"Ref": "IssuerUrl"}
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


@pytest.mark.parametrize("name", FUNCTIONS)
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
    assert issuer[2] == {"Fn::Sub": "${HttpApi.ApiEndpoint}/oauth"}
    assert outputs["AuthorizationEndpoint"]["Value"] == {"Fn::If": [
        "HasIssuerUrl", {"Fn::Sub": "${IssuerUrl}/v2/authorize"},
        {"Fn::Sub": "${HttpApi.ApiEndpoint}/oauth/v2/authorize"}]}
