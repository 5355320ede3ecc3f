"""Errors as JSON: ``{"error": "what went wrong and what to do"}`` with a 4xx or 5xx code;
on the Judge0 API, a submission's invalid fields as Judge0 gives them:
``{"field": ["message", ...]}`` with 422."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 body: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers
        self.body: dict[str, object] = body if body is not None else {"error": message}


def field_errors(errors: dict[str, list[str]]) -> ApiError:
    """422 with Judge0's body for invalid fields: each field's messages."""
    message = "; ".join(f"{k} {m}" for k, ms in errors.items() for m in ms)
    return ApiError(422, message, body=dict(errors))


def _judge0(request: Request) -> bool:
    return not request.url.path.startswith("/v1")


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "the request body is not valid JSON"
    whole = [e for e in errors if tuple(e.get("loc", ())) == ("body",)]
    if whole:  # no body, or not an object (a list, a string, a form)
        return 422, "the request body must be a JSON object (content-type: application/json)"
    parts = []
    for e in errors[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{where or 'body'}: {e.get('msg', 'invalid')}")
    return 422, "; ".join(parts)


def _fields(exc: RequestValidationError) -> dict[str, list[str]]:
    """A body's invalid fields by name (Judge0's shape); empty when the error is elsewhere."""
    out: dict[str, list[str]] = {}
    for e in exc.errors():
        loc = [str(x) for x in e.get("loc", ()) if not isinstance(x, int)]
        if len(loc) < 2 or loc[0] != "body":
            return {}
        out.setdefault(loc[-1], []).append(str(e.get("msg", "is invalid")))
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body, exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(exc)
        fields = _fields(exc)
        if _judge0(request) and status == 422 and fields:
            return JSONResponse(fields, 422)
        return JSONResponse({"error": message}, status)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code)
