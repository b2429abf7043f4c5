"""Starts a real `runbox serve` for the tests: the workspace's target/debug/runbox (built with `cargo build -p
runbox` when missing, or RUNBOX_BIN), on a free port of a 127.0.0.x address, with a temporary data dir and two API
keys: `sdk-test-key-0123456789` (unlimited, exported as RUNBOX_API_KEY so clients find it with no configuration) and
`sdk-slow-key-0123456789` (two requests a minute, for the rate-limit test).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[3]
KEY = "sdk-test-key-0123456789"
SLOW_KEY = "sdk-slow-key-0123456789"


def runbox_binary() -> Path:
    explicit = os.environ.get("RUNBOX_BIN")
    if explicit:
        return Path(explicit)
    binary = REPO / "target" / "debug" / "runbox"
    if not binary.exists():
        cargo = shutil.which("cargo")
        if cargo is None:
            pytest.fail("no target/debug/runbox and no cargo to build it")
        subprocess.run([cargo, "build", "-p", "runbox"], cwd=REPO, check=True)
    return binary


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    data_dir = tempfile.mkdtemp(prefix="runbox-sdk-test-")
    os.chmod(data_dir, 0o755)  # mkdtemp's 0700 would hide the workspaces from the sandboxes' unprivileged users
    config = Path(data_dir) / "runbox.toml"
    config.write_text(
        f'[[api_keys]]\nname = "sdk"\nkey = "{KEY}"\n\n'
        f'[[api_keys]]\nname = "slow"\nkey = "{SLOW_KEY}"\nrate_limit_per_minute = 2\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOX_")}
    listen = f"127.0.0.{random.randint(2, 250)}:0"
    proc = subprocess.Popen(
        [str(runbox_binary()), "serve", "--config", str(config), "--listen", listen, "--data-dir", data_dir],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first: list = []
        reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(60)
        line = first[0].strip() if first else ""
        prefix = "runbox listening on "
        if not line.startswith(prefix):
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"runbox serve did not start: {line!r} {err[-2000:]}")
        # Keep draining stdout so the server never blocks on a full pipe.
        for pipe in (proc.stdout, proc.stderr):
            threading.Thread(target=lambda p=pipe: [None for _ in p], daemon=True).start()
        url = line[len(prefix):]
        saved = {k: os.environ.get(k) for k in ("RUNBOX_URL", "RUNBOX_API_KEY")}
        os.environ["RUNBOX_URL"], os.environ["RUNBOX_API_KEY"] = url, KEY
        try:
            yield url
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def rb(server_url: str) -> Iterator["object"]:
    from runbox import Runbox

    with Runbox() as client:  # zero-config: RUNBOX_URL and RUNBOX_API_KEY point at the test server
        yield client
