"""runbox: a Python client for the runbox code-execution service.

    from runbox import Runbox
    rb = Runbox()                      # RUNBOX_URL (default http://127.0.0.1:8080), RUNBOX_API_KEY
    print(rb.execute("print(6*7)").stdout)
"""

from ._async import AsyncJob, AsyncRunbox, AsyncSession
from ._client import Job, Runbox, Session
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    JobFailedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RunboxError,
    ServiceUnavailableError,
    SessionBusyError,
    SessionDeadError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from ._models import (
    CellError,
    CellResult,
    CollectedFile,
    ExecutionResult,
    FileEntry,
    JobInfo,
    Language,
    Outcome,
    Output,
    SessionInfo,
    StreamEvent,
    TestCase,
    TestCaseResult,
    TestSummary,
)

__version__ = "0.1.0"

__all__ = [
    "Runbox", "AsyncRunbox", "Session", "AsyncSession", "Job", "AsyncJob",
    "RunboxError", "APIConnectionError", "APITimeoutError", "BadRequestError", "AuthenticationError",
    "PermissionDeniedError", "NotFoundError", "ConflictError", "SessionDeadError", "SessionBusyError",
    "PayloadTooLargeError", "UnsupportedMediaTypeError", "ValidationError", "RateLimitedError",
    "ServiceUnavailableError", "InternalServerError", "JobFailedError",
    "CellError", "CellResult", "CollectedFile", "ExecutionResult", "FileEntry", "JobInfo", "Language", "Outcome",
    "Output", "SessionInfo", "StreamEvent", "TestCase", "TestCaseResult", "TestSummary",
]
