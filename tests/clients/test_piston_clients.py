"""Piston's clients against runbox's /api/v2 routes: `pistonapi` (PyPI, pinned; posts a form body) here, and
`piston-client` (npm, pinned; posts JSON as text/plain) through its Node script in piston-client/."""

import os
import pathlib
import shutil
import subprocess

import pytest
from pistonapi import PistonAPI

HERE = pathlib.Path(__file__).resolve().parent


def test_pistonapi_lists_runtimes_and_executes(runbox_url):
    piston = PistonAPI(endpoint=f"{runbox_url}/api/v2")
    runtimes = piston.runtimes
    assert "python" in runtimes and "py" in runtimes["python"]["aliases"]
    version = runtimes["python"]["version"]
    assert piston.execute(language="python", version=version, code="print(6*7)") == "42\n"
    out = piston.execute(language="py", version="*", code="print(input()[::-1])", stdin="abc", args=["x"])
    assert out == "cba\n"


def test_piston_client_from_npm(runbox_url):
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is not installed (CI needs it for the piston-client test)")
        pytest.skip("node is not installed")
    if not (HERE / "piston-client" / "node_modules" / "piston-client").exists():
        pytest.fail("piston-client is not installed: run scripts/install-compat-clients.sh")
    result = subprocess.run(
        [node, str(HERE / "piston-client" / "run.mjs"), runbox_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
