"""What the sync and async clients share: configuration from the environment, request bodies, the retry policy and
the Server-Sent Events parser. Nothing here does I/O, so both clients behave the same by construction.
"""

from __future__ import annotations

import base64
import json
import os
import random
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote

from ._errors import error_from_body
from ._models import CellResult, ExecutionResult, StreamEvent, TestCase

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
#: The longest the client sleeps before one retry, whatever `Retry-After` says.
MAX_RETRY_WAIT = 30.0

FileSpec = Union[Mapping[str, Union[str, bytes]], Sequence[Tuple[str, Union[str, bytes]]]]
CaseSpec = Union[TestCase, Mapping[str, Any], Tuple[str, Optional[str]]]


def resolve_url(base_url: Optional[str]) -> str:
    return (base_url or os.environ.get("RUNBOX_URL") or DEFAULT_URL).rstrip("/")


def resolve_key(api_key: Optional[str]) -> Optional[str]:
    return api_key if api_key is not None else (os.environ.get("RUNBOX_API_KEY") or None)


def headers(api_key: Optional[str]) -> Dict[str, str]:
    h = {"user-agent": "runbox-python/0.1.0", "accept": "application/json"}
    if api_key:
        h["authorization"] = f"Bearer {api_key}"
    return h


def file_url(session_id: str, path: str) -> str:
    """`/sessions/{id}/files/{path}`, each path segment percent-encoded (slashes kept as separators). Dot segments
    are encoded too, so that the HTTP layer cannot resolve `a/../b` away: the server judges the path as given."""
    segments = [quote(seg, safe="") if seg not in (".", "..") else seg.replace(".", "%2E") for seg in path.split("/")]
    return f"/sessions/{quote(session_id, safe='')}/files/{'/'.join(segments).lstrip('/')}"


def session_url(session_id: str, rest: str = "") -> str:
    return f"/sessions/{quote(session_id, safe='')}{rest}"


def _source_files(files: Optional[FileSpec]) -> List[Dict[str, str]]:
    items: Iterable[Tuple[str, Union[str, bytes]]] = (
        files.items() if isinstance(files, Mapping) else (files or [])
    )
    out = []
    for path, content in items:
        if isinstance(content, bytes):
            try:
                out.append({"path": path, "content": content.decode("utf-8")})
            except UnicodeDecodeError:
                out.append({"path": path, "content": base64.b64encode(content).decode(), "encoding": "base64"})
        else:
            out.append({"path": path, "content": content})
    return out


def _case(case: CaseSpec) -> Dict[str, Any]:
    if isinstance(case, TestCase):
        return case.to_dict()
    if isinstance(case, tuple):
        stdin, expected = case
        return TestCase(stdin=stdin, expected_output=expected).to_dict()
    return dict(case)


def execute_body(
    code: Optional[str],
    *,
    language: Optional[str],
    stdin: Optional[str] = None,
    files: Optional[FileSpec] = None,
    args: Optional[Sequence[str]] = None,
    env: Optional[Mapping[str, str]] = None,
    timeout: Optional[float] = None,
    limits: Optional[Mapping[str, Any]] = None,
    entry: Optional[str] = None,
    tests: Optional[Sequence[CaseSpec]] = None,
    collect: Optional[Sequence[str]] = None,
    callback_url: Optional[str] = None,
) -> Dict[str, Any]:
    """The JSON of `POST /execute` (and `/execute/stream`, `/executions`); `timeout` is in seconds."""
    body: Dict[str, Any] = {}
    if language is not None:
        body["language"] = language
    if code is not None:
        body["code"] = code
    if stdin is not None:
        body["stdin"] = stdin
    if files:
        body["files"] = _source_files(files)
    if args:
        body["args"] = list(args)
    if env:
        body["env"] = dict(env)
    if timeout is not None:
        body["timeout_ms"] = int(round(timeout * 1000))
    if limits:
        body["limits"] = dict(limits)
    if entry is not None:
        body["entry"] = entry
    if tests is not None:
        body["tests"] = [_case(c) for c in tests]
    if collect:
        body["collect"] = list(collect)
    if callback_url is not None:
        body["callback_url"] = callback_url
    return body


def session_body(
    language: str,
    *,
    env: Optional[Mapping[str, str]] = None,
    limits: Optional[Mapping[str, Any]] = None,
    idle_timeout: Optional[int] = None,
) -> Dict[str, Any]:
    body: Dict[str, Any] = {"language": language}
    if env:
        body["env"] = dict(env)
    if limits:
        body["limits"] = dict(limits)
    if idle_timeout is not None:
        body["idle_timeout_s"] = int(idle_timeout)
    return body


def cell_body(code: str, timeout: Optional[float]) -> Dict[str, Any]:
    body: Dict[str, Any] = {"code": code}
    if timeout is not None:
        body["timeout_ms"] = int(round(timeout * 1000))
    return body


def read_timeout(default: float, run_timeout: Optional[float]) -> float:
    """A request that runs code may take as long as the run plus set-up: never give up before the server does."""
    return max(default, run_timeout + 30.0) if run_timeout is not None else default


# Retries. Only where repeating cannot run anything twice: a GET (on connection errors, 429, 502, 503, 504), or any
# request the server refused before doing anything (429 rate limited, 503 draining or overloaded).
RETRY_ANY_METHOD = frozenset({429, 503})
RETRY_GET = frozenset({429, 502, 503, 504})


def should_retry_status(method: str, status: int) -> bool:
    return status in (RETRY_GET if method == "GET" else RETRY_ANY_METHOD)


def backoff(attempt: int, retry_after: Optional[float]) -> float:
    """Seconds before retry number `attempt` (0-based): the server's `Retry-After` when given, else exponential
    with jitter (0.25 s, 0.5 s, 1 s, ...)."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_WAIT)
    return min(0.25 * float(2**attempt) * (0.5 + random.random()), MAX_RETRY_WAIT)


class SSEParser:
    """Incremental Server-Sent Events parser: feed it lines, get `(event, data)` pairs at each blank line."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: List[str] = []

    def feed(self, line: str) -> Optional[Tuple[str, str]]:
        line = line.rstrip("\r\n")
        if line == "":
            if not self._data:
                self._event = "message"
                return None
            out = (self._event, "\n".join(self._data))
            self._event, self._data = "message", []
            return out
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


def to_event(name: str, data: str, cell: bool) -> StreamEvent:
    """Turns one SSE record into a StreamEvent, raising the server's error for an `error` event."""
    payload: Any = json.loads(data) if data else None
    if name == "error":
        raise error_from_body(None, payload)
    result: Any = None
    if name == "result" and isinstance(payload, dict):
        result = CellResult.from_dict(payload) if cell else ExecutionResult.from_dict(payload)
    return StreamEvent(type=name, data=payload, result=result)


def iter_sse(lines: Iterable[str], cell: bool) -> Iterator[StreamEvent]:
    parser = SSEParser()
    for line in lines:
        record = parser.feed(line)
        if record is not None:
            yield to_event(record[0], record[1], cell)
    record = parser.feed("")
    if record is not None:
        yield to_event(record[0], record[1], cell)
