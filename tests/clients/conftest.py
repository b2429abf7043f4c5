"""Starts a real `runbox serve` on a loopback address for the client tests, and hands its URL to them.

The binary is RUNBOX_BIN, else target/debug/runbox (scripts/test-compat-clients.sh builds it). The server has a
fresh data directory of its own and listens on port 0 of 127.0.0.x; its "runbox listening on URL" line says
where. `runbox_url` runs without API keys (loopback only), as a developer's would; `keyed_runbox` has one key,
KEY, for the clients that can send one.
"""

import os
import pathlib
import re
import subprocess
import tempfile
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


KEY = "judge0-sdk-test-key-0123456789"


def _serve(*extra):
    binary = os.environ.get("RUNBOX_BIN", str(ROOT / "target" / "debug" / "runbox"))
    if not os.path.exists(binary):
        pytest.fail(f"{binary} does not exist: build it with `cargo build -p runbox`")
    data = tempfile.mkdtemp(prefix="runbox-clients-")
    os.chmod(data, 0o755)  # the sandboxes' workspaces live under it
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.9:0", "--data-dir", data, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = None
    timer = threading.Timer(30, proc.kill)  # never hang: a server that says nothing in 30 s is killed
    timer.start()
    for line in proc.stdout:
        m = re.search(r"runbox listening on (http://\S+)", line)
        if m:
            url = m.group(1)
            break
    timer.cancel()
    if url is None:
        proc.kill()
        pytest.fail("runbox serve did not start")
    # Keep draining stdout so the server never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def runbox_url():
    yield from _serve()


@pytest.fixture(scope="session")
def keyed_runbox():
    yield from _serve("--set", f'api_keys=[{{name = "sdk", key = "{KEY}"}}]')
