"""The asynchronous client, `AsyncRunbox`, with `AsyncSession` and `AsyncJob`: the same API as `_client.py`, each
call awaited (`async with rb.session() as s: await s.run("x = 1")`; `async for ev in rb.stream(...)`).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Sequence

import httpx

from . import _base as b
from ._client import Data, _job_result, _read_data
from ._errors import APIConnectionError, APITimeoutError, NotFoundError, error_from_response
from ._models import CellResult, ExecutionResult, FileEntry, JobInfo, Language, SessionInfo, StreamEvent


class AsyncRunbox:
    """The async twin of `Runbox`: same configuration, same methods, awaited."""

    def __init__(
        self,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        timeout: float = b.DEFAULT_TIMEOUT,
        max_retries: int = b.DEFAULT_MAX_RETRIES,
        http_client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self.base_url = b.resolve_url(base_url)
        self.api_key = b.resolve_key(api_key)
        self.timeout = timeout
        self.max_retries = max_retries
        self._http = http_client or httpx.AsyncClient(base_url=self.base_url, timeout=timeout)
        self._headers = b.headers(self.api_key)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncRunbox":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    @asynccontextmanager
    async def _open(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: Optional[bytes] = None,
        params: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
    ) -> AsyncIterator[httpx.Response]:
        headers = dict(self._headers, **(extra_headers or {}))
        attempt = 0
        while True:
            request = self._http.build_request(
                method,
                self.base_url + path,
                json=json,
                content=content,
                params=params,
                headers=headers,
                timeout=timeout if timeout is not None else self.timeout,
            )
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TimeoutException as e:
                if method == "GET" and attempt < self.max_retries:
                    await asyncio.sleep(b.backoff(attempt, None))
                    attempt += 1
                    continue
                raise APITimeoutError(f"{method} {path}: {e}", code="timeout") from e
            except httpx.TransportError as e:
                if method == "GET" and attempt < self.max_retries:
                    await asyncio.sleep(b.backoff(attempt, None))
                    attempt += 1
                    continue
                raise APIConnectionError(f"{method} {path}: cannot reach {self.base_url}: {e}", code="connection_error") from e
            try:
                if response.status_code >= 400:
                    await response.aread()
                    error = error_from_response(response.status_code, response.headers, response.content)
                    if attempt < self.max_retries and b.should_retry_status(method, response.status_code):
                        await asyncio.sleep(b.backoff(attempt, getattr(error, "retry_after", None)))
                        attempt += 1
                        continue
                    raise error
                yield response
                return
            finally:
                await response.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with self._open(method, path, **kwargs) as response:
            await response.aread()
            return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._request(method, path, **kwargs)).json()

    async def _stream(
        self, path: str, body: Dict[str, Any], cell: bool, timeout: Optional[float]
    ) -> AsyncIterator[StreamEvent]:
        async with self._open("POST", path, json=body, timeout=timeout, extra_headers={"accept": "text/event-stream"}) as r:
            parser = b.SSEParser()
            async for line in r.aiter_lines():
                record = parser.feed(line)
                if record is not None:
                    yield b.to_event(record[0], record[1], cell)
            record = parser.feed("")
            if record is not None:
                yield b.to_event(record[0], record[1], cell)

    async def execute(
        self,
        code: Optional[str] = None,
        language: str = "python",
        *,
        stdin: Optional[str] = None,
        files: Optional[b.FileSpec] = None,
        args: Optional[Sequence[str]] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        limits: Optional[Mapping[str, Any]] = None,
        entry: Optional[str] = None,
        tests: Optional[Sequence[b.CaseSpec]] = None,
        collect: Optional[Sequence[str]] = None,
    ) -> ExecutionResult:
        body = b.execute_body(
            code, language=language, stdin=stdin, files=files, args=args, env=env, timeout=timeout,
            limits=limits, entry=entry, tests=tests, collect=collect,
        )
        data = await self._json("POST", "/execute", json=body, timeout=b.read_timeout(self.timeout, timeout))
        return ExecutionResult.from_dict(data)

    async def judge(
        self, code: str, cases: Sequence[b.CaseSpec], language: str = "python", **kwargs: Any
    ) -> ExecutionResult:
        return await self.execute(code, language, tests=cases, **kwargs)

    def stream(
        self,
        code: Optional[str] = None,
        language: str = "python",
        *,
        stdin: Optional[str] = None,
        files: Optional[b.FileSpec] = None,
        args: Optional[Sequence[str]] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        limits: Optional[Mapping[str, Any]] = None,
        entry: Optional[str] = None,
        tests: Optional[Sequence[b.CaseSpec]] = None,
    ) -> AsyncIterator[StreamEvent]:
        body = b.execute_body(
            code, language=language, stdin=stdin, files=files, args=args, env=env, timeout=timeout,
            limits=limits, entry=entry, tests=tests,
        )
        return self._stream("/execute/stream", body, False, b.read_timeout(self.timeout, timeout))

    async def languages(self) -> List[Language]:
        return [Language.from_dict(d) for d in await self._json("GET", "/languages")]

    async def health(self) -> Dict[str, Any]:
        health: Dict[str, Any] = await self._json("GET", "/health")
        return health

    async def submit(
        self, code: Optional[str] = None, language: str = "python", *, callback_url: Optional[str] = None, **kwargs: Any
    ) -> "AsyncJob":
        body = b.execute_body(code, language=language, callback_url=callback_url, **kwargs)
        data = await self._json("POST", "/executions", json=body)
        return AsyncJob(self, data["id"])

    def job(self, job_id: str) -> "AsyncJob":
        return AsyncJob(self, job_id)

    def session(
        self,
        language: str = "python",
        *,
        env: Optional[Mapping[str, str]] = None,
        limits: Optional[Mapping[str, Any]] = None,
        idle_timeout: Optional[int] = None,
    ) -> "_SessionStarter":
        """`async with rb.session("python") as s:` (or `s = await rb.session("python")`)."""
        return _SessionStarter(self, b.session_body(language, env=env, limits=limits, idle_timeout=idle_timeout))

    async def get_session(self, session_id: str) -> "AsyncSession":
        return AsyncSession(self, SessionInfo.from_dict(await self._json("GET", b.session_url(session_id))))

    async def sessions(self) -> List[SessionInfo]:
        return [SessionInfo.from_dict(d) for d in await self._json("GET", "/sessions")]


class _SessionStarter:
    """Lets `rb.session(...)` be both awaited and used with `async with` (which closes the session at the end)."""

    def __init__(self, client: AsyncRunbox, body: Dict[str, Any]) -> None:
        self._client = client
        self._body = body
        self._session: Optional[AsyncSession] = None

    async def _start(self) -> "AsyncSession":
        data = await self._client._json("POST", "/sessions", json=self._body)
        return AsyncSession(self._client, SessionInfo.from_dict(data))

    def __await__(self) -> Any:
        return self._start().__await__()

    async def __aenter__(self) -> "AsyncSession":
        self._session = await self._start()
        return self._session

    async def __aexit__(self, *exc: Any) -> None:
        if self._session is not None:
            await self._session.close()


class AsyncSession:
    """The async twin of `Session`."""

    def __init__(self, client: AsyncRunbox, info: SessionInfo) -> None:
        self._client = client
        self.info = info
        self.id = info.id
        self.language = info.language

    async def __aenter__(self) -> "AsyncSession":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncSession(id={self.id!r}, language={self.language!r})"

    async def run(self, code: str, timeout: Optional[float] = None) -> CellResult:
        data = await self._client._json(
            "POST", b.session_url(self.id, "/execute"), json=b.cell_body(code, timeout),
            timeout=b.read_timeout(self._client.timeout, timeout),
        )
        return CellResult.from_dict(data)

    def stream(self, code: str, timeout: Optional[float] = None) -> AsyncIterator[StreamEvent]:
        return self._client._stream(
            b.session_url(self.id, "/execute/stream"), b.cell_body(code, timeout), True,
            b.read_timeout(self._client.timeout, timeout),
        )

    async def upload(self, path: str, data: Data) -> FileEntry:
        response = await self._client._request(
            "PUT", b.file_url(self.id, path), content=_read_data(data),
            extra_headers={"content-type": "application/octet-stream"},
        )
        return FileEntry.from_dict(response.json())

    async def download(self, path: str) -> bytes:
        return (await self._client._request("GET", b.file_url(self.id, path))).content

    async def files(self, path: Optional[str] = None) -> List[FileEntry]:
        params = {"path": path} if path else None
        data = await self._client._json("GET", b.session_url(self.id, "/files"), params=params)
        return [FileEntry.from_dict(d) for d in data]

    async def delete(self, path: str) -> None:
        await self._client._request("DELETE", b.file_url(self.id, path))

    async def interrupt(self) -> SessionInfo:
        self.info = SessionInfo.from_dict(await self._client._json("POST", b.session_url(self.id, "/interrupt")))
        return self.info

    async def refresh(self) -> SessionInfo:
        self.info = SessionInfo.from_dict(await self._client._json("GET", b.session_url(self.id)))
        return self.info

    async def close(self) -> None:
        try:
            await self._client._request("DELETE", b.session_url(self.id))
        except NotFoundError:
            pass


class AsyncJob:
    """The async twin of `Job`."""

    def __init__(self, client: AsyncRunbox, job_id: str) -> None:
        self._client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"AsyncJob(id={self.id!r})"

    async def status(self) -> JobInfo:
        return JobInfo.from_dict(await self._client._json("GET", f"/executions/{self.id}"))

    async def cancel(self) -> JobInfo:
        return JobInfo.from_dict(await self._client._json("DELETE", f"/executions/{self.id}"))

    async def wait(self, timeout: Optional[float] = None, poll_interval: float = 0.1) -> ExecutionResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = poll_interval
        while True:
            info = await self.status()
            if info.finished:
                return _job_result(info)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} still {info.status} after {timeout} s")
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, 2.0)
