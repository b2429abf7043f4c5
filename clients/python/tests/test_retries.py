"""The retry policy and the error mapping, with a fake transport (no server): GETs are retried on 429/502/503/504
and connection errors, other methods only on 429/503 (refused before anything ran), honouring Retry-After; every
other error is raised at once as the exception its status and code name."""

from __future__ import annotations

import json
from typing import Callable, List

import httpx
import pytest

import runbox
from runbox import _base
from runbox import AsyncRunbox, Runbox


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    waits: List[float] = []
    monkeypatch.setattr("runbox._client.time.sleep", waits.append)
    return waits


def client(handler: Callable[[httpx.Request], httpx.Response], retries: int = 2) -> Runbox:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return Runbox("http://runbox.test", api_key="k", max_retries=retries, http_client=http)


def error(status: int, code: str, retry_after: str = "") -> httpx.Response:
    headers = {"retry-after": retry_after} if retry_after else {}
    return httpx.Response(status, json={"code": code, "message": code.replace("_", " ")}, headers=headers)


def test_a_get_is_retried_on_503_then_succeeds(no_sleep: List[float]) -> None:
    answers = [error(503, "draining", "1"), httpx.Response(200, json=[])]
    calls: List[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        assert request.headers["authorization"] == "Bearer k"
        return answers.pop(0)

    assert client(handler).languages() == []
    assert calls == ["GET", "GET"]
    assert no_sleep == [1.0]


def test_a_post_is_retried_on_429_but_not_on_500() -> None:
    seen: List[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        if len(seen) == 1:
            return error(429, "rate_limited", "2")
        return httpx.Response(200, json={"status": "ok", "stdout": "1\n", "stderr": "", "language": "python"})

    assert client(handler).execute("print(1)").stdout == "1\n"
    assert len(seen) == 2

    seen.clear()
    with pytest.raises(runbox.InternalServerError) as info:
        client(lambda r: (seen.append(1), error(500, "internal_error"))[1]).execute("print(1)")
    assert len(seen) == 1 and info.value.code == "internal_error"


def test_a_post_is_not_retried_after_a_connection_error() -> None:
    seen: List[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        raise httpx.ConnectError("reset", request=request)

    with pytest.raises(runbox.APIConnectionError):
        client(handler).execute("print(1)")
    assert seen == ["POST"]

    seen.clear()
    with pytest.raises(runbox.APIConnectionError):
        client(handler).languages()
    assert seen == ["GET", "GET", "GET"]


def test_retries_stop_at_max_retries_and_raise_the_last_error() -> None:
    seen: List[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        return error(429, "too_many_sessions", "10")

    with pytest.raises(runbox.RateLimitedError) as info:
        client(handler, retries=1).session("python")
    assert len(seen) == 2
    assert info.value.retry_after == 10.0 and info.value.code == "too_many_sessions"


def test_a_long_retry_after_is_capped() -> None:
    assert _base.backoff(0, 3600) == _base.MAX_RETRY_WAIT
    assert 0 < _base.backoff(3, None) <= _base.MAX_RETRY_WAIT


@pytest.mark.parametrize(
    "status,code,cls",
    [
        (400, "malformed_request", runbox.BadRequestError),
        (401, "unauthorized", runbox.AuthenticationError),
        (403, "origin_not_allowed", runbox.PermissionDeniedError),
        (404, "not_found", runbox.NotFoundError),
        (409, "session_dead", runbox.SessionDeadError),
        (409, "session_busy", runbox.SessionBusyError),
        (409, "file_conflict", runbox.ConflictError),
        (413, "payload_too_large", runbox.PayloadTooLargeError),
        (415, "unsupported_media_type", runbox.UnsupportedMediaTypeError),
        (422, "invalid_field", runbox.ValidationError),
        (429, "rate_limited", runbox.RateLimitedError),
        (503, "overloaded", runbox.ServiceUnavailableError),
        (500, "internal_error", runbox.InternalServerError),
    ],
)
def test_each_status_raises_its_exception_with_the_code(status: int, code: str, cls: type) -> None:
    with pytest.raises(cls) as info:
        client(lambda r: error(status, code), retries=0).execute("print(1)")
    assert info.value.code == code and info.value.status == status
    assert isinstance(info.value, runbox.RunboxError)


def test_an_sse_error_event_is_raised_with_its_code() -> None:
    body = 'event: stdout\ndata: {"data":"a"}\n\nevent: error\ndata: {"code":"sandbox_error","message":"boom"}\n\n'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})

    stream = client(handler).stream("print(1)")
    assert next(stream).text == "a"
    with pytest.raises(runbox.RunboxError) as info:
        next(stream)
    assert info.value.code == "sandbox_error"


def test_the_async_client_retries_a_get_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr("runbox._async.asyncio.sleep", no_wait)
    answers = [error(502, "bad_gateway"), httpx.Response(200, json=[{"id": "python", "available": True}])]

    async def main() -> list:
        http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: answers.pop(0)))
        async with AsyncRunbox("http://runbox.test", http_client=http) as rb:
            return await rb.languages()

    langs = asyncio.run(main())
    assert [lang.id for lang in langs] == ["python"]


def test_zero_config_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOX_URL", raising=False)
    monkeypatch.delenv("RUNBOX_API_KEY", raising=False)
    assert Runbox().base_url == "http://127.0.0.1:8080" and Runbox().api_key is None
    monkeypatch.setenv("RUNBOX_URL", "http://10.1.2.3:9000/")
    monkeypatch.setenv("RUNBOX_API_KEY", "abc")
    rb = Runbox()
    assert rb.base_url == "http://10.1.2.3:9000" and rb.api_key == "abc"
    assert json.loads(json.dumps(_base.execute_body("x", language="python", timeout=1.5))) == {
        "language": "python", "code": "x", "timeout_ms": 1500,
    }
