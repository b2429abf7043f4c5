"""The async client against a real server: the same calls as the sync client, awaited, several at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import runbox
from runbox import AsyncRunbox


def run(coro):  # no pytest-asyncio needed
    return asyncio.run(coro)


def test_async_execute_runs_concurrently(server_url: str) -> None:
    async def main() -> list:
        async with AsyncRunbox() as rb:
            results = await asyncio.gather(*(rb.execute(f"print({i} * 2)") for i in range(4)))
            return [r.stdout for r in results]

    assert run(main()) == ["0\n", "2\n", "4\n", "6\n"]


def test_async_stream_languages_and_job(server_url: str) -> None:
    async def main() -> None:
        async with AsyncRunbox() as rb:
            events = [e async for e in rb.stream("print('x', flush=True)\nprint('y')")]
            assert "".join(e.text for e in events if e.type == "stdout") == "x\ny\n"
            assert events[-1].type == "result"
            assert any(lang.id == "python" for lang in await rb.languages())
            job = await rb.submit("print(5)")
            assert (await job.wait(timeout=60)).stdout == "5\n"
            judged = await rb.judge("print(input())", [("a\n", "a"), ("b\n", "c")])
            assert [t.verdict for t in judged.tests or []] == ["passed", "wrong_output"]

    run(main())


def test_async_session_with_files_and_a_figure(server_url: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncRunbox() as rb:
            async with rb.session("python") as s:
                await s.run("x = 5")
                assert (await s.run("print(x)")).stdout == "5\n"
                await s.upload("a.bin", b"\x00\xff")
                assert await s.download("a.bin") == b"\x00\xff"
                assert any(f.name == "a.bin" for f in await s.files())
                cell = await s.run("import matplotlib.pyplot as plt\nplt.plot([3, 1])\nplt.show()")
                cell.images[0].save(tmp_path / "fig.png")
                events = [e async for e in s.stream("print(1)")]
                # Output arrives in the chunks the program wrote (`print` may write "1" and "\n" apart): what is
                # fixed is the text, and one result at the end.
                assert [e.type for e in events][-1] == "result"
                assert {e.type for e in events[:-1]} == {"stdout"}
                assert "".join(e.text for e in events[:-1]) == "1\n"
                session_id = s.id
            with pytest.raises(runbox.NotFoundError):
                await rb.get_session(session_id)

    run(main())
    assert (tmp_path / "fig.png").read_bytes().startswith(b"\x89PNG")
