"""`make dev` as a newcomer meets it (README): the script brings the stack up on its own and
prints a sign-in URL that works in a browser, through the demo app it starts.

The browser is played here by HTTP requests (test_browser.py drives Chromium against the
same pages)."""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import requests

from conftest import ROOT, free_port


def _hidden(page: str, name: str) -> str:
    return html.unescape(re.search(rf'name="{name}" value="([^"]*)"', page).group(1))


def test_make_dev_prints_a_sign_in_url_that_signs_the_demo_user_in(tmp_path: Path):
    # GIVEN `make dev` (infra/scripts/dev.sh) on free ports, with its state in a temp dir
    ports = {"DEV_PORT": free_port(), "MOTO_PORT": free_port(), "DEV_CALLBACK_PORT": free_port()}
    # A password starting with "-", as the random one does once in 64 runs (a CI run failed
    # on it): it must reach oauthctl as a value, not an option.
    env = {**os.environ, **{k: str(v) for k, v in ports.items()},
           "DEV_LOCAL_DIR": str(tmp_path), "DEV_TABLE_NAME": "oauth-dev-test",
           "DEMO_PASSWORD": "-t" + uuid.uuid4().hex}
    out_path = tmp_path / "dev.out"
    with open(out_path, "w") as out, open(tmp_path / "dev.err", "w") as err:
        dev = subprocess.Popen(["infra/scripts/dev.sh"], cwd=ROOT, env=env, stdout=out,
                               stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while "Ctrl-C stops everything" not in out_path.read_text():
            assert dev.poll() is None, (tmp_path / "dev.err").read_text()[-3000:]
            assert time.monotonic() < deadline, "make dev not up after 600 s"
            time.sleep(1)
        printed = out_path.read_text()
        # WHEN the printed sign-in URL is opened and the demo user signs in
        url = re.search(r"^  (http://\S+/oauth/v2/authorize\?\S+)$", printed, re.M).group(1)
        username, password = re.search(r"demo user   (\S+) / (\S+)", printed).groups()
        page = requests.get(url, timeout=60)
        assert page.status_code == 200 and "Demo app" in page.text, page.text
        done = requests.post(
            f"http://127.0.0.1:{ports['DEV_PORT']}/oauth/v2/authorize/login", timeout=60,
            allow_redirects=False, headers={"Sec-Fetch-Site": "same-origin"},
            data={"transaction": _hidden(page.text, "transaction"),
                  "csrf_token": _hidden(page.text, "csrf_token"),
                  "username": username, "password": password})
        assert done.status_code == 303, done.text
        # THEN the demo app's callback exchanged the code and shows the tokens
        callback = requests.get(done.headers["Location"], timeout=60)
        assert callback.status_code == 200
        assert "&quot;access_token&quot;" in callback.text, callback.text
        assert "id_token claims" in callback.text and "curl -s -d grant_type=authorization_code" in callback.text
        # AND the printed sign-out link returns to the demo app
        logout = re.search(r"sign out:\s+(\S+)", printed).group(1)
        assert requests.get(logout, timeout=60).status_code == 200
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        dev.wait(timeout=60)
