#!/usr/bin/env python3
"""Local-stack measurements of the token and authorize functions' release binaries (SPEC §7,
§10, §12).

A minimal Lambda Runtime API (the real protocol: GET .../invocation/next, POST
.../invocation/<id>/response) feeds the binary API Gateway HTTP API (v2) events; moto stands in
for DynamoDB and Secrets Manager.

  coldstart   process start -> first response: wall time, the function's own CPU time (read
              from /proc while the process waits for our 202 to its response, i.e. before it can
              poll again), peak RSS (VmHWM); moto's CPU in the same interval. Token: a
              client_credentials and a password request; authorize (with --authorize-binary):
              GET /oauth/v2/authorize of a registered browser client, answered by the login page.
  calls       AWS calls per request type, counted by an HTTP proxy between binary and moto
              (one X-Amz-Target per call); with --authorize-binary also a browser sign-in
              (authorize GET, login form POST, the code exchange at the token function).
  throughput  wrk (or a Python client) -> HTTP front end -> runtime API -> N function processes
              (Lambda runs one request per instance: concurrency N = N instances) -> moto.
              Requests/s plus the CPU of every process involved.

All traffic is on 127.0.0.1. Output: one JSON document on stdout (progress on stderr).
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import queue
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DOMAIN = "id.example.com"
RUNTIME_PREFIX = "/2018-06-01/runtime"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Server(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server; peers that hang up (a stopped function) are not errors."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus delayed ACK
    # add ~40 ms to every keep-alive exchange.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass


def log(msg):
    print(f"local_stack: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# /proc readings


def proc_cpu(pid):
    """(schedstat ns summed over live threads, utime+stime ns from /proc/<pid>/stat)."""
    sched = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    sched += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return sched, ticks * 1_000_000_000 // CLK_TCK


def proc_status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def proc_tree_cpu_ns(pid, ticks=False):
    """CPU ns of a process and its descendants (moto_server may fork workers).

    Default: schedstat of live threads (ns resolution; right for short intervals while the
    connections, and so moto's per-connection threads, stay open). ticks=True: utime+stime,
    which also counts threads that have exited (10 ms resolution; right for long runs)."""
    total = 0
    stack = [pid]
    seen = set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        reading = proc_cpu(p)
        if reading:
            total += reading[1] if ticks else reading[0]
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def self_cpu_ns():
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread, dead ones included
    return int((r.ru_utime + r.ru_stime) * 1e9)


# --------------------------------------------------------------------------------------------
# Events


def apigw_event(method, path, headers, body, query=""):
    now = time.time()
    event = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {k.lower(): v for k, v in headers.items()} | {"host": DOMAIN},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": DOMAIN,
            "domainPrefix": DOMAIN.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "bench",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if body:
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    if query:
        event["queryStringParameters"] = dict(urllib.parse.parse_qsl(query))
    return event


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def token_event(client_id, secret, **form):
    body = urllib.parse.urlencode(form).encode()
    return apigw_event(
        "POST",
        "/oauth/v2/token",
        {
            "authorization": basic(client_id, secret),
            "content-type": "application/x-www-form-urlencoded",
        },
        body,
    )


# The browser client's PKCE pair (RFC 7636 appendix B's verifier) and its redirect URI.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()


def authorize_event(args):
    """GET /oauth/v2/authorize of the browser client, no session: the login page."""
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": args.web_client_id,
            "redirect_uri": args.web_redirect_uri,
            "scope": "openid email",
            "state": "bench",
            "nonce": uuid.uuid4().hex,
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
        },
        quote_via=urllib.parse.quote,
    )
    return apigw_event("GET", "/oauth/v2/authorize", {"accept": "text/html"}, b"", query)


def login_event(page, username, password):
    """The login page's form, filled in and posted from the same origin."""

    def hidden(name):
        m = re.search(rf'name="{name}" value="([^"]*)"', page)
        if not m:
            raise RuntimeError(f"login page without {name}")
        return m.group(1)

    body = urllib.parse.urlencode(
        {
            "transaction": hidden("transaction"),
            "csrf_token": hidden("csrf_token"),
            "username": username,
            "password": password,
        }
    ).encode()
    return apigw_event(
        "POST",
        "/oauth/v2/authorize/login",
        {"content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "same-origin"},
        body,
    )


# --------------------------------------------------------------------------------------------
# Runtime API


class Invocation:
    def __init__(self, event):
        self.id = uuid.uuid4().hex
        self.event = json.dumps(event).encode()
        self.done = threading.Event()
        self.response = None
        self.error = None
        self.t_enqueued = time.perf_counter()
        self.t_next = None
        self.t_response = None
        self.on_response = None  # called in the handler before the function gets its 202


class RuntimeAPI:
    def __init__(self, function="token"):
        self.function = function
        self.pending = queue.Queue()
        self.by_id = {}
        self.lock = threading.Lock()
        self.next_calls = []  # perf_counter of every /next request's arrival
        self.on_next = None  # called when a /next arrives, before it blocks
        self.init_errors = []
        api = self

        class H(Handler):
            def reply(self, status, body=b"", headers=()):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != RUNTIME_PREFIX + "/invocation/next":
                    return self.reply(404)
                t = time.perf_counter()
                with api.lock:
                    api.next_calls.append(t)
                if api.on_next:
                    api.on_next(t)
                inv = api.pending.get()
                if inv is None:  # shutdown
                    return self.reply(503)
                inv.t_next = time.perf_counter()
                with api.lock:
                    api.by_id[inv.id] = inv
                deadline = int(time.time() * 1000) + 30_000
                self.reply(
                    200,
                    inv.event,
                    [
                        ("Content-Type", "application/json"),
                        ("Lambda-Runtime-Aws-Request-Id", inv.id),
                        ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                        (
                            "Lambda-Runtime-Invoked-Function-Arn",
                            f"arn:aws:lambda:us-east-1:123456789012:function:{api.function}",
                        ),
                        ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
                    ],
                )

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path == RUNTIME_PREFIX + "/init/error":
                    api.init_errors.append(body.decode(errors="replace"))
                    return self.reply(202)
                parts = self.path[len(RUNTIME_PREFIX) :].strip("/").split("/")
                if len(parts) != 3 or parts[0] != "invocation":
                    return self.reply(404)
                with api.lock:
                    inv = api.by_id.pop(parts[1], None)
                if inv is None:
                    return self.reply(400)
                inv.t_response = time.perf_counter()
                if parts[2] == "response":
                    inv.response = json.loads(body or b"null")
                else:
                    inv.error = body.decode(errors="replace")
                if inv.on_response:
                    inv.on_response(inv)
                inv.done.set()
                self.reply(202)

        self.server = Server(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def submit(self, event, on_response=None):
        inv = Invocation(event)
        inv.on_response = on_response
        self.pending.put(inv)
        return inv

    def invoke(self, event, timeout=30):
        inv = self.submit(event)
        if not inv.done.wait(timeout):
            raise RuntimeError("invocation timed out")
        return inv

    def close(self):
        self.server.shutdown()


def function_env(args, runtime_api, endpoint, name):
    env = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "TZ")
    }
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": endpoint,
            "TABLE_NAME": args.table,
            "SIGNING_KEYS_SECRET_ID": args.secret_id,
            "ACCESS_TOKEN_ALG": args.alg,
            "AWS_LAMBDA_LOG_LEVEL": "WARN",
            "RUST_LOG": "warn",
        }
    )
    return env


def start_function(args, runtime_api, endpoint, name="token", env=None, cpu_share=None):
    binary = {
        "authorize": args.authorize_binary,
        "tokeninfo": args.tokeninfo_binary,
        "discovery": args.discovery_binary,
        "floor": args.floor_binary,
    }.get(name) or (name if os.sep in name else args.binary)
    return subprocess.Popen(
        [binary],
        env=function_env(args, runtime_api, endpoint, name) | (env or {}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(args.function_log, "ab"),
        # In the child before exec: the whole process (every thread it starts) under the quota.
        preexec_fn=cpu_share.enter if cpu_share else None,
    )


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def response_text(inv):
    """(status, body text, headers) of a function's API Gateway v2 response."""
    if inv.error or not inv.response:
        raise RuntimeError(f"function error: {inv.error or inv.response}")
    body = inv.response.get("body") or ""
    if inv.response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    headers = {k.lower(): v for k, v in (inv.response.get("headers") or {}).items()}
    return inv.response.get("statusCode"), body, headers


def response_json(inv):
    status, body, _ = response_text(inv)
    return status, json.loads(body or "null")


# --------------------------------------------------------------------------------------------
# Cold start


def cold_start_once(args, event, moto_pid, name="token", cpu_share=None, endpoint=None, env=None):
    api = RuntimeAPI(name)
    marks = {}
    state = {"proc": None}

    def on_next(t):
        # First poll = init finished; read the function's CPU while it waits for the event.
        # With a preexec_fn (the CPU-share cgroup) the function can reach /next before Popen
        # has returned its handle: wait for it rather than miss the first poll.
        deadline = time.perf_counter() + 5
        while state["proc"] is None and time.perf_counter() < deadline:
            time.sleep(0.0002)
        if "t_first_next" not in marks and state["proc"] is not None:
            marks["t_first_next"] = t
            marks["cpu_at_next"] = proc_cpu(state["proc"].pid)

    def on_response(inv):
        pid = state["proc"].pid
        marks["t_response"] = time.perf_counter()
        marks["cpu_at_response"] = proc_cpu(pid)
        marks["vm_hwm_kib"] = proc_status_kib(pid, "VmHWM")
        marks["moto_cpu_end"] = proc_tree_cpu_ns(moto_pid)

    api.on_next = on_next
    inv = api.submit(event, on_response)
    moto_start = proc_tree_cpu_ns(moto_pid)
    t0 = time.perf_counter()
    state["proc"] = start_function(args, api.address, endpoint or args.endpoint, name, env, cpu_share)
    ok = inv.done.wait(60)
    stop(state["proc"])
    api.pending.put(None)
    api.close()
    if not ok:
        raise RuntimeError("cold start: no response within 60 s")
    status, body, _ = response_text(inv)
    if status != 200:
        raise RuntimeError(f"cold start {name}: status {status}: {body[:500]}")
    if name == "authorize" and 'name="csrf_token"' not in body:
        raise RuntimeError(f"cold start authorize: not the login page: {body[:500]}")
    sched, ticks = marks["cpu_at_response"]
    init_sched = marks["cpu_at_next"][0] if marks.get("cpu_at_next") else None
    return {
        "wall_ms": (marks["t_response"] - t0) * 1e3,
        "init_wall_ms": (marks["t_first_next"] - t0) * 1e3,
        "invoke_wall_ms": (marks["t_response"] - inv.t_next) * 1e3,
        "cpu_ms": sched / 1e6,
        "cpu_stat_ms": ticks / 1e6,
        "init_cpu_ms": init_sched / 1e6 if init_sched is not None else None,
        "off_cpu_ms": (marks["t_response"] - t0) * 1e3 - sched / 1e6,
        "moto_cpu_ms": (marks["moto_cpu_end"] - moto_start) / 1e6,
        "vm_hwm_mib": marks["vm_hwm_kib"] / 1024,
    }


def cold_start(args):
    paths = {
        "client_credentials": ("token", lambda: token_event(
            args.cc_client_id, args.cc_client_secret, grant_type="client_credentials", scope="read"
        )),
        "password": ("token", lambda: token_event(
            args.pw_client_id,
            args.pw_client_secret,
            grant_type="password",
            username=args.username,
            password=args.password,
            scope="read",
        )),
    }
    if args.authorize_binary:
        paths["authorize_login_page"] = ("authorize", lambda: authorize_event(args))
    out = {}
    for name, (function, make_event) in paths.items():
        runs = []
        for i in range(args.repeat):
            runs.append(cold_start_once(args, make_event(), args.moto_pid, function))
            log(f"cold start {name} #{i + 1}: " + ", ".join(f"{k}={v:.1f}" for k, v in runs[-1].items() if v is not None))
        median = {
            k: statistics.median(r[k] for r in runs)
            for k in runs[0]
            if runs[0][k] is not None
        }
        out[name] = {"median": median, "runs": runs}
    return out


# --------------------------------------------------------------------------------------------
# Counting proxy


class CountingProxy:
    """Keep-alive HTTP/1.1 towards the functions (moto closes every connection; Lambda's SDK
    keeps its own open), one connection per thread towards moto, counting X-Amz-Target.
    tls=(cert, key) serves HTTPS, as the storage endpoints are on AWS."""

    def __init__(self, upstream_port, tls=None):
        self.calls = []
        self.lock = threading.Lock()
        proxy = self
        local = threading.local()

        def upstream():
            if getattr(local, "conn", None) is None:
                local.conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
            return local.conn

        class H(Handler):
            def forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                target = self.headers.get("X-Amz-Target") or f"{self.command} {self.path}"
                with proxy.lock:
                    proxy.calls.append(target)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                for attempt in range(2):
                    conn = upstream()
                    try:
                        conn.request(self.command, self.path, body=body, headers=headers)
                        resp = conn.getresponse()
                        data = resp.read()
                        break
                    except (http.client.HTTPException, OSError):
                        conn.close()
                        local.conn = None
                        if attempt:
                            raise
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

        self.server = Server(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self):
        with self.lock:
            calls, self.calls = self.calls, []
        counts = {}
        for c in calls:
            short = c.split(".", 1)[1] if "." in c else c
            counts[short] = counts.get(short, 0) + 1
        return counts


def calls(args):
    proxy = CountingProxy(args.moto_port)
    api = RuntimeAPI()
    proc = start_function(args, api.address, f"http://127.0.0.1:{proxy.port}")
    out = {}
    try:

        def run(name, event, expect=200):
            inv = api.invoke(event)
            status, body = response_json(inv)
            if status != expect:
                raise RuntimeError(f"{name}: status {status}: {body}")
            out[name] = proxy.take()
            log(f"calls {name}: {out[name]}")
            return body

        cc = dict(grant_type="client_credentials", scope="read")
        run("client_credentials (cold: key set load)", token_event(args.cc_client_id, args.cc_client_secret, **cc))
        run("client_credentials", token_event(args.cc_client_id, args.cc_client_secret, **cc))
        body = run(
            "password (refresh issued)",
            token_event(
                args.pw_client_id,
                args.pw_client_secret,
                grant_type="password",
                username=args.username,
                password=args.password,
                scope="read",
            ),
        )
        body = run(
            "refresh_token",
            token_event(
                args.pw_client_id,
                args.pw_client_secret,
                grant_type="refresh_token",
                refresh_token=body["refresh_token"],
            ),
        )
        run(
            "password, wrong password",
            token_event(
                args.pw_client_id,
                args.pw_client_secret,
                grant_type="password",
                username=args.username,
                password="not-the-password",
                scope="read",
            ),
            expect=400,
        )
        run(
            "password, unknown user (first failure of its window)",
            token_event(
                args.pw_client_id,
                args.pw_client_secret,
                grant_type="password",
                username="nobody-" + uuid.uuid4().hex[:12],
                password="not-the-password",
                scope="read",
            ),
            expect=400,
        )
        run(
            "password, wrong password again (same window)",
            token_event(
                args.pw_client_id,
                args.pw_client_secret,
                grant_type="password",
                username=args.username,
                password="not-the-password",
                scope="read",
            ),
            expect=400,
        )
        run(
            "password after a failure (counter reset)",
            token_event(
                args.pw_client_id,
                args.pw_client_secret,
                grant_type="password",
                username=args.username,
                password=args.password,
                scope="read",
            ),
        )
    finally:
        stop(proc)
        api.pending.put(None)
        api.close()
        proxy.server.shutdown()
    return out


def sign_in_calls(args):
    """A browser sign-in through both functions behind the counting proxy: the authorize
    function's first and second login page, the login form, the code exchange (token function
    already warm, so its key set load is not counted here)."""
    proxy = CountingProxy(args.moto_port)
    endpoint = f"http://127.0.0.1:{proxy.port}"
    auth_api, token_api = RuntimeAPI("authorize"), RuntimeAPI("token")
    procs = [
        start_function(args, auth_api.address, endpoint, "authorize"),
        start_function(args, token_api.address, endpoint, "token"),
    ]
    out = {}
    try:

        def run(api, name, event, expect):
            status, body, headers = response_text(api.invoke(event))
            if status != expect:
                raise RuntimeError(f"{name}: status {status}: {body[:500]}")
            out[name] = proxy.take()
            log(f"calls {name}: {out[name]}")
            return body, headers

        run(
            token_api,
            "(token function warm-up)",
            token_event(args.cc_client_id, args.cc_client_secret, grant_type="client_credentials", scope="read"),
            200,
        )
        del out["(token function warm-up)"]
        run(auth_api, "authorize GET, login page (cold)", authorize_event(args), 200)
        page, _ = run(auth_api, "authorize GET, login page", authorize_event(args), 200)
        _, headers = run(
            auth_api, "login form POST (session + code)", login_event(page, args.username, args.password), 303
        )
        location = headers.get("location", "")
        code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query)).get("code")
        if not code:
            raise RuntimeError(f"login form: no code in {location!r}")
        body, _ = run(
            token_api,
            "authorization_code exchange (refresh issued)",
            token_event(
                args.web_client_id,
                args.web_client_secret,
                grant_type="authorization_code",
                code=code,
                redirect_uri=args.web_redirect_uri,
                code_verifier=VERIFIER,
            ),
            200,
        )
        if "id_token" not in json.loads(body):
            raise RuntimeError(f"code exchange without an id_token: {body[:300]}")
    finally:
        for proc in procs:
            stop(proc)
        for api in (auth_api, token_api):
            api.pending.put(None)
            api.close()
        proxy.server.shutdown()
    return out



# --------------------------------------------------------------------------------------------
# Warm whole-process CPU per request


def wait_idle(api, polls):
    """Until the function has made `polls` /next calls: it is then idle, waiting for an event."""
    deadline = time.perf_counter() + 30
    while len(api.next_calls) < polls:
        if time.perf_counter() > deadline:
            raise RuntimeError("function did not come back to /next")
        time.sleep(0.0005)


def checked(api, event, expect, what):
    status, body, headers = response_text(api.invoke(event))
    if status != expect:
        raise RuntimeError(f"{what}: status {status}: {body[:300]}")
    return body, headers


class WarmFunction:
    """One function process, warmed up, whose CPU is read only while it waits at /next: a
    reading covers whole invocations (event fetch, handler, storage calls, response post)."""

    def __init__(self, args, name, endpoint, env=None, cpu_share=None):
        self.api = RuntimeAPI(name)
        self.proc = start_function(args, self.api.address, endpoint, name, env, cpu_share)

    def latencies(self, one, n):
        """Wall ms of each of n sequential invocations, as the emulator sees them."""
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            one(self.api)
            out.append((time.perf_counter() - t0) * 1e3)
        return out

    def measure(self, one, n):
        wait_idle(self.api, len(self.api.next_calls) or 1)
        polls = len(self.api.next_calls)
        sched0, ticks0 = proc_cpu(self.proc.pid)
        t0 = time.perf_counter()
        for _ in range(n):
            one(self.api)
        wall = time.perf_counter() - t0
        wait_idle(self.api, polls + n)
        sched1, ticks1 = proc_cpu(self.proc.pid)
        return {
            "n": n,
            "cpu_ms": (sched1 - sched0) / 1e6 / n,
            "cpu_stat_ms": (ticks1 - ticks0) / 1e6 / n,
            "wall_ms": wall * 1e3 / n,
        }

    def close(self):
        stop(self.proc)
        self.api.pending.put(None)
        self.api.close()


ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def private_key_jwt_one(args):
    """client_credentials with a fresh ES256 client assertion per request (signed here, untimed:
    only the function's CPU is read)."""
    import uuid

    import jwt  # PyJWT, in the test venv

    key = open(args.pkj_key).read()
    issuer = f"https://{DOMAIN}/oauth"

    def one(api):
        now = int(time.time())
        claims = {"iss": args.pkj_client_id, "sub": args.pkj_client_id, "aud": f"{issuer}/v2/token",
                  "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}
        assertion = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "bench-1"})
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "read",
                                       "client_assertion_type": ASSERTION_TYPE,
                                       "client_assertion": assertion}).encode()
        headers = {"content-type": "application/x-www-form-urlencoded"}
        checked(api, apigw_event("POST", "/oauth/v2/token", headers, form), 200, "private_key_jwt")

    return one


def dpop_one(args):
    """client_credentials (client secret) with a fresh ES256 DPoP proof per request (RFC 9449,
    signed here, untimed): one signature verification and one conditional write more."""
    import uuid

    import jwt  # PyJWT, in the test venv
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(open(args.pkj_key, "rb").read(), None)
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    url = f"https://{DOMAIN}/oauth/v2/token"

    def one(api):
        claims = {"jti": str(uuid.uuid4()), "htm": "POST", "htu": url, "iat": int(time.time())}
        proof = jwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": jwk})
        event = token_event(args.cc_client_id, args.cc_client_secret,
                            grant_type="client_credentials", scope="read")
        event["headers"]["dpop"] = proof
        checked(api, event, 200, "dpop")

    return one


def warm_cases(args):
    """(function, case name, env, prepare() -> one(api), n). prepare runs untimed."""
    cc = dict(grant_type="client_credentials", scope="read")
    pw = dict(grant_type="password", username=args.username, password=args.password, scope="read")

    def fixed(function, event_fn, expect=200):
        return lambda: lambda api: checked(api, event_fn(), expect, function)

    cases = [
        (
            "token",
            f"client_credentials {alg}",
            {"ACCESS_TOKEN_ALG": alg},
            fixed("token", lambda: token_event(args.cc_client_id, args.cc_client_secret, **cc)),
            args.warm_n,
        )
        for alg in ("RS256", "ES256", "EdDSA")
    ]
    cases.append(("token", "password", {}, fixed("token", lambda: token_event(args.pw_client_id, args.pw_client_secret, **pw)), max(10, args.warm_n // 20)))
    if args.pkj_client_id:
        cases.append(("token", "client_credentials ES256 private_key_jwt", {"ACCESS_TOKEN_ALG": "ES256"}, lambda: private_key_jwt_one(args), args.warm_n))
        cases.append(("token", "client_credentials ES256 + DPoP proof", {"ACCESS_TOKEN_ALG": "ES256"}, lambda: dpop_one(args), args.warm_n))

    def refresh_chain():
        state = {}

        def one(api):
            if "rt" not in state:
                body, _ = checked(api, token_event(args.pw_client_id, args.pw_client_secret, **pw), 200, "password")
                state["rt"] = json.loads(body)["refresh_token"]
                return
            body, _ = checked(
                api,
                token_event(args.pw_client_id, args.pw_client_secret, grant_type="refresh_token", refresh_token=state["rt"]),
                200,
                "refresh_token",
            )
            state["rt"] = json.loads(body)["refresh_token"]

        # The first call (a password grant) happens during warm-up.
        return one

    cases.append(("token", "refresh_token", {}, refresh_chain, args.warm_n // 2))

    def access_token():
        status, body = response_json(args.token_api.invoke(token_event(args.cc_client_id, args.cc_client_secret, **cc)))
        if status != 200:
            raise RuntimeError(f"access token for tokeninfo: {status} {body}")
        return body["access_token"]

    if args.tokeninfo_binary:

        def introspection():
            form = urllib.parse.urlencode({"token": access_token()}).encode()
            headers = {
                "authorization": basic(args.cc_client_id, args.cc_client_secret),
                "content-type": "application/x-www-form-urlencoded",
            }
            return lambda api: checked(api, apigw_event("POST", "/oauth/v2/tokeninfo", headers, form), 200, "introspection")

        cases.append(("tokeninfo", "introspection (RFC 7662)", {}, introspection, args.warm_n))
    if args.discovery_binary:
        cases.append(("discovery", "JWKS", {}, fixed("discovery", lambda: apigw_event("GET", "/oauth/v2/jwks", {}, b"")), args.warm_n))
        cases.append(
            (
                "discovery",
                "openid-configuration",
                {},
                fixed("discovery", lambda: apigw_event("GET", "/oauth/.well-known/openid-configuration", {}, b"")),
                args.warm_n,
            )
        )
    if args.authorize_binary:
        cases.append(("authorize", "authorize GET (login page)", {}, fixed("authorize", lambda: authorize_event(args)), args.warm_n))

        def login_post():
            def one(api):
                page, _ = checked(args.authorize_api, authorize_event(args), 200, "login page")
                checked(api, login_event(page, args.username, args.password), 303, "login POST")

            return one

        # Each POST needs a fresh login page: the page comes from a second authorize process,
        # so only the POST is counted in this one.
        cases.append(("authorize", "login form POST (session + code)", {}, login_post, max(10, args.warm_n // 20)))

        def code_exchange():
            codes = []

            def one(api):
                if not codes:
                    raise RuntimeError("code exchange: out of codes")
                checked(
                    api,
                    token_event(
                        args.web_client_id,
                        args.web_client_secret,
                        grant_type="authorization_code",
                        code=codes.pop(),
                        redirect_uri=args.web_redirect_uri,
                        code_verifier=VERIFIER,
                    ),
                    200,
                    "code exchange",
                )

            # Codes live 60 s (SPEC): made just before the timed loop, by the helper process.
            for _ in range(args.code_n + 5):  # 5 go to the warm-up
                page, _ = checked(args.authorize_api, authorize_event(args), 200, "login page")
                _, headers = checked(args.authorize_api, login_event(page, args.username, args.password), 303, "login")
                location = headers.get("location", "")
                codes.append(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"])
            return one

        cases.append(("token", "authorization_code exchange", {}, code_exchange, args.code_n))
    return cases


def test_ca(work):
    """A CA and a leaf for 127.0.0.1 (openssl), so the functions' SDK (rustls, roots from
    SSL_CERT_FILE) trusts the TLS proxy. Returns (ca_file, (leaf_cert, leaf_key)) or None."""
    if not shutil.which("openssl"):
        return None
    os.makedirs(work, exist_ok=True)
    f = lambda name: os.path.join(work, name)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run = lambda *cmd: subprocess.run(cmd, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", *ec, "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "2",
        "-subj", "/CN=bench local CA")
    run("openssl", "req", *ec, "-keyout", f("leaf.key"), "-out", f("leaf.csr"), "-subj", "/CN=127.0.0.1")
    with open(f("leaf.ext"), "w") as ext:
        ext.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
                  "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", f("leaf.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"),
        "-CAcreateserial", "-out", f("leaf.pem"), "-days", "2", "-extfile", f("leaf.ext"))
    return f("ca.pem"), (f("leaf.pem"), f("leaf.key"))


def warm(args):
    """Whole-process CPU per warm request, one instance, sequential, for each route, with the
    storage endpoint behind a keep-alive stand-in over TLS (as on AWS: the SDK keeps one TLS
    connection open). client_credentials also over plain keep-alive HTTP and straight to moto
    (a new connection per call, which is what moto alone gives)."""
    ca = test_ca(os.path.join(args.work, "tls"))
    plain = CountingProxy(args.moto_port)
    proxies = [plain]
    storage = {}  # mode -> (endpoint, env, counting proxy or None)
    if ca:
        tls = CountingProxy(args.moto_port, tls=ca[1])
        proxies.append(tls)
        storage["TLS, kept alive"] = (tls.url, {"SSL_CERT_FILE": ca[0]}, tls)
    else:
        log("openssl missing: warm cases over plain HTTP only")
    storage["plain HTTP, kept alive"] = (plain.url, {}, plain)
    storage["plain HTTP, new connection per call"] = (args.endpoint, {}, None)
    main_mode = next(iter(storage))
    main_url, main_env, _ = storage[main_mode]

    helpers = {"token": WarmFunction(args, "token", main_url, main_env)}
    args.token_api = helpers["token"].api
    if args.authorize_binary:
        helpers["authorize"] = WarmFunction(args, "authorize", main_url, main_env)
        args.authorize_api = helpers["authorize"].api
    out = {"main_storage": main_mode, "cases": {}}
    try:
        runs = [(case, main_mode) for case in warm_cases(args)]
        if args.warm_only:
            runs = [(case, mode) for case, mode in runs if args.warm_only in case[1]]
        client_credentials = [c for c, _ in runs if c[1].startswith("client_credentials")]
        for case in client_credentials[:2]:  # RS256 and ES256
            runs += [(case, mode) for mode in storage if mode != main_mode]
        for function, name, env, prepare, n in client_credentials:
            cached = (function, f"{name}, CLIENT_CACHE_SECONDS=60", env | {"CLIENT_CACHE_SECONDS": "60"}, prepare, n)
            runs.append((cached, main_mode))
        for (function, name, env, prepare, n), mode in runs:
            endpoint, storage_env, proxy = storage[mode]
            label = name if mode == main_mode else f"{name}, storage {mode}"
            fn = WarmFunction(args, function, endpoint, env | storage_env)
            try:
                one = prepare()
                for _ in range(5):  # cold start, key set load, connections
                    one(fn.api)
                if proxy:
                    proxy.take()
                result = fn.measure(one, n)
                if proxy:
                    result["storage_calls_per_request"] = {k: v / n for k, v in proxy.take().items()}
                result["rss_mib"] = (proc_status_kib(fn.proc.pid, "VmRSS") or 0) / 1024
                result["threads"] = proc_status_kib(fn.proc.pid, "Threads")
                result["storage"] = mode
            finally:
                fn.close()
            out["cases"][label] = result
            log(f"warm {label}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
        endpoint, storage_env, _ = storage[main_mode]
        for function, name, env, prepare, n in client_credentials[:3]:  # each alg, secret auth
            pair = interleaved_sdk_comparison(args, function, env | storage_env, endpoint, prepare, n)
            for label, result in pair.items():
                out["cases"][f"{name}, {label}"] = result
                log(f"warm {name}, {label}: " + ", ".join(f"{k}={v}" for k, v in result.items()))
        if args.oidc_provider_dir:
            for function, name, env, prepare, n in client_credentials[:2]:  # RS256, ES256
                alg = name.split()[-1]
                pair = oidc_provider_comparison(args, function, env | storage_env, endpoint, prepare, n, alg)
                for label, result in pair.items():
                    out["cases"][f"{name}, {label}"] = result
                    log(f"warm {name}, {label}: " + ", ".join(f"{k}={v}" for k, v in result.items()))
        # The no-storage routes beside the floor without a storage call.
        no_storage = [c for c, _ in runs if c[1] in ("JWKS", "openid-configuration")] if args.floor_binary else []
        for function, name, env, prepare, n in no_storage:
            pair = interleaved_floor_comparison(args, function, env | storage_env, endpoint, prepare, n, 0)
            for label, result in pair.items():
                out["cases"][f"{name}, {label}"] = result
                log(f"warm {name}, {label}: " + ", ".join(f"{k}={v}" for k, v in result.items()))
    finally:
        for h in helpers.values():
            h.close()
        for p in proxies:
            p.server.shutdown()
    return out


SDK_ONLY = {"DYNAMODB_SDK_ONLY": "true"}
DIRECT = "GetItem direct (interleaved)"
SDK = "GetItem through the SDK, DYNAMODB_SDK_ONLY=true (interleaved)"
FLOOR = "round-trip floor (interleaved)"
COMPARED = "GetItem direct, the --compare-binary build (interleaved)"
FUNCTION = "the function (interleaved)"


def alternate_batches(measures, n, rounds=10):
    """label -> measure(batch) -> CPU ms per request, called in alternating batches (the order
    flipping each round) so that a change of machine load lands on all of them. Median per
    label of its batches."""
    batch = max(1, n // rounds)
    samples = {label: [] for label in measures}
    for r in range(rounds):
        order = list(measures.items())
        if r % 2:
            order.reverse()
        for label, measure in order:
            samples[label].append(measure(batch))
    return {label: {"n": batch * rounds, "rounds": rounds, "cpu_ms": statistics.median(v),
                    "cpu_ms_batches": [round(x, 3) for x in v]} for label, v in samples.items()}


def interleaved(args, variants, endpoint, prepare, n, rounds=10):
    """Function processes measured in alternating batches: label -> (function name, env)."""
    functions = {label: WarmFunction(args, function, endpoint, env)
                 for label, (function, env) in variants.items()}
    try:
        one = prepare()
        for fn in functions.values():
            for _ in range(5):
                one(fn.api)
        return alternate_batches({label: (lambda batch, fn=fn: fn.measure(one, batch)["cpu_ms"])
                                  for label, fn in functions.items()}, n, rounds)
    finally:
        for fn in functions.values():
            fn.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OidcProvider:
    """node oidc-provider (bench/oidc-provider/server.js) answering client_credentials with JWT
    access tokens, driven over one kept-alive connection; `measure` reads the node process's
    CPU per token as WarmFunction.measure reads a function's."""

    SECRET = "bench-secret-bench-secret-bench-secret-bench"

    def __init__(self, directory, alg):
        port = free_port()
        self.proc = subprocess.Popen(["node", "server.js", str(port), alg], cwd=directory,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("oidc-provider did not start")
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "read"})
        self.headers = {"Authorization": basic("bench", self.SECRET),
                        "Content-Type": "application/x-www-form-urlencoded"}

    def one(self):
        self.conn.request("POST", "/token", body=self.body, headers=self.headers)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"oidc-provider: status {resp.status}: {data[:300]!r}")

    def measure(self, n):
        sched0, _ = proc_cpu(self.proc.pid)
        for _ in range(n):
            self.one()
        sched1, _ = proc_cpu(self.proc.pid)
        return (sched1 - sched0) / 1e6 / n

    def close(self):
        self.conn.close()
        stop(self.proc)


def oidc_provider_comparison(args, function, env, endpoint, prepare, n, alg, rounds=10):
    """This function (GetItem direct) and oidc-provider, each signing with `alg`, in
    alternating batches: median CPU per token of each, and the ratio."""
    fn = WarmFunction(args, function, endpoint, env)
    node = OidcProvider(args.oidc_provider_dir, alg)
    try:
        one = prepare()
        for _ in range(5):
            one(fn.api)
        for _ in range(50):  # node's JIT
            node.one()
        ours, theirs = ("this function (interleaved with oidc-provider)",
                        "node oidc-provider 9.13, JWT access token, no storage (interleaved)")
        out = alternate_batches({ours: lambda batch: fn.measure(one, batch)["cpu_ms"],
                                 theirs: node.measure}, n, rounds)
        out[ours]["over_oidc_provider"] = round(out[ours]["cpu_ms"] / out[theirs]["cpu_ms"], 3)
        return out
    finally:
        node.close()
        fn.close()


def floor_env(storage_calls):
    """The round-trip floor (shared/examples/round_trip_floor.rs): the Runtime API exchanges
    and this many storage round trips on blocking sockets, nothing else."""
    return {"FLOOR_STORAGE_CALLS": str(storage_calls)}


def interleaved_sdk_comparison(args, function, env, endpoint, prepare, n, rounds=10):
    """The same binary twice, GetItem direct and through the AWS SDK (DYNAMODB_SDK_ONLY), and
    the round-trip floor with the one storage call, interleaved; the direct/SDK ratio, and what
    the direct path spends above the floor."""
    variants = {DIRECT: (function, env), SDK: (function, env | SDK_ONLY)}
    if args.floor_binary:
        variants[FLOOR] = ("floor", env | floor_env(1))
    if args.compare_binary:  # another build of the same function, A/B in the same run
        variants[COMPARED] = (args.compare_binary, env)
    out = interleaved(args, variants, endpoint, prepare, n, rounds)
    direct, sdk = out[DIRECT]["cpu_ms"], out[SDK]["cpu_ms"]
    for label in (DIRECT, SDK):
        out[label]["direct_over_sdk"] = round(direct / sdk, 3)
    if COMPARED in out:
        out[COMPARED]["compared_over_this_build"] = round(out[COMPARED]["cpu_ms"] / direct, 3)
    for label in out:
        if FLOOR in out and label != FLOOR:
            out[label]["above_floor_ms"] = round(out[label]["cpu_ms"] - out[FLOOR]["cpu_ms"], 4)
    return out


def interleaved_floor_comparison(args, function, env, endpoint, prepare, n, storage_calls):
    """A route's function and the round-trip floor with the same storage calls, interleaved."""
    out = interleaved(args, {FUNCTION: (function, env),
                             FLOOR: ("floor", env | floor_env(storage_calls))},
                      endpoint, prepare, n)
    out[FUNCTION]["above_floor_ms"] = round(out[FUNCTION]["cpu_ms"] - out[FLOOR]["cpu_ms"], 4)
    return out



# --------------------------------------------------------------------------------------------
# Latency at each Lambda memory size (a cgroup v1 CPU quota per size)

# Lambda gives a function one vCPU at 1,769 MB, in proportion below (AWS Lambda docs,
# "Configuring memory"); CFS enforces a quota per period, as a share of a host CPU would be.
FULL_VCPU_MB = 1769
MEMORY_SIZES_MB = (128, 256, 512, 1024, 1769)
CGROUP_CPU = "/sys/fs/cgroup/cpu"
CFS_PERIOD_US = 100_000  # the kernel's default period


class CpuShare:
    """A cgroup v1 `cpu` group whose quota is Lambda's CPU share at `memory_mb`."""

    def __init__(self, memory_mb):
        self.path = os.path.join(CGROUP_CPU, f"oauth-bench-{memory_mb}mb")
        os.makedirs(self.path, exist_ok=True)
        with open(os.path.join(self.path, "cpu.cfs_period_us"), "w") as f:
            f.write(str(CFS_PERIOD_US))
        with open(os.path.join(self.path, "cpu.cfs_quota_us"), "w") as f:
            f.write(str(max(1000, CFS_PERIOD_US * memory_mb // FULL_VCPU_MB)))
        self.procs = os.path.join(self.path, "cgroup.procs")

    def enter(self):
        with open(self.procs, "w") as f:
            f.write(str(os.getpid()))

    def throttled_ms(self):
        with open(os.path.join(self.path, "cpu.stat")) as f:
            stat = dict(line.split() for line in f)
        return int(stat.get("throttled_time", 0)) / 1e6

    def close(self):
        try:
            os.rmdir(self.path)
        except OSError:
            pass


def cgroups_usable():
    probe = os.path.join(CGROUP_CPU, "oauth-bench-probe")
    try:
        os.makedirs(probe, exist_ok=True)
        ok = os.path.exists(os.path.join(probe, "cpu.cfs_quota_us"))
        os.rmdir(probe)
        return ok
    except OSError:
        return False


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def memory_sizes(args):
    """Cold start (wall) and warm p50/p99 of sequential requests per Lambda memory size, the
    function process alone under the quota (emulator, proxy and moto outside it)."""
    if not cgroups_usable():
        log("memory sizes: cgroup v1 cpu controller not writable here (needs root); skipped")
        return None
    ca = test_ca(os.path.join(args.work, "tls"))
    proxy = CountingProxy(args.moto_port, tls=ca[1] if ca else None)
    storage_env = {"SSL_CERT_FILE": ca[0]} if ca else {}
    cc = dict(grant_type="client_credentials", scope="read")
    event = lambda: token_event(args.cc_client_id, args.cc_client_secret, **cc)  # noqa: E731
    one = lambda api: checked(api, event(), 200, "client_credentials")  # noqa: E731
    out = {"period_ms": CFS_PERIOD_US / 1000, "storage": "TLS, kept alive" if ca else "plain HTTP, kept alive", "sizes": {}}
    try:
        for mb in args.memory_sizes:
            share = CpuShare(mb)
            row = {"cpu_share": mb / FULL_VCPU_MB}
            try:
                colds = [
                    cold_start_once(args, event(), args.moto_pid, "token", share, proxy.url, storage_env)["wall_ms"]
                    for _ in range(args.memory_cold_repeat)
                ]
                row["cold_start_wall_ms"] = statistics.median(colds)
                for alg in ("RS256", "ES256"):
                    fn = WarmFunction(args, "token", proxy.url, {"ACCESS_TOKEN_ALG": alg} | storage_env, share)
                    try:
                        for _ in range(5):
                            one(fn.api)
                        throttled0 = share.throttled_ms()
                        lat = fn.latencies(one, args.memory_n)
                        row[alg] = {
                            "p50_ms": percentile(lat, 0.50),
                            "p99_ms": percentile(lat, 0.99),
                            "max_ms": max(lat),
                            "n": len(lat),
                            "throttled_ms_per_request": (share.throttled_ms() - throttled0) / len(lat),
                        }
                    finally:
                        fn.close()
            finally:
                share.close()
            out["sizes"][str(mb)] = row
            log(f"memory {mb} MB: {row}")
    finally:
        proxy.server.shutdown()
    return out

# --------------------------------------------------------------------------------------------
# Throughput


class FrontEnd:
    """HTTP -> API Gateway v2 event -> runtime API -> HTTP response."""

    def __init__(self, api):
        self.statuses = {}
        front = self

        class H(Handler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                event = apigw_event("POST", path, dict(self.headers.items()), body)
                inv = api.submit(event)
                if not inv.done.wait(30) or not inv.response:
                    status, headers, data = 502, {}, b'{"error":"bad_gateway"}'
                else:
                    r = inv.response
                    status = r.get("statusCode", 502)
                    headers = r.get("headers") or {}
                    data = r.get("body") or ""
                    data = base64.b64decode(data) if r.get("isBase64Encoded") else data.encode()
                front.statuses[status] = front.statuses.get(status, 0) + 1
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("content-length", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = Server(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def python_load(url_port, body, auth, seconds, concurrency):
    """Fallback load generator when wrk is missing: closed loop, `concurrency` connections."""
    stop_at = time.perf_counter() + seconds
    counts = [0] * concurrency

    def worker(i):
        conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=30)
        while time.perf_counter() < stop_at:
            conn.request(
                "POST",
                "/oauth/v2/token",
                body=body,
                headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"},
            )
            conn.getresponse().read()
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0), "python"


def wrk_load(port, body, auth, seconds, concurrency):
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        f'wrk.headers["Authorization"] = "{auth}"\n'
    )
    script.close()
    threads = min(2, concurrency)
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            script.name,
            f"http://127.0.0.1:{port}/oauth/v2/token",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    os.unlink(script.name)
    rps = None
    latency = {}
    for line in result.stdout.splitlines():
        s = line.split()
        if line.startswith("Requests/sec:"):
            rps = float(s[1])
        elif len(s) == 2 and s[0] in ("50%", "99%"):
            latency[s[0]] = s[1]
    log("wrk: " + " | ".join(l.strip() for l in result.stdout.splitlines() if l.strip()))
    return rps, latency


def throughput(args):
    api = RuntimeAPI()
    front = FrontEnd(api)
    procs = [start_function(args, api.address, args.endpoint) for _ in range(args.concurrency)]
    body = f"grant_type=client_credentials&scope=read"
    auth = basic(args.cc_client_id, args.cc_client_secret)
    try:
        # Warm every instance (keys loaded, connections open).
        warm = [
            api.submit(token_event(args.cc_client_id, args.cc_client_secret, grant_type="client_credentials", scope="read"))
            for _ in range(args.concurrency * 3)
        ]
        for inv in warm:
            if not inv.done.wait(60):
                raise RuntimeError("throughput warm-up timed out")
            status, payload = response_json(inv)
            if status != 200:
                raise RuntimeError(f"warm-up: {status} {payload}")
        front.statuses.clear()
        moto0 = proc_tree_cpu_ns(args.moto_pid, ticks=True)
        fn0 = sum(proc_cpu(p.pid)[1] for p in procs)
        load0 = os.getloadavg()[0]
        me0 = self_cpu_ns()
        ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        latency = {}
        if shutil.which("wrk") and not args.python_load:
            rps, latency = wrk_load(front.port, body, auth, args.seconds, args.concurrency)
            tool = "wrk"
        else:
            rps, tool = python_load(front.port, body, auth, args.seconds, args.concurrency)
        wall = time.perf_counter() - t0
        ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        moto = proc_tree_cpu_ns(args.moto_pid, ticks=True) - moto0
        fn = sum(proc_cpu(p.pid)[1] for p in procs) - fn0
        me = self_cpu_ns() - me0
        gen = (ch1.ru_utime + ch1.ru_stime - ch0.ru_utime - ch0.ru_stime) * 1e9
        if tool == "python":
            gen, me = me * 0.5, me * 0.5  # same process: split is not observable; reported as such
        total = sum(front.statuses.values())
        ok = sum(v for k, v in front.statuses.items() if 200 <= k < 300)
        ncpu = os.cpu_count()

        def share(ns):
            return {"cores": ns / 1e9 / wall, "pct_of_machine": 100 * ns / 1e9 / wall / ncpu}

        return {
            "tool": tool,
            "seconds": wall,
            "concurrency": args.concurrency,
            "instances": args.concurrency,
            "requests_per_s": rps,
            "requests": total,
            "non_2xx": total - ok,
            "latency": latency,
            "cpu": {
                "moto": share(moto),
                "function_instances": share(fn),
                "runtime_api_emulator": share(me),
                "load_generator": share(gen),
            },
            "loadavg_1m_before_after": [load0, os.getloadavg()[0]],
            "function_cpu_ms_per_request": fn / 1e6 / ok if ok else None,
            "moto_cpu_ms_per_request": moto / 1e6 / ok if ok else None,
        }
    finally:
        for p in procs:
            stop(p)
        for _ in procs:
            api.pending.put(None)
        front.server.shutdown()
        api.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["coldstart", "calls", "warm", "memory", "throughput", "all"])
    p.add_argument("--binary", required=True, help="the token function's binary")
    p.add_argument("--authorize-binary", help="the authorize function's binary (optional)")
    p.add_argument("--tokeninfo-binary", help="the tokeninfo function's binary (optional)")
    p.add_argument("--discovery-binary", help="the discovery function's binary (optional)")
    p.add_argument("--floor-binary", help="the round-trip floor (shared/examples/round_trip_floor.rs)")
    p.add_argument("--compare-binary", help="another build of the token function, interleaved with this one")
    p.add_argument("--oidc-provider-dir", help="bench/oidc-provider with node_modules: the comparison server")
    p.add_argument("--work", default=".local/bench", help="scratch files (the TLS test CA)")
    p.add_argument("--warm-only", help="only the warm cases whose name contains this")
    p.add_argument("--warm-n", type=int, default=400, help="requests per warm case")
    p.add_argument("--memory-sizes", type=lambda v: [int(x) for x in v.split(",")],
                   default=list(MEMORY_SIZES_MB), help="Lambda memory sizes to simulate, MB")
    p.add_argument("--memory-n", type=int, default=300, help="sequential requests per size and alg")
    p.add_argument("--memory-cold-repeat", type=int, default=3)
    p.add_argument("--code-n", type=int, default=40, help="code exchanges (codes live 60 s)")
    p.add_argument("--web-client-id", help="a browser client (authorization_code)")
    p.add_argument("--web-client-secret")
    p.add_argument("--web-redirect-uri", default="https://app.example.com/cb")
    p.add_argument("--moto-port", type=int, required=True)
    p.add_argument("--moto-pid", type=int, required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--secret-id", required=True)
    p.add_argument("--alg", default="RS256")
    p.add_argument("--cc-client-id", required=True)
    p.add_argument("--cc-client-secret", required=True)
    p.add_argument("--pkj-client-id", help="a private_key_jwt client (client_credentials)")
    p.add_argument("--pkj-key", help="its ES256 private key (PEM), kid bench-1")
    p.add_argument("--pw-client-id", required=True)
    p.add_argument("--pw-client-secret", required=True)
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--python-load", action="store_true")
    p.add_argument("--function-log", default=os.devnull)
    args = p.parse_args()
    if args.authorize_binary and not (args.web_client_id and args.web_client_secret):
        p.error("--authorize-binary needs --web-client-id and --web-client-secret")
    args.endpoint = f"http://127.0.0.1:{args.moto_port}"
    out = {"alg": args.alg}
    if args.what in ("coldstart", "all"):
        out["cold_start"] = cold_start(args)
    if args.what in ("calls", "all"):
        out["calls"] = calls(args)
        if args.authorize_binary:
            out["calls"] |= sign_in_calls(args)
    if args.what in ("warm", "all"):
        out["warm"] = warm(args)
    if args.what in ("memory", "all"):
        out["memory_sizes"] = memory_sizes(args)
    if args.what in ("throughput", "all"):
        out["throughput"] = throughput(args)
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
