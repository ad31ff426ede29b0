#!/usr/bin/env python3
"""`make screenshot`: docs/login-page.png, the hosted login page as a browser shows it.

Starts `make dev` (infra/scripts/dev.sh) on free ports with its state in a temp dir, opens the
sign-in URL it prints in Debian's Chromium (Playwright, no browser download) and saves the page.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the browser tests' launch settings)
from playwright.sync_api import sync_playwright  # noqa: E402

OUT = ROOT / "docs" / "login-page.png"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="oauth-screenshot-"))
    env = {**os.environ, "DEV_PORT": str(free_port()), "MOTO_PORT": str(free_port()),
           "DEV_CALLBACK_PORT": str(free_port()), "DEV_LOCAL_DIR": str(state)}
    out = state / "dev.out"
    with open(out, "w") as stdout, open(state / "dev.err", "w") as stderr:
        dev = subprocess.Popen([str(ROOT / "infra/scripts/dev.sh")], cwd=ROOT, env=env,
                               stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        while "Ctrl-C stops everything" not in out.read_text():
            if dev.poll() is not None or time.monotonic() > deadline:
                sys.exit("make dev did not come up:\n" + (state / "dev.err").read_text()[-3000:])
            time.sleep(1)
        url = re.search(r"^  (http://\S+/oauth/v2/authorize\?\S+)$", out.read_text(), re.M).group(1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 720, "height": 640},
                                    device_scale_factor=1)
            page.goto(url + "&login_hint=alice%40example.com")
            page.get_by_label("Username").wait_for()
            page.screenshot(path=str(OUT), full_page=True)
            browser.close()
        print(f"wrote {OUT.relative_to(ROOT)}")
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        dev.wait(timeout=60)


if __name__ == "__main__":
    main()
