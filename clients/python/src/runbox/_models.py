"""Typed views of the server's JSON answers (see the committed `openapi.json`), built leniently.

Each class keeps the raw dict in `raw`, so a field the server adds later is never lost, and reads known fields with
defaults, so an older SDK keeps working against a newer server.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Union

__all__ = [
    "Language",
    "Outcome",
    "TestCase",
    "TestCaseResult",
    "TestSummary",
    "CollectedFile",
    "ExecutionResult",
    "Output",
    "CellError",
    "CellResult",
    "SessionInfo",
    "FileEntry",
    "JobInfo",
    "StreamEvent",
]

_BINARY_PREFIXES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")


def _b64(value: Any) -> Optional[bytes]:
    return base64.b64decode(value) if isinstance(value, str) else None


@dataclass
class Language:
    """One entry of `GET /languages`."""

    id: str
    name: str
    aliases: List[str]
    available: bool
    compiled: bool
    sessions: bool
    extensions: List[str]
    version: Optional[str] = None
    reason: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Language":
        return cls(
            id=d.get("id", ""),
            name=d.get("name", ""),
            aliases=list(d.get("aliases") or []),
            available=bool(d.get("available")),
            compiled=bool(d.get("compiled")),
            sessions=bool(d.get("sessions")),
            extensions=list(d.get("extensions") or []),
            version=d.get("version"),
            reason=d.get("reason"),
            raw=dict(d),
        )


@dataclass
class Outcome:
    """One stage (compile or run) of an execution."""

    status: str
    stdout: str
    stderr: str
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    wall_ms: int = 0
    cpu_ms: Optional[int] = None
    memory_peak_bytes: Optional[int] = None
    message: Optional[str] = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Outcome":
        return cls(
            status=d.get("status", ""),
            stdout=d.get("stdout", ""),
            stderr=d.get("stderr", ""),
            exit_code=d.get("exit_code"),
            signal=d.get("signal"),
            wall_ms=d.get("wall_ms", 0),
            cpu_ms=d.get("cpu_ms"),
            memory_peak_bytes=d.get("memory_peak_bytes"),
            message=d.get("message"),
            stdout_truncated=bool(d.get("stdout_truncated")),
            stderr_truncated=bool(d.get("stderr_truncated")),
            raw=dict(d),
        )

    @property
    def stdout_bytes(self) -> bytes:
        """The exact bytes written to stdout (`stdout` is a lossy rendering when they are not UTF-8)."""
        return _b64(self.raw.get("stdout_base64")) or self.stdout.encode("utf-8")

    @property
    def stderr_bytes(self) -> bytes:
        return _b64(self.raw.get("stderr_base64")) or self.stderr.encode("utf-8")


@dataclass
class TestCase:
    """A judge test case: the program runs with `stdin` (and `args`), and its stdout is compared."""

    __test__ = False  # not a pytest test class

    stdin: str = ""
    expected_output: Optional[str] = None
    args: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"stdin": self.stdin}
        if self.expected_output is not None:
            d["expected_output"] = self.expected_output
        if self.args:
            d["args"] = list(self.args)
        return d


@dataclass
class TestCaseResult:
    """The verdict of one test case: `passed`, `wrong_output`, `ran` (nothing to compare) or `failed`."""

    __test__ = False  # not a pytest test class

    index: int
    verdict: str
    status: str
    stdout: str
    stderr: str
    wall_ms: int = 0
    exit_code: Optional[int] = None
    cpu_ms: Optional[int] = None
    memory_peak_bytes: Optional[int] = None
    message: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TestCaseResult":
        return cls(
            index=d.get("index", 0),
            verdict=d.get("verdict", ""),
            status=d.get("status", ""),
            stdout=d.get("stdout", ""),
            stderr=d.get("stderr", ""),
            wall_ms=d.get("wall_ms", 0),
            exit_code=d.get("exit_code"),
            cpu_ms=d.get("cpu_ms"),
            memory_peak_bytes=d.get("memory_peak_bytes"),
            message=d.get("message"),
            raw=dict(d),
        )

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"


@dataclass
class TestSummary:
    __test__ = False  # not a pytest test class

    total: int
    passed: int
    failed: int
    verdict: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TestSummary":
        return cls(d.get("total", 0), d.get("passed", 0), d.get("failed", 0), d.get("verdict", ""))


@dataclass
class CollectedFile:
    """A file the program produced, returned because it matched a `collect` pattern."""

    path: str
    size: int
    content: Optional[bytes] = None
    skipped: Optional[str] = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CollectedFile":
        return cls(d.get("path", ""), d.get("size", 0), _b64(d.get("content_base64")), d.get("skipped"))

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        if self.content is None:
            raise ValueError(f"{self.path} has no content: {self.skipped or 'not returned'}")
        with open(path, "wb") as f:
            f.write(self.content)


@dataclass
class ExecutionResult(Outcome):
    """What one execution did: `status` is `ok`, `exited_nonzero`, `timeout`, ..., or `compile_error`."""

    language: str = ""
    version: Optional[str] = None
    duration_ms: int = 0
    compile_cached: bool = False
    compile: Optional[Outcome] = None
    run: Optional[Outcome] = None
    tests: Optional[List[TestCaseResult]] = None
    summary: Optional[TestSummary] = None
    files: Optional[List[CollectedFile]] = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ExecutionResult":
        base = Outcome.from_dict(d)
        return cls(
            **{k: getattr(base, k) for k in base.__dataclass_fields__},
            language=d.get("language", ""),
            version=d.get("version"),
            duration_ms=d.get("duration_ms", 0),
            compile_cached=bool(d.get("compile_cached")),
            compile=Outcome.from_dict(d["compile"]) if d.get("compile") else None,
            run=Outcome.from_dict(d["run"]) if d.get("run") else None,
            tests=[TestCaseResult.from_dict(t) for t in d["tests"]] if d.get("tests") is not None else None,
            summary=TestSummary.from_dict(d["summary"]) if d.get("summary") else None,
            files=[CollectedFile.from_dict(f) for f in d["files"]] if d.get("files") is not None else None,
        )

    @property
    def ok(self) -> bool:
        """Whether the program ran and exited 0."""
        return self.status == "ok"


@dataclass
class Output:
    """A rich output of a session cell (a figure, HTML, JSON, ...): `mime_type` and its data."""

    mime_type: str
    data: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Output":
        return cls(d.get("mime_type", ""), d.get("data", ""))

    @property
    def is_binary(self) -> bool:
        """Binary types (`image/png`, ...) are sent base64; text types (`text/html`, `image/svg+xml`) as text."""
        return self.mime_type.startswith(_BINARY_PREFIXES)

    @property
    def content(self) -> bytes:
        """The output's bytes: decoded from base64 for binary types, UTF-8 for text types."""
        if self.is_binary:
            return base64.b64decode(self.data)
        return self.data.encode("utf-8")

    @property
    def png(self) -> Optional[bytes]:
        return self.content if self.mime_type == "image/png" else None

    @property
    def jpeg(self) -> Optional[bytes]:
        return self.content if self.mime_type == "image/jpeg" else None

    @property
    def svg(self) -> Optional[str]:
        return self.data if self.mime_type == "image/svg+xml" else None

    @property
    def html(self) -> Optional[str]:
        return self.data if self.mime_type == "text/html" else None

    @property
    def text(self) -> Optional[str]:
        return self.data if self.mime_type == "text/plain" else None

    @property
    def json(self) -> Any:
        return json.loads(self.data) if self.mime_type == "application/json" else None

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Write the output to a file: `cell.outputs[0].save("plot.png")`."""
        with open(path, "wb") as f:
            f.write(self.content)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Dict[str, Any]:
        return {self.mime_type: self.data}


@dataclass
class CellError:
    """The exception a cell raised: its class name, message and formatted traceback."""

    name: str
    value: str
    traceback: str


@dataclass
class CellResult:
    """What one session cell did: `status` is `ok`, `error`, `interrupted`, `timeout`, `exit` or `memory_limit`."""

    status: str
    stdout: str
    stderr: str
    outputs: List[Output]
    execution_count: int = 0
    duration_ms: int = 0
    result: Optional[Dict[str, Any]] = None
    error: Optional[CellError] = None
    exit_code: Optional[int] = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CellResult":
        err = d.get("error")
        return cls(
            status=d.get("status", ""),
            stdout=d.get("stdout", ""),
            stderr=d.get("stderr", ""),
            outputs=[Output.from_dict(o) for o in d.get("outputs") or []],
            execution_count=d.get("execution_count", 0),
            duration_ms=d.get("duration_ms", 0),
            result=d.get("result"),
            error=CellError(err.get("name", ""), err.get("value", ""), err.get("traceback", ""))
            if isinstance(err, dict)
            else None,
            exit_code=d.get("exit_code"),
            stdout_truncated=bool(d.get("stdout_truncated")),
            stderr_truncated=bool(d.get("stderr_truncated")),
            raw=dict(d),
        )

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def text(self) -> Optional[str]:
        """The trailing expression's value as text (`repr`), if the cell ended with one."""
        return (self.result or {}).get("text/plain")

    @property
    def images(self) -> List[Output]:
        """The cell's image outputs (figures), in order."""
        return [o for o in self.outputs if o.mime_type.startswith("image/")]


@dataclass
class SessionInfo:
    id: str
    language: str
    state: str
    created_at: int = 0
    last_used_at: int = 0
    executions: int = 0
    memory_bytes: int = 0
    idle_timeout_s: int = 0
    dead_reason: Optional[str] = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SessionInfo":
        return cls(
            id=d.get("id", ""),
            language=d.get("language", ""),
            state=d.get("state", ""),
            created_at=d.get("created_at", 0),
            last_used_at=d.get("last_used_at", 0),
            executions=d.get("executions", 0),
            memory_bytes=d.get("memory_bytes", 0),
            idle_timeout_s=d.get("idle_timeout_s", 0),
            dead_reason=d.get("dead_reason"),
        )


@dataclass
class FileEntry:
    name: str
    size: int
    modified: int
    is_dir: bool

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FileEntry":
        return cls(d.get("name", ""), d.get("size", 0), d.get("modified", 0), bool(d.get("is_dir")))


@dataclass
class JobInfo:
    """An async execution: `status` is `queued`, `running`, `done` or `cancelled`."""

    id: str
    status: str
    created_at: int = 0
    started_at: Optional[int] = None
    finished_at: Optional[int] = None
    result: Optional[ExecutionResult] = None
    error: Any = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "JobInfo":
        return cls(
            id=d.get("id", ""),
            status=d.get("status", ""),
            created_at=d.get("created_at", 0),
            started_at=d.get("started_at"),
            finished_at=d.get("finished_at"),
            result=ExecutionResult.from_dict(d["result"]) if d.get("result") else None,
            error=d.get("error"),
        )

    @property
    def finished(self) -> bool:
        return self.status in ("done", "cancelled")


@dataclass
class StreamEvent:
    """One Server-Sent Event of a streamed run: `type` is `stdout`, `stderr`, `compile`, `test_case`, `display`
    or `result` (an `error` event is raised as an exception instead). `data` is the event's JSON."""

    type: str
    data: Any
    result: Optional[Union[ExecutionResult, CellResult]] = None

    @property
    def text(self) -> str:
        """For output events: the text written (lossy when the bytes were not UTF-8)."""
        text = self.data.get("data") if isinstance(self.data, dict) else None
        return text if isinstance(text, str) else ""

    @property
    def bytes(self) -> bytes:
        """For output events: the exact bytes written."""
        if isinstance(self.data, dict):
            exact = _b64(self.data.get("base64"))
            if exact is not None:
                return exact
        return self.text.encode("utf-8")

    @property
    def output(self) -> Optional[Output]:
        """For `display` events: the rich output."""
        return Output.from_dict(self.data) if self.type == "display" and isinstance(self.data, dict) else None
