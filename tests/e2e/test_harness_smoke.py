"""Smoke tests of the e2e harness itself: moto starts, and the fault proxy's modes do
what the end-to-end tests rely on. Needs only the venv (no Rust binaries)."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from faultproxy import FaultProxy

CONNECTION_ERRORS = (ConnectionClosedError, EndpointConnectionError)


def _make_table(client, name):
    existing = client.list_tables()["TableNames"]
    if name not in existing:
        client.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )


def test_moto_answers_directly(aws_backend):
    ddb = aws_backend.client("dynamodb", via_proxy=False)
    _make_table(ddb, "harness-smoke")
    assert "harness-smoke" in ddb.list_tables()["TableNames"]


def test_pass_mode_forwards(aws_backend, fault_proxy):
    ddb = aws_backend.client("dynamodb")
    _make_table(aws_backend.client("dynamodb", via_proxy=False), "harness-smoke")
    for _ in range(3):
        assert "harness-smoke" in ddb.list_tables()["TableNames"]
    assert fault_proxy.stats["piped"] >= 1


class _KeepAliveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_pass_mode_keeps_http11_connections_alive():
    # moto itself answers `Connection: close`, so use a keep-alive upstream here.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with FaultProxy(upstream_port=server.server_address[1]) as proxy, requests.Session() as s:
            for _ in range(5):
                r = s.get(proxy.url + "/x", timeout=5)
                assert r.status_code == 200 and r.text == "ok"
            assert proxy.stats["accepted"] == 1, dict(proxy.stats)
            proxy.set_mode("throttle")  # closes the piped connection; next one is throttled
            r = s.get(proxy.url + "/x", timeout=5)
            assert r.status_code == 400
            assert r.headers["x-amzn-ErrorType"] == "ThrottlingException"
            assert r.json()["__type"].endswith("#ThrottlingException")
    finally:
        server.shutdown()
        server.server_close()


def test_down_mode_breaks_connections(aws_backend, fault_proxy):
    ddb = aws_backend.client("dynamodb")
    ddb.list_tables()  # a pooled keep-alive connection exists now
    fault_proxy.set_mode("down")
    with pytest.raises(CONNECTION_ERRORS):
        ddb.list_tables()
    assert fault_proxy.stats["reset"] >= 1
    fault_proxy.set_mode("pass")
    ddb.list_tables()


def test_refuse_mode_refuses_then_rebinds(aws_backend, fault_proxy):
    ddb = aws_backend.client("dynamodb")
    fault_proxy.set_mode("refuse")
    with pytest.raises(EndpointConnectionError):
        ddb.list_tables()
    fault_proxy.set_mode("pass")
    ddb.list_tables()


def test_throttle_mode_answers_throttling_exception(aws_backend, fault_proxy):
    ddb = aws_backend.client("dynamodb")
    ddb.list_tables()
    fault_proxy.set_mode("throttle")
    for _ in range(3):  # keep-alive: several throttles on one connection
        with pytest.raises(ClientError) as exc:
            ddb.list_tables()
        err = exc.value.response
        assert err["Error"]["Code"] == "ThrottlingException"
        assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert err["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ThrottlingException"
    assert fault_proxy.stats["throttled"] == 3
    fault_proxy.set_mode("pass")
    ddb.list_tables()


def test_throttle_can_target_dynamodb_only(aws_backend, fault_proxy):
    ddb = aws_backend.client("dynamodb")
    sm = aws_backend.client("secretsmanager")
    fault_proxy.set_mode("throttle", targets=["DynamoDB_20120810"])
    with pytest.raises(ClientError) as exc:
        ddb.list_tables()
    assert exc.value.response["Error"]["Code"] == "ThrottlingException"
    sm.list_secrets()  # Secrets Manager (X-Amz-Target: secretsmanager.*) passes


def test_error_mode_answers_5xx(aws_backend, fault_proxy):
    ddb = aws_backend.client("dynamodb")
    fault_proxy.set_mode("error", status=500)
    with pytest.raises(ClientError) as exc:
        ddb.list_tables()
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert exc.value.response["Error"]["Code"] == "InternalServerError"


def test_slow_mode_delays_requests(aws_backend, fault_proxy):
    fault_proxy.set_mode("slow", delay=1.0)
    ddb = aws_backend.client("dynamodb")
    t0 = time.monotonic()
    ddb.list_tables()
    assert time.monotonic() - t0 >= 1.0
    impatient = aws_backend.client("dynamodb", read_timeout=0.3)
    with pytest.raises(ReadTimeoutError):
        impatient.list_tables()


def test_unprocessed_mode_returns_every_batch_key_unprocessed(aws_backend, fault_proxy):
    direct = aws_backend.client("dynamodb", via_proxy=False)
    _make_table(direct, "harness-smoke")
    direct.put_item(TableName="harness-smoke", Item={"pk": {"S": "a"}, "v": {"S": "1"}})
    ddb = aws_backend.client("dynamodb")
    request = {"harness-smoke": {"Keys": [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}],
                                 "ConsistentRead": True}}
    assert ddb.batch_get_item(RequestItems=request)["Responses"]["harness-smoke"]  # pass: found
    fault_proxy.set_mode("unprocessed", delay=0.2)
    for _ in range(2):  # keep-alive: several on one connection
        out = ddb.batch_get_item(RequestItems=request)
        assert out["Responses"] == {"harness-smoke": []}, out
        assert out["UnprocessedKeys"] == request, out
    # everything else still reaches moto
    assert ddb.get_item(TableName="harness-smoke", Key={"pk": {"S": "a"}})["Item"]["v"] == {"S": "1"}
    aws_backend.client("secretsmanager").list_secrets()
    assert fault_proxy.stats["unprocessed"] == 2, dict(fault_proxy.stats)
    fault_proxy.set_mode("pass")
    assert ddb.batch_get_item(RequestItems=request)["Responses"]["harness-smoke"]
