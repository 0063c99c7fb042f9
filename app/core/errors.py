"""Domain errors and the one place that turns any error into `application/problem+json`.

Domain code raises a subclass (`class AgentNotFound(NotFound)`); routes never build error
bodies. Bodies follow RFC 9457: `type`, `title`, `status`, `detail`, `instance`, plus the
request id so a user's report can be found in the logs. No stack trace ever leaves the process.
"""

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import MISSING, BaseModel, ConfigDict, Field
from sqlalchemy import exc as sqlalchemy_errors
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    status_code: int = 500
    problem: str = "internal-error"
    title: str = "Internal Server Error"

    def __init__(
        self, detail: str | None = None, headers: dict[str, str] | None = None, **extensions: Any
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        # Response headers the problem needs (`Retry-After` on a 429 or 503).
        self.headers = headers or {}
        self.extensions = extensions


class BadRequest(AppError):
    status_code = 400
    problem = "bad-request"
    title = "Bad Request"


class MalformedJSON(BadRequest):
    problem = "malformed-json"
    title = "Malformed JSON"


class Unauthorized(AppError):
    status_code = 401
    problem = "unauthorized"
    title = "Unauthorized"


class Forbidden(AppError):
    status_code = 403
    problem = "forbidden"
    title = "Forbidden"


class NotFound(AppError):
    status_code = 404
    problem = "not-found"
    title = "Not Found"


class Conflict(AppError):
    status_code = 409
    problem = "conflict"
    title = "Conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    problem = "payload-too-large"
    title = "Payload Too Large"


class UnsupportedMediaType(AppError):
    status_code = 415
    problem = "unsupported-media-type"
    title = "Unsupported Media Type"


class UnprocessableContent(AppError):
    status_code = 422
    problem = "validation-error"
    title = "Unprocessable Content"


class TooManyRequests(AppError):
    status_code = 429
    problem = "too-many-requests"
    title = "Too Many Requests"


class ServiceUnavailable(AppError):
    status_code = 503
    problem = "service-unavailable"
    title = "Service Unavailable"


class DatabaseBusy(ServiceUnavailable):
    """No pooled database connection within DATABASE_POOL_TIMEOUT_SECONDS: the service is
    at its load, not broken; the client may retry shortly."""

    problem = "database-busy"
    title = "Database busy"


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(
        description="Where: `body`, `query`, `path` or `header`, then the field."
    )
    msg: str
    type: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`)."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="`/problems/<name>`: what went wrong, stable for code.")
    title: str
    status: int
    detail: str = Field(description="What went wrong this time, for people.")
    instance: str = Field(description="The path of the request.")
    request_id: str | None = Field(description="Quote it when you report a problem.")
    errors: list[ValidationIssue] | MISSING = Field(
        default=MISSING, description="Validation errors, one per field (422, 400)."
    )


def problem_body(
    status: int,
    problem: str,
    title: str,
    detail: str,
    instance: str,
    request_id: str | None,
    **extensions: Any,
) -> dict[str, Any]:
    return {
        "type": f"/problems/{problem}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": request_id,
        **extensions,
    }


def problem_response(
    request: Request,
    status: int,
    problem: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    body = problem_body(status, problem, title, detail, request.url.path, request_id, **extensions)
    response_headers = dict(headers or {})
    if request_id:
        # The server-error path answers from outside the request-id middleware.
        response_headers["X-Request-ID"] = request_id
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=response_headers)


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(
        request,
        exc.status_code,
        exc.problem,
        exc.title,
        exc.detail,
        headers=exc.headers,
        **exc.extensions,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = HTTPStatus(exc.status_code)
    problem = status.phrase.lower().replace(" ", "-").replace("'", "")
    detail = exc.detail if isinstance(exc.detail, str) else status.description
    return problem_response(
        request,
        status.value,
        problem,
        status.phrase,
        detail,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    if any(error["type"] == "json_invalid" for error in errors):
        return problem_response(
            request,
            400,
            MalformedJSON.problem,
            MalformedJSON.title,
            "The request body is not valid JSON.",
            errors=errors,
        )
    return problem_response(
        request,
        422,
        UnprocessableContent.problem,
        UnprocessableContent.title,
        "The request does not match the expected schema.",
        errors=errors,
    )


async def _pool_timeout(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("no pooled database connection in time", exc_info=exc)
    detail = "Every database connection is in use; retry in a second."
    return await _app_error(request, DatabaseBusy(detail, headers={"Retry-After": "1"}))


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return problem_response(
        request,
        500,
        AppError.problem,
        AppError.title,
        "Something went wrong on our side. Quote the request id if you report it.",
    )


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(sqlalchemy_errors.TimeoutError, _pool_timeout)
    app.add_exception_handler(Exception, _unhandled_error)
