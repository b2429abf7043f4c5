"""The sync client against a real server: runs, streams, judge mode, async jobs, sessions with files and figures,
and errors as typed exceptions carrying the server's code."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import runbox
from runbox import Runbox, TestCase


def test_execute_returns_a_typed_result(rb: Runbox) -> None:
    result = rb.execute("print(6*7)")
    assert isinstance(result, runbox.ExecutionResult)
    assert result.ok and result.status == "ok"
    assert result.stdout == "42\n"
    assert result.exit_code == 0
    assert result.language == "python"


def test_execute_passes_stdin_args_files_and_timeout(rb: Runbox) -> None:
    code = "import sys, helper\nprint(helper.twice(sys.stdin.read().strip()), *sys.argv[1:])"
    result = rb.execute(code, stdin="ab\n", args=["x", "y"], files={"helper.py": "def twice(s):\n    return s * 2\n"})
    assert result.stdout == "abab x y\n", result

    slow = rb.execute("import time\ntime.sleep(10)", timeout=0.5)
    assert slow.status == "timeout"


def test_execute_keeps_non_utf8_output_exact(rb: Runbox) -> None:
    result = rb.execute("import sys\nsys.stdout.buffer.write(bytes([0xff, 0x00, 0x41]))")
    assert result.stdout_bytes == b"\xff\x00\x41"


def test_other_languages_and_compile_errors(rb: Runbox) -> None:
    assert rb.execute("echo hi", language="bash").stdout == "hi\n"
    broken = rb.execute("int main( {", language="c")
    assert broken.status == "compile_error"
    assert broken.compile is not None and broken.compile.stderr


def test_collected_files_come_back_as_bytes(rb: Runbox, tmp_path: Path) -> None:
    result = rb.execute("open('out.bin', 'wb').write(bytes([0, 1, 254]))", collect=["*.bin"])
    assert result.files is not None and [f.path for f in result.files] == ["out.bin"]
    assert result.files[0].content == b"\x00\x01\xfe"
    result.files[0].save(tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == b"\x00\x01\xfe"


def test_languages_lists_the_catalogue(rb: Runbox) -> None:
    langs = {lang.id: lang for lang in rb.languages()}
    assert langs["python"].available and langs["python"].sessions
    assert langs["c"].compiled


def test_stream_yields_output_before_the_result(rb: Runbox) -> None:
    events = list(rb.stream("import time\nprint(1, flush=True)\ntime.sleep(0.2)\nprint(2)"))
    assert [e.type for e in events if e.type != "stdout"] == ["result"]
    assert "".join(e.text for e in events if e.type == "stdout") == "1\n2\n"
    final = events[-1].result
    assert isinstance(final, runbox.ExecutionResult) and final.stdout == "1\n2\n"


def test_judge_gives_a_verdict_per_case(rb: Runbox) -> None:
    code = "print(int(input()) * 2)"
    result = rb.judge(code, [("2\n", "4"), TestCase(stdin="5\n", expected_output="11"), {"stdin": "1\n"}])
    assert result.tests is not None
    assert [t.verdict for t in result.tests] == ["passed", "wrong_output", "ran"]
    assert result.summary is not None and result.summary.total == 3 and result.summary.verdict == "wrong_output"


def test_a_streamed_judge_run_yields_a_verdict_per_case(rb: Runbox) -> None:
    events = list(rb.stream("print(input())", tests=[("a\n", "a"), ("b\n", "x")]))
    verdicts = [e.data["verdict"] for e in events if e.type == "test_case"]
    assert verdicts == ["passed", "wrong_output"]
    assert events[-1].result is not None and events[-1].result.summary is not None


def test_submit_returns_a_job_that_waits_for_its_result(rb: Runbox) -> None:
    job = rb.submit("print('later')")
    assert job.id
    result = job.wait(timeout=60)
    assert result.stdout == "later\n"
    assert rb.job(job.id).status().status == "done"


def test_session_keeps_state_as_a_context_manager(rb: Runbox) -> None:
    with rb.session("python") as s:
        s.run("x = 5")
        assert s.run("print(x)").stdout == "5\n"
        cell = s.run("x * 3")
        assert cell.text == "15"
        failed = s.run("1 / 0")
        assert failed.status == "error" and failed.error is not None and failed.error.name == "ZeroDivisionError"
        session_id = s.id
    with pytest.raises(runbox.NotFoundError) as info:
        rb.get_session(session_id)
    assert info.value.code == "not_found" and info.value.status == 404


def test_session_files_round_trip_bytes(rb: Runbox, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4
    with rb.session() as s:
        entry = s.upload("in/data bin.dat", data)
        assert entry.size == len(data)
        assert s.download("in/data bin.dat") == data
        assert s.run("print(len(open('in/data bin.dat', 'rb').read()))").stdout == "1024\n"
        s.run("open('out.txt', 'w').write('made here')")
        assert s.download("out.txt") == b"made here"
        local = tmp_path / "local.txt"
        local.write_text("from disk")
        s.upload("copy.txt", local)
        assert s.download("copy.txt") == b"from disk"
        names = {f.name for f in s.files()}
        assert {"in", "out.txt", "copy.txt"} <= names, names
        assert any(f.name.endswith("data bin.dat") for f in s.files("in"))
        s.delete("out.txt")
        with pytest.raises(runbox.NotFoundError):
            s.download("out.txt")
        with pytest.raises(runbox.BadRequestError) as bad:
            s.upload("../escape.txt", b"x")
        assert bad.value.code == "invalid_path"


def test_a_matplotlib_figure_is_one_line_to_save(rb: Runbox, tmp_path: Path) -> None:
    with rb.session() as s:
        cell = s.run("import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.show()")
        assert cell.ok, cell
        figure = cell.images[0]
        assert figure.mime_type == "image/png"
        assert figure.png is not None and figure.png.startswith(b"\x89PNG\r\n\x1a\n")
        figure.save(tmp_path / "plot.png")
        assert (tmp_path / "plot.png").read_bytes() == figure.png

        html = s.run("class H:\n    def _repr_html_(self):\n        return '<b>hi</b>'\nH()")
        assert any(o.html == "<b>hi</b>" for o in html.outputs), html.outputs


def test_session_stream_yields_output_and_display_events(rb: Runbox) -> None:
    with rb.session() as s:
        events = list(s.stream("print('a', flush=True)\nimport matplotlib.pyplot as plt\nplt.plot([1])\nplt.show()"))
        kinds = [e.type for e in events]
        assert kinds[0] == "stdout" and kinds[-1] == "result"
        displays = [e.output for e in events if e.type == "display"]
        assert displays and displays[0] is not None and displays[0].png
        assert isinstance(events[-1].result, runbox.CellResult)


def test_interrupt_stops_a_running_cell_and_the_session_survives(rb: Runbox) -> None:
    with rb.session() as s:
        s.run("y = 7")
        results: list = []
        runner = threading.Thread(target=lambda: results.append(s.run("import time\nwhile True: time.sleep(0.05)")))
        runner.start()
        deadline = time.monotonic() + 20
        while s.refresh().state != "busy" and time.monotonic() < deadline:
            time.sleep(0.05)
        s.interrupt()
        runner.join(20)
        assert results and results[0].status == "interrupted"
        assert s.run("print(y)").stdout == "7\n"


def test_a_dead_session_raises_session_dead(rb: Runbox) -> None:
    with rb.session() as s:
        s.run("import os\nos._exit(3)")
        with pytest.raises(runbox.SessionDeadError) as dead:
            s.run("print(1)")
        assert dead.value.code == "session_dead" and dead.value.status == 409
        assert isinstance(dead.value, runbox.ConflictError)


def test_invalid_input_raises_validation_error_naming_the_field(rb: Runbox) -> None:
    with pytest.raises(runbox.ValidationError) as info:
        rb.execute("print(1)", language="cobol-9000")
    assert info.value.code == "unknown_language"
    assert info.value.field == "language"
    with pytest.raises(runbox.ValidationError) as limits:
        rb.execute("print(1)", limits={"memory_mb": -1})
    assert limits.value.status == 422


def test_a_wrong_key_raises_authentication_error(server_url: str) -> None:
    with Runbox(api_key="not-the-key") as bad:
        with pytest.raises(runbox.AuthenticationError) as info:
            bad.execute("print(1)")
    assert info.value.code == "unauthorized" and info.value.status == 401


def test_rate_limits_raise_with_retry_after(server_url: str) -> None:
    with Runbox(api_key="sdk-slow-key-0123456789", max_retries=0) as slow:
        with pytest.raises(runbox.RateLimitedError) as info:
            for _ in range(5):
                slow.languages()
    assert info.value.code == "rate_limited" and info.value.status == 429
    assert info.value.retry_after is not None and info.value.retry_after >= 1


def test_an_unreachable_server_raises_a_connection_error() -> None:
    with Runbox("http://127.0.0.1:9", max_retries=0) as nowhere:
        with pytest.raises(runbox.APIConnectionError):
            nowhere.execute("print(1)")
