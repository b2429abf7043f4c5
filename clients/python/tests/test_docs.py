"""The Python snippets of clients/python/README.md and docs/clients.md run as written against the test server (the
fixture sets RUNBOX_URL and RUNBOX_API_KEY, which is all a zero-config `Runbox()` reads)."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def python_blocks(path: Path) -> list:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("doc", ["clients/python/README.md", "docs/clients.md"])
def test_the_documented_snippet_runs(doc: str, server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(REPO / doc)
    assert blocks, f"{doc} has no python snippet"
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], doc, "exec"), {"__name__": "__snippet__"})
    assert "42" in out.getvalue()
    assert (tmp_path / "plot.png").read_bytes().startswith(b"\x89PNG"), os.listdir(tmp_path)
