#!/usr/bin/env python3
"""moto_server answering one request at a time. Same arguments as moto_server.

DynamoDB applies a conditional write atomically; moto checks the condition and writes in the
request's own thread with no lock, so two racing writes can both pass (seen under load: 24
concurrent counter increments returned 1 twice). Serialising the requests makes every moto
call atomic, as each DynamoDB and Secrets Manager call is; moto is bound by the GIL anyway, so
little throughput is lost. The project's race tests (one winner of N rotations, N distinct
counter values, one redemption of a code) are only meaningful against this.
"""

from __future__ import annotations

import sys
import threading

import moto.server as server

_one_at_a_time = threading.Lock()
_run_simple = server.run_simple


def _serialised(app):
    def serial_app(environ, start_response):
        with _one_at_a_time:
            # The whole response is produced under the lock (moto's bodies are small).
            return [b"".join(app(environ, start_response))]

    return serial_app


def run_simple(host, port, app, **options):
    return _run_simple(host, port, _serialised(app), **options)


server.run_simple = run_simple

if __name__ == "__main__":
    server.main(sys.argv[1:])
