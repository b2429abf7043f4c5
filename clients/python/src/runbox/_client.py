"""The synchronous client, `Runbox`, and the objects it hands out: `Session` (a stateful interpreter, usable as a
context manager) and `Job` (an async execution to `.wait()` for). `_async.py` mirrors this file with `await`.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import IO, Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import httpx

from . import _base as b
from ._errors import APIConnectionError, APITimeoutError, JobFailedError, NotFoundError, error_from_response
from ._models import CellResult, ExecutionResult, FileEntry, JobInfo, Language, SessionInfo, StreamEvent

Data = Union[bytes, str, IO[bytes], "os.PathLike[str]"]


def _read_data(data: Data) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, os.PathLike):
        with open(data, "rb") as f:
            return f.read()
    return data.read()


class Runbox:
    """A client of one runbox server.

    Zero-config: the server is `RUNBOX_URL` (default `http://127.0.0.1:8080`) and the key `RUNBOX_API_KEY`, unless
    given. `timeout` is the per-request timeout in seconds (requests that run code wait for the run as well);
    `max_retries` bounds the retries of requests that are safe to repeat.
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        timeout: float = b.DEFAULT_TIMEOUT,
        max_retries: int = b.DEFAULT_MAX_RETRIES,
        http_client: Optional[httpx.Client] = None,
    ) -> None:
        self.base_url = b.resolve_url(base_url)
        self.api_key = b.resolve_key(api_key)
        self.timeout = timeout
        self.max_retries = max_retries
        self._http = http_client or httpx.Client(base_url=self.base_url, timeout=timeout)
        self._headers = b.headers(self.api_key)

    # -- plumbing ------------------------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Runbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _url(self, path: str) -> str:
        return self.base_url + path

    @contextmanager
    def _open(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: Optional[bytes] = None,
        params: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
    ) -> Iterator[httpx.Response]:
        """Sends a request, retrying where safe, and yields a successful streaming response (errors raised)."""
        headers = dict(self._headers, **(extra_headers or {}))
        attempt = 0
        while True:
            request = self._http.build_request(
                method,
                self._url(path),
                json=json,
                content=content,
                params=params,
                headers=headers,
                timeout=timeout if timeout is not None else self.timeout,
            )
            try:
                response = self._http.send(request, stream=True)
            except httpx.TimeoutException as e:
                if method == "GET" and attempt < self.max_retries:
                    time.sleep(b.backoff(attempt, None))
                    attempt += 1
                    continue
                raise APITimeoutError(f"{method} {path}: {e}", code="timeout") from e
            except httpx.TransportError as e:
                if method == "GET" and attempt < self.max_retries:
                    time.sleep(b.backoff(attempt, None))
                    attempt += 1
                    continue
                raise APIConnectionError(f"{method} {path}: cannot reach {self.base_url}: {e}", code="connection_error") from e
            try:
                if response.status_code >= 400:
                    response.read()
                    error = error_from_response(response.status_code, response.headers, response.content)
                    if attempt < self.max_retries and b.should_retry_status(method, response.status_code):
                        time.sleep(b.backoff(attempt, getattr(error, "retry_after", None)))
                        attempt += 1
                        continue
                    raise error
                yield response
                return
            finally:
                response.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._open(method, path, **kwargs) as response:
            response.read()
            return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _stream(self, path: str, body: Dict[str, Any], cell: bool, timeout: Optional[float]) -> Iterator[StreamEvent]:
        with self._open("POST", path, json=body, timeout=timeout, extra_headers={"accept": "text/event-stream"}) as r:
            yield from b.iter_sse(r.iter_lines(), cell)

    # -- stateless runs --------------------------------------------------------------------------------------------

    def execute(
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
        """Runs code once in a fresh sandbox. `timeout` is in seconds; `files` maps paths to contents; `tests`
        (judge mode) gives a verdict per case in `result.tests`."""
        body = b.execute_body(
            code, language=language, stdin=stdin, files=files, args=args, env=env, timeout=timeout,
            limits=limits, entry=entry, tests=tests, collect=collect,
        )
        data = self._json("POST", "/execute", json=body, timeout=b.read_timeout(self.timeout, timeout))
        return ExecutionResult.from_dict(data)

    def judge(
        self, code: str, cases: Sequence[b.CaseSpec], language: str = "python", **kwargs: Any
    ) -> ExecutionResult:
        """Compiles once and runs once per test case: `cases` are `(stdin, expected_output)` pairs, `TestCase`s or
        dicts. The verdicts are in `result.tests`, the overall one in `result.summary.verdict`."""
        return self.execute(code, language, tests=cases, **kwargs)

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
    ) -> Iterator[StreamEvent]:
        """Runs code once and yields its events as they happen: `compile`, `stdout`, `stderr`, `test_case`, then
        `result` (whose `.result` is the ExecutionResult). An `error` event is raised as a RunboxError."""
        body = b.execute_body(
            code, language=language, stdin=stdin, files=files, args=args, env=env, timeout=timeout,
            limits=limits, entry=entry, tests=tests,
        )
        return self._stream("/execute/stream", body, False, b.read_timeout(self.timeout, timeout))

    def languages(self) -> List[Language]:
        """The server's catalogue; `available` says whether this host can run each."""
        return [Language.from_dict(d) for d in self._json("GET", "/languages")]

    def health(self) -> Dict[str, Any]:
        """Readiness: `status`, the protections in force, pools and counts (no key needed)."""
        health: Dict[str, Any] = self._json("GET", "/health")
        return health

    # -- async executions ------------------------------------------------------------------------------------------

    def submit(
        self,
        code: Optional[str] = None,
        language: str = "python",
        *,
        callback_url: Optional[str] = None,
        **kwargs: Any,
    ) -> "Job":
        """Queues a run (kept by the server across restarts) and returns at once; `job.wait()` gives the result."""
        body = b.execute_body(code, language=language, callback_url=callback_url, **kwargs)
        data = self._json("POST", "/executions", json=body)
        return Job(self, data["id"])

    def job(self, job_id: str) -> "Job":
        return Job(self, job_id)

    # -- sessions --------------------------------------------------------------------------------------------------

    def session(
        self,
        language: str = "python",
        *,
        env: Optional[Mapping[str, str]] = None,
        limits: Optional[Mapping[str, Any]] = None,
        idle_timeout: Optional[int] = None,
    ) -> "Session":
        """Starts a stateful session; use it as a context manager to close it at the end of the block."""
        data = self._json("POST", "/sessions", json=b.session_body(language, env=env, limits=limits, idle_timeout=idle_timeout))
        return Session(self, SessionInfo.from_dict(data))

    def get_session(self, session_id: str) -> "Session":
        """A handle on an existing session (raises NotFoundError when there is none)."""
        return Session(self, SessionInfo.from_dict(self._json("GET", b.session_url(session_id))))

    def sessions(self) -> List[SessionInfo]:
        return [SessionInfo.from_dict(d) for d in self._json("GET", "/sessions")]


class Session:
    """A live interpreter whose state persists between `run()` calls; closed by `close()` or the `with` block."""

    def __init__(self, client: Runbox, info: SessionInfo) -> None:
        self._client = client
        self.info = info
        self.id = info.id
        self.language = info.language

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Session(id={self.id!r}, language={self.language!r})"

    def run(self, code: str, timeout: Optional[float] = None) -> CellResult:
        """Runs a cell. Its exception, if any, is in `result.error` (status `error`), not raised: the session
        lives on. A dead session raises SessionDeadError; a busy one SessionBusyError."""
        data = self._client._json(
            "POST", b.session_url(self.id, "/execute"), json=b.cell_body(code, timeout),
            timeout=b.read_timeout(self._client.timeout, timeout),
        )
        return CellResult.from_dict(data)

    def stream(self, code: str, timeout: Optional[float] = None) -> Iterator[StreamEvent]:
        """Runs a cell and yields `stdout`, `stderr`, `display` events, then `result` (`.result` is the CellResult)."""
        return self._client._stream(
            b.session_url(self.id, "/execute/stream"), b.cell_body(code, timeout), True,
            b.read_timeout(self._client.timeout, timeout),
        )

    def upload(self, path: str, data: Data) -> FileEntry:
        """Writes a file into the session's workspace (parents created): bytes, text, a local path or a binary file."""
        response = self._client._request(
            "PUT", b.file_url(self.id, path), content=_read_data(data),
            extra_headers={"content-type": "application/octet-stream"},
        )
        return FileEntry.from_dict(response.json())

    def download(self, path: str) -> bytes:
        """The exact bytes of a file in the session's workspace."""
        return self._client._request("GET", b.file_url(self.id, path)).content

    def files(self, path: Optional[str] = None) -> List[FileEntry]:
        """The entries of a workspace directory (the workspace itself by default)."""
        params = {"path": path} if path else None
        return [FileEntry.from_dict(d) for d in self._client._json("GET", b.session_url(self.id, "/files"), params=params)]

    def delete(self, path: str) -> None:
        """Deletes a file or a directory with its contents."""
        self._client._request("DELETE", b.file_url(self.id, path))

    def interrupt(self) -> SessionInfo:
        """Interrupts the running cell (like Ctrl-C); the session and its state survive."""
        self.info = SessionInfo.from_dict(self._client._json("POST", b.session_url(self.id, "/interrupt")))
        return self.info

    def refresh(self) -> SessionInfo:
        """The session's current state (`idle`, `busy`, `dead`), memory and counters."""
        self.info = SessionInfo.from_dict(self._client._json("GET", b.session_url(self.id)))
        return self.info

    def close(self) -> None:
        """Ends the session; closing one that is already gone is not an error."""
        try:
            self._client._request("DELETE", b.session_url(self.id))
        except NotFoundError:
            pass


class Job:
    """An async execution on the server."""

    def __init__(self, client: Runbox, job_id: str) -> None:
        self._client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"Job(id={self.id!r})"

    def status(self) -> JobInfo:
        return JobInfo.from_dict(self._client._json("GET", f"/executions/{self.id}"))

    def cancel(self) -> JobInfo:
        return JobInfo.from_dict(self._client._json("DELETE", f"/executions/{self.id}"))

    def wait(self, timeout: Optional[float] = None, poll_interval: float = 0.1) -> ExecutionResult:
        """Polls until the job finishes and returns its result. Raises JobFailedError when it ended without one,
        TimeoutError when `timeout` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = poll_interval
        while True:
            info = self.status()
            if info.finished:
                return _job_result(info)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} still {info.status} after {timeout} s")
            time.sleep(interval)
            interval = min(interval * 1.5, 2.0)


def _job_result(info: JobInfo) -> ExecutionResult:
    if info.result is not None:
        return info.result
    error = info.error if isinstance(info.error, dict) else {}
    raise JobFailedError(
        str(error.get("message") or f"job {info.id} ended {info.status} without a result"),
        code=str(error.get("code") or info.status),
        details=info.error,
    )
