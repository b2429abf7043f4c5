"""Exceptions raised by the SDK, one class per kind of failure, each carrying the server's stable `code`.

The server answers every error as `{code, message, details?}`; `error_from_response` maps the HTTP status (and, for
409, the code) to a class so callers can catch what they can handle (`except RateLimitedError as e: e.retry_after`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

__all__ = [
    "RunboxError",
    "APIConnectionError",
    "APITimeoutError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "SessionDeadError",
    "SessionBusyError",
    "PayloadTooLargeError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "RateLimitedError",
    "ServiceUnavailableError",
    "InternalServerError",
    "JobFailedError",
    "error_from_response",
]


class RunboxError(Exception):
    """Any error from runbox: `code` is the server's machine-readable code (`invalid_field`, `not_found`, ...)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        status: Optional[int] = None,
        details: Any = None,
        request_id: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details
        self.request_id = request_id

    def __str__(self) -> str:
        prefix = f"{self.status} " if self.status is not None else ""
        return f"{prefix}{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, message={self.message!r})"


class APIConnectionError(RunboxError):
    """The server could not be reached (refused, reset, DNS)."""


class APITimeoutError(APIConnectionError):
    """The server did not answer within the client's timeout."""


class BadRequestError(RunboxError):
    """400: the request is malformed (bad JSON, a bad path)."""


class AuthenticationError(RunboxError):
    """401: no API key, or not a valid one (set `RUNBOX_API_KEY` or pass `api_key=`)."""


class PermissionDeniedError(RunboxError):
    """403: refused, e.g. a WebSocket from a foreign origin."""


class NotFoundError(RunboxError):
    """404: no such session, file, execution or route."""


class ConflictError(RunboxError):
    """409: the resource is in a state that refuses the request."""


class SessionDeadError(ConflictError):
    """409 `session_dead`: the session's interpreter has ended; start a new session."""


class SessionBusyError(ConflictError):
    """409 `session_busy`: another cell is running in this session."""


class PayloadTooLargeError(RunboxError):
    """413: the request body is over the server's size limit."""


class UnsupportedMediaTypeError(RunboxError):
    """415: the request's content type is not accepted."""


class ValidationError(RunboxError):
    """422: a field is invalid; `field` names it (`limits.memory_mb`, `language`)."""

    @property
    def field(self) -> Optional[str]:
        if isinstance(self.details, dict):
            value = self.details.get("field")
            return value if isinstance(value, str) else None
        return None


class RateLimitedError(RunboxError):
    """429: too many requests, runs or sessions for this key; `retry_after` is in seconds, when the server said."""

    def __init__(self, message: str, *, retry_after: Optional[float] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServiceUnavailableError(RunboxError):
    """503: the server is draining or overloaded; `retry_after` is in seconds, when the server said."""

    def __init__(self, message: str, *, retry_after: Optional[float] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class InternalServerError(RunboxError):
    """5xx other than 503: the server failed; its log has the details."""


class JobFailedError(RunboxError):
    """An async execution ended without a result (invalid request, internal error, or cancelled)."""


_BY_STATUS = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: ValidationError,
}

_BY_CODE = {
    "session_dead": SessionDeadError,
    "session_busy": SessionBusyError,
    "unauthorized": AuthenticationError,
    "rate_limited": RateLimitedError,
    "too_many_sessions": RateLimitedError,
}


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a `Retry-After` header (the server sends whole seconds); None when absent or a date."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_from_body(
    status: Optional[int],
    body: Any,
    *,
    retry_after: Optional[float] = None,
    request_id: Optional[str] = None,
    fallback_message: str = "",
) -> RunboxError:
    """The exception for an error body `{code, message, details?}` (also used for SSE `error` events)."""
    code = "error"
    message = fallback_message or (f"HTTP {status}" if status else "error")
    details = None
    if isinstance(body, dict):
        if isinstance(body.get("code"), str):
            code = body["code"]
        if isinstance(body.get("message"), str):
            message = body["message"]
        details = body.get("details")
    kwargs: Dict[str, Any] = dict(code=code, status=status, details=details, request_id=request_id)
    if status == 429 or (status is None and code in ("rate_limited", "too_many_sessions")):
        return RateLimitedError(message, retry_after=retry_after, **kwargs)
    if status == 503:
        return ServiceUnavailableError(message, retry_after=retry_after, **kwargs)
    cls = _BY_CODE.get(code) if status in (None, 409, 401) else None
    if cls is None and status is not None:
        cls = _BY_STATUS.get(status)
        if cls is None and status >= 500:
            cls = InternalServerError
    if cls is RateLimitedError:
        return RateLimitedError(message, retry_after=retry_after, **kwargs)
    return (cls or RunboxError)(message, **kwargs)


def error_from_response(status: int, headers: Any, content: bytes) -> RunboxError:
    """The exception for an HTTP error response."""
    import json

    body: Any = None
    text = ""
    try:
        body = json.loads(content.decode("utf-8")) if content else None
    except (UnicodeDecodeError, ValueError):
        text = content[:200].decode("utf-8", "replace")
    return error_from_body(
        status,
        body,
        retry_after=parse_retry_after(headers.get("retry-after")),
        request_id=headers.get("x-request-id"),
        fallback_message=text,
    )
