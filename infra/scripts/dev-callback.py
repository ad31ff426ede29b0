#!/usr/bin/env python3
"""`make dev`'s demo relying party: the redirect URI of the demo browser client.

GET /callback?code=…&state=…&iss=… shows the code, exchanges it (PKCE, public client) and shows
the answer with the id_token's claims, plus the curl command that does the same by hand.
Standard library only; loopback only; it holds no secret (the demo client is public).

usage: dev-callback.py PORT TOKEN_ENDPOINT CLIENT_ID CODE_VERIFIER
"""

from __future__ import annotations

import base64
import html
import json
import shlex
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, TOKEN_ENDPOINT, CLIENT_ID, VERIFIER = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
REDIRECT_URI = f"http://127.0.0.1:{PORT}/callback"


def claims_of(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Callback(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/signed-out":
            self.page("<h1>Demo app</h1><p>You are signed out.</p>")
            return
        if url.path != "/callback":
            self.send_error(404)
            return
        query = dict(urllib.parse.parse_qsl(url.query))
        form = {"grant_type": "authorization_code", "client_id": CLIENT_ID,
                "code": query.get("code", ""), "redirect_uri": REDIRECT_URI,
                "code_verifier": VERIFIER}
        curl = "curl -s " + " ".join(f"-d {shlex.quote(k + '=' + v)}" for k, v in form.items())
        curl += f" {TOKEN_ENDPOINT}"
        if "code" not in query:
            answer = {"authorization error": query}
        else:
            request = urllib.request.Request(
                TOKEN_ENDPOINT, data=urllib.parse.urlencode(form).encode(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as resp:
                    answer = json.load(resp)
            except urllib.error.HTTPError as error:
                answer = json.load(error)
            if "id_token" in answer:
                answer["id_token claims"] = claims_of(answer["id_token"])
        self.page(
            "<h1>Demo app callback</h1>"
            f"<p>The authorization response: <code>{html.escape(url.query)}</code></p>"
            "<p>This page exchanged the code (a code works once, for 60 s). By hand:</p>"
            f"<pre style='white-space:pre-wrap'>{html.escape(curl)}</pre>"
            f"<h2>Token response</h2><pre>{html.escape(json.dumps(answer, indent=2))}</pre>"
        )

    def page(self, content: str) -> None:
        body = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>Demo app</title>"
            "<body style='font-family:system-ui;max-width:60rem;margin:2rem auto'>" + content
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:  # the query holds a code: never logged
        pass


ThreadingHTTPServer(("127.0.0.1", int(PORT)), Callback).serve_forever()
