"""End-to-end harness: moto (DynamoDB + Secrets Manager) behind a fault proxy, the three
Lambda functions served by `cargo lambda watch`, and the `oauthctl` admin CLI.

Fixtures
--------
aws_backend   (session) moto_server on a free loopback port + FaultProxy in front of it.
              Needs only the venv (no Rust binaries).
fault_proxy   (function) the backend's FaultProxy; put back to ``pass`` after the test.
stack         (session) aws_backend + `oauthctl init` + `cargo lambda watch` serving the
              functions, whose AWS_ENDPOINT_URL points at the proxy.

Environment knobs
-----------------
OAUTH_E2E_SKIP_BUILD=1     do not run `cargo build` first (binaries must already exist).
OAUTH_E2E_CONCURRENCY=N    instances per function (default 4) so concurrent requests race
                           (`stack.functions_with(concurrency=N)` sets it for one extra watch).
OAUTH_E2E_START_TIMEOUT=S  seconds to wait for the functions to answer (default 300).
OAUTH_E2E_RUST_LOG=...     RUST_LOG for the functions (default "info").
CARGO_TARGET_DIR           honoured when locating target/debug/oauthctl.
OAUTH_E2E_TARGET=sam-local the functions under `sam local start-api` instead (set by
                           infra/scripts/sam-local.sh --run; see "sam-local mode" at the end).
Logs (moto, cargo lambda watch + function output) go to .local/e2e/*.log.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faultproxy import FaultProxy  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / ".local" / "e2e"
TABLE_NAME = "oauth-e2e"
SECRET_ID = "oauth-e2e-keys"
REGION = "us-east-1"
FUNCTION_BINS = ("token", "tokeninfo", "discovery", "authorize", "rotate")
DUMMY_CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


# --------------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _venv_bin() -> Path:
    here = Path(sys.executable).parent
    if (here / "moto_server").exists():
        return here
    return ROOT / ".venv" / "bin"


def _target_dir() -> Path:
    t = os.environ.get("CARGO_TARGET_DIR")
    return Path(t) if t else ROOT / "target"


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(lines[-n:])


def _base_env() -> dict[str, str]:
    """The runner's environment minus anything AWS_* (no profile/IMDS/real-account leaks)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PATH"] = os.pathsep.join([str(_venv_bin()), env.get("PATH", "")])
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def _descendants(pid: int) -> list[int]:
    """All descendant pids of pid (from /proc), children first-level included."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class Proc:
    """A background process in its own session/process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path = ROOT):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.argv = argv
        self.log_path = LOG_DIR / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 40) -> str:
        return _tail(self.log_path, n)

    def stop(self, grace: float = 10.0) -> None:
        pid = self.popen.pid
        # Function processes started by cargo-lambda live in sessions of their own:
        # remember the whole tree so nothing outlives the test session.
        tree = _descendants(pid) if self.alive else []
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        for child in tree:
            while time.monotonic() < deadline:
                try:
                    os.kill(child, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        self._log.close()


# --------------------------------------------------------------------------- backend
@dataclass
class AwsBackend:
    moto_port: int
    proxy: FaultProxy
    moto: Proc

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def proxy_url(self) -> str:
        return self.proxy.url

    def client(self, service: str, *, via_proxy: bool = True, read_timeout: float = 5.0):
        """A boto3 client with no retries and short timeouts (fault tests want to see
        the first failure, not the SDK's retry loop)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.proxy_url if via_proxy else self.moto_url,
            region_name=REGION,
            aws_access_key_id=DUMMY_CREDS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDS["AWS_SECRET_ACCESS_KEY"],
            config=Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=2,
                read_timeout=read_timeout,
            ),
        )


def _wait_moto(proc: Proc, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive:
            pytest.fail(f"moto_server exited early; log {proc.log_path}:\n{proc.tail()}")
        try:
            if requests.get(f"{url}/moto-api/data.json", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"moto_server not ready on {url} after {timeout}s; log {proc.log_path}:\n{proc.tail()}")


@pytest.fixture(scope="session")
def aws_backend() -> Iterator[AwsBackend]:
    moto_server = _venv_bin() / "moto_server"
    if not moto_server.exists():
        found = shutil.which("moto_server")
        if not found:
            pytest.fail(
                "moto_server not found: run infra/scripts/venv.sh and use .venv/bin/pytest"
            )
        moto_server = Path(found)
    port = free_port()
    # moto_server, one request at a time: conditional writes atomic as on AWS.
    serial = ROOT / "infra" / "scripts" / "moto_serial.py"
    moto = Proc("moto", [str(moto_server.parent / "python"), str(serial), "-H", "127.0.0.1",
                         "-p", str(port)], _base_env())
    proxy: Optional[FaultProxy] = None
    try:
        _wait_moto(moto, f"http://127.0.0.1:{port}")
        proxy = FaultProxy(upstream_port=port).start()
        yield AwsBackend(moto_port=port, proxy=proxy, moto=moto)
    finally:
        if proxy is not None:
            proxy.stop()
        moto.stop()


@pytest.fixture
def fault_proxy(aws_backend: AwsBackend) -> Iterator[FaultProxy]:
    proxy = aws_backend.proxy
    proxy.set_mode("pass")
    proxy.reset_stats()
    try:
        yield proxy
    finally:
        proxy.set_mode("pass")


# --------------------------------------------------------------------------- build
def _cargo() -> str:
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    return cargo


def _build_binaries(env: dict[str, str]) -> None:
    """Build each binary the way `cargo lambda watch` will run it (`cargo run --bin X`
    resolves features for that package alone), so the first request doesn't compile."""
    for bin_name in ("oauthctl", *FUNCTION_BINS):
        res = subprocess.run(
            [_cargo(), "build", "--bin", bin_name],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if res.returncode != 0:
            tail = "\n".join(res.stdout.splitlines()[-60:])
            pytest.fail(f"`cargo build --bin {bin_name}` failed:\n{tail}", pytrace=False)


# --------------------------------------------------------------------------- functions
class LambdaWatch:
    """`cargo lambda watch` serving the workspace's functions on 127.0.0.1:port."""

    def __init__(self, port: int, function_env: dict[str, str], name: str = "watch",
                 concurrency: Optional[int] = None):
        self.port = port
        self.function_env = dict(function_env)
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.env_file = LOG_DIR / f"{name}.env"
        self.env_file.write_text(
            "".join(f"{k}={v}\n" for k, v in sorted(self.function_env.items()))
        )
        argv = [
            _cargo(), "lambda", "watch",
            "-A", "127.0.0.1", "-P", str(port),
            "--ignore-changes",    # tests must not be restarted by edits
            "--disable-cors",      # let the functions' own CORS headers through
            # Several instances per function, as Lambda scales out: concurrent requests really
            # race (refresh rotation, lockout counting) instead of queueing on one process.
            "--concurrency", str(concurrency or os.environ.get("OAUTH_E2E_CONCURRENCY", "4")),
            "--env-file", str(self.env_file),
        ]
        # Function config goes only through --env-file (it takes precedence over the
        # inherited environment, which has AWS_* scrubbed). NB: a
        # [workspace.metadata.lambda.env] table in Cargo.toml would override it.
        env = _base_env()
        env.pop("RUST_LOG", None)  # cargo-lambda's own logging stays at its default
        env.setdefault("CARGO_TERM_COLOR", "never")
        self.proc = Proc(name, argv, env)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def crashes(self) -> list[str]:
        """Log lines where cargo-lambda saw a function process die. A function that
        died is not restarted: later requests to it hang (cargo-lambda has no default
        invoke timeout), so tests should use request timeouts."""
        try:
            text = self.proc.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [l for l in text.splitlines() if "command exited" in l or "command killed" in l]

    def wait_ready(self, timeout: float) -> None:
        """Ready = every function answers HTTP (any status). The first request to a
        function makes cargo-lambda `cargo run` it, which compiles if needed."""
        deadline = time.monotonic() + timeout
        probes = [
            ("GET", "/oauth/v2/jwks"),
            ("POST", "/oauth/v2/token"),
            ("GET", "/oauth/v2/tokeninfo"),
        ]
        for method, path in probes:
            while True:
                if not self.proc.alive:
                    pytest.fail(
                        f"cargo lambda watch exited ({self.proc.popen.returncode}); "
                        f"log {self.proc.log_path}:\n{self.proc.tail()}",
                        pytrace=False,
                    )
                if self.crashes():
                    pytest.fail(
                        f"a function exited while starting ({method} {path}); "
                        f"log {self.proc.log_path}:\n{self.proc.tail()}",
                        pytrace=False,
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(
                        f"functions not answering {method} {path} on {self.base_url} after "
                        f"{timeout}s; log {self.proc.log_path}:\n{self.proc.tail()}",
                        pytrace=False,
                    )
                try:
                    # Short attempts: a crashed function never answers, and we want to
                    # notice that in the log rather than wait out the whole timeout.
                    requests.request(method, self.base_url + path, timeout=min(left, 15.0))
                    break
                except requests.RequestException:
                    time.sleep(0.3)

    def instances(self, function: str) -> int:
        """How many processes of `function` (a binary name: token, tokeninfo, discovery) are
        running under this watch (cargo-lambda starts them on demand, up to --concurrency)."""
        count = 0
        for pid in _descendants(self.proc.popen.pid) if self.proc.alive else []:
            try:
                argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
            except OSError:
                continue
            if Path(argv0.decode(errors="replace")).name == function:
                count += 1
        return count

    def stop(self) -> None:
        self.proc.stop()


# --------------------------------------------------------------------------- stack
class OauthctlError(RuntimeError):
    def __init__(self, args, returncode, stdout, stderr):
        super().__init__(
            f"oauthctl {' '.join(args)} exited {returncode}\nstderr:\n{stderr}\nstdout:\n{stdout}"
        )
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


@dataclass
class Stack:
    backend: AwsBackend
    watch: LambdaWatch
    env: dict[str, str]  # for running oauthctl (AWS_ENDPOINT_URL -> moto directly)
    function_env: dict[str, str]  # what the functions got (AWS_ENDPOINT_URL -> proxy)
    oauthctl_bin: Path
    _extra: list = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.watch.base_url

    @property
    def issuer(self) -> str:
        return self.function_env["ISSUER"]

    @property
    def proxy(self) -> FaultProxy:
        return self.backend.proxy

    def url(self, path: str) -> str:
        return self.base_url + path

    def http(self, method: str, path: str, **kwargs) -> requests.Response:
        """requests.request against the functions, with a default timeout (a function
        process that died is never restarted by cargo-lambda: requests to it hang)."""
        kwargs.setdefault("timeout", 30)
        return requests.request(method, self.base_url + path, **kwargs)

    def oauthctl_run(self, *args: str, input: Optional[str] = None) -> subprocess.CompletedProcess:
        full_env = _base_env()
        full_env.update(self.env)
        return subprocess.run(
            [str(self.oauthctl_bin), *args],
            cwd=ROOT,
            env=full_env,
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def oauthctl(self, *args: str, input: Optional[str] = None) -> Any:
        """Run oauthctl; return its stdout parsed as JSON (None if empty)."""
        res = self.oauthctl_run(*args, input=input)
        if res.returncode != 0:
            raise OauthctlError(args, res.returncode, res.stdout, res.stderr)
        out = res.stdout.strip()
        if not out:
            return None
        try:
            return json.loads(out)
        except json.JSONDecodeError as e:
            raise OauthctlError(args, res.returncode, res.stdout, f"stdout is not JSON: {e}")

    @contextlib.contextmanager
    def functions_with(self, *, concurrency: Optional[int] = None,
                       **overrides: str) -> Iterator[LambdaWatch]:
        """A second `cargo lambda watch` on another port with changed function env
        (e.g. ACCESS_TOKEN_ALG="ES256"). ISSUER follows the new port unless given.
        `concurrency`: instances per function (default OAUTH_E2E_CONCURRENCY)."""
        port = free_port()
        env = dict(self.function_env)
        env["ISSUER"] = f"http://127.0.0.1:{port}/oauth"
        env.update({k: str(v) for k, v in overrides.items()})
        w = LambdaWatch(port, env, name="watch-extra", concurrency=concurrency)
        try:
            w.wait_ready(_start_timeout())
            yield w
        finally:
            w.stop()


def _start_timeout() -> float:
    return float(os.environ.get("OAUTH_E2E_START_TIMEOUT", "300"))


@pytest.fixture(scope="session")
def stack(aws_backend: AwsBackend) -> Iterator[Stack]:
    build_env = _base_env()
    if os.environ.get("OAUTH_E2E_SKIP_BUILD") != "1":
        _build_binaries(build_env)

    oauthctl_bin = _target_dir() / "debug" / "oauthctl"
    if not oauthctl_bin.exists():
        pytest.fail(
            f"{oauthctl_bin} does not exist: build the workspace first "
            "(`cargo build --workspace`), or unset OAUTH_E2E_SKIP_BUILD",
            pytrace=False,
        )

    common = {"TABLE_NAME": TABLE_NAME, "SIGNING_KEYS_SECRET_ID": SECRET_ID, "AWS_REGION": REGION,
              **DUMMY_CREDS, "AWS_EC2_METADATA_DISABLED": "true"}
    ctl_env = {**common, "AWS_ENDPOINT_URL": aws_backend.moto_url}

    port = free_port()
    function_env = {
        **common,
        "AWS_ENDPOINT_URL": aws_backend.proxy_url,
        "ISSUER": f"http://127.0.0.1:{port}/oauth",
        "RUST_LOG": os.environ.get("OAUTH_E2E_RUST_LOG", "info"),
    }

    watch: Optional[LambdaWatch] = None
    st: Optional[Stack] = None
    try:
        st = Stack(aws_backend, None, ctl_env, function_env, oauthctl_bin)  # type: ignore[arg-type]
        st.oauthctl("init")
        watch = LambdaWatch(port, function_env)
        st.watch = watch
        watch.wait_ready(_start_timeout())
        yield st
    finally:
        if watch is not None:
            watch.stop()


# --------------------------------------------------------------------------- sam-local mode
# OAUTH_E2E_TARGET=sam-local: the functions are the template's, run by `sam local start-api`
# in Lambda containers, which infra/scripts/sam-local.sh --run started (with moto on its
# Docker bridge, `oauthctl init` done) and describes in OAUTH_E2E_BASE_URL, OAUTH_E2E_ISSUER,
# OAUTH_E2E_AWS_ENDPOINT, OAUTH_E2E_TABLE_NAME, OAUTH_E2E_SECRET_ID, OAUTH_E2E_OAUTHCTL and
# OAUTH_E2E_SAM_LOG. Only tests marked `sam_local` run; nothing is built or started here.
# No fault proxy (`fault_proxy` skips) and no second function configuration
# (`stack.functions_with` skips). Unset (the default), nothing below changes the harness.
E2E_TARGET = os.environ.get("OAUTH_E2E_TARGET", "")
if E2E_TARGET not in ("", "sam-local"):
    raise pytest.UsageError(f"OAUTH_E2E_TARGET={E2E_TARGET!r}: only 'sam-local' (or unset)")
SAM_LOCAL = E2E_TARGET == "sam-local"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "sam_local: also run against `sam local start-api` (OAUTH_E2E_TARGET=sam-local, "
        "which infra/scripts/sam-local.sh --run sets; make test)",
    )


def pytest_collection_modifyitems(config, items):
    if not SAM_LOCAL:
        return
    keep = [i for i in items if i.get_closest_marker("sam_local")]
    dropped = [i for i in items if not i.get_closest_marker("sam_local")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


def _sam_local_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise pytest.UsageError(
            f"OAUTH_E2E_TARGET=sam-local needs {name}: run through infra/scripts/sam-local.sh --run"
        )
    return value


@dataclass
class SamLocalBackend(AwsBackend):
    """moto as sam-local.sh started it, reached directly (there is no fault proxy)."""

    endpoint: str = ""

    @property
    def moto_url(self) -> str:
        return self.endpoint

    @property
    def proxy_url(self) -> str:
        return self.endpoint


class SamLocalFunctions:
    """Stands where LambdaWatch does: the functions behind `sam local start-api`."""

    def __init__(self, base_url: str, function_env: dict[str, str], log_path: Path):
        self._base_url = base_url
        self.function_env = dict(function_env)
        self.log_path = log_path

    @property
    def base_url(self) -> str:
        return self._base_url

    def crashes(self) -> list[str]:
        return []

    def instances(self, function: str) -> int:
        pytest.skip("sam-local mode: no view of the function processes")

    def stop(self) -> None:
        pass


@dataclass
class SamLocalStack(Stack):
    def functions_with(self, **_):  # type: ignore[override]
        pytest.skip("sam-local mode: another function configuration needs another sam local")


if SAM_LOCAL:

    @pytest.fixture(scope="session")
    def aws_backend() -> Iterator[AwsBackend]:  # noqa: F811 (replaces the moto + proxy one)
        yield SamLocalBackend(moto_port=0, proxy=None, moto=None,  # type: ignore[arg-type]
                              endpoint=_sam_local_env("OAUTH_E2E_AWS_ENDPOINT"))

    @pytest.fixture
    def fault_proxy() -> Iterator[FaultProxy]:  # noqa: F811
        pytest.skip("sam-local mode: no fault proxy between the functions and moto")
        yield  # pragma: no cover

    @pytest.fixture(scope="session")
    def stack(aws_backend: AwsBackend) -> Iterator[Stack]:  # noqa: F811
        base_url = _sam_local_env("OAUTH_E2E_BASE_URL").rstrip("/")
        common = {"TABLE_NAME": _sam_local_env("OAUTH_E2E_TABLE_NAME"),
                  "SIGNING_KEYS_SECRET_ID": _sam_local_env("OAUTH_E2E_SECRET_ID"),
                  "AWS_REGION": REGION, **DUMMY_CREDS, "AWS_EC2_METADATA_DISABLED": "true"}
        ctl_env = {**common, "AWS_ENDPOINT_URL": aws_backend.moto_url}
        # What sam-local.sh put in the --env-vars file (the functions' view).
        function_env = {**common, "AWS_ENDPOINT_URL": aws_backend.moto_url,
                        "ISSUER": _sam_local_env("OAUTH_E2E_ISSUER")}
        oauthctl_bin = Path(_sam_local_env("OAUTH_E2E_OAUTHCTL"))
        functions = SamLocalFunctions(base_url, function_env,
                                      Path(os.environ.get("OAUTH_E2E_SAM_LOG", "")))
        try:
            requests.get(base_url + "/oauth/v2/jwks", timeout=30).raise_for_status()
        except requests.RequestException as e:
            pytest.fail(f"sam local not answering on {base_url}: {e}; log {functions.log_path}:\n"
                        f"{_tail(functions.log_path)}", pytrace=False)
        yield SamLocalStack(aws_backend, functions, ctl_env, function_env,  # type: ignore[arg-type]
                            oauthctl_bin)
