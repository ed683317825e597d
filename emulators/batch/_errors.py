"""Batch's error answers: the ``BatchError`` JSON body, its headers, and the messages per code."""

from __future__ import annotations

import json
import random

from emulators._http import Response
from emulators.batch._model import iso7, utcnow

ERROR_CONTENT_TYPE = "application/json;odata=minimalmetadata"

# code -> (HTTP status, message text as Batch words it)
ERRORS: dict[str, tuple[int, str]] = {
    "AuthenticationFailed": (
        401,
        "Server failed to authenticate the request. Make sure the value of Authorization header "
        "is formed correctly including the signature.",
    ),
    "MissingRequiredQueryParameter": (
        400,
        "A query parameter that's mandatory for this request is not specified.",
    ),
    "InvalidQueryParameterValue": (
        400,
        "Value for one of the query parameters specified in the request URI is invalid.",
    ),
    "OutOfRangeQueryParameterValue": (
        400,
        "One of the query parameters specified in the request URI is outside the permissible range.",
    ),
    "UnsupportedQueryParameter": (
        400,
        "One of the query parameters specified in the request URI is not supported.",
    ),
    "InvalidHeaderValue": (400, "The value for one of the HTTP headers is not in the correct format."),
    "InvalidRequestBody": (400, "The specified Request Body is not syntactically valid."),
    "MissingRequiredProperty": (400, "A required property was not specified in the request body."),
    "InvalidPropertyValue": (400, "The value provided for one of the properties is invalid."),
    "InvalidUri": (400, "The requested URI does not represent any resource on the server."),
    "ResourceNotFound": (404, "The specified resource does not exist."),
    "UnsupportedHttpVerb": (405, "The resource doesn't support the specified HTTP verb."),
    "JobNotFound": (404, "The specified job does not exist."),
    "JobExists": (409, "The specified job already exists."),
    "JobBeingDeleted": (
        409,
        "The specified job has been marked for deletion and is being garbage collected.",
    ),
    "JobBeingTerminated": (409, "The specified job is being terminated."),
    "JobCompleted": (409, "The specified job is already in a completed state."),
    "ConditionNotMet": (412, "The condition specified using HTTP conditional header(s) is not met."),
    "TooManyRequests": (429, "The server is receiving too many requests."),
    "InternalError": (500, "Server encountered an internal error. Please try again after some time."),
    "ServerBusy": (503, "The server is currently unable to receive requests. Please retry your request."),
    "OperationTimedOut": (500, "The operation could not be completed within the permitted time."),
}

# the code a fault gets when it names only a status
DEFAULT_CODES = {
    400: "InvalidInput",
    401: "AuthenticationFailed",
    403: "AuthorizationFailure",
    404: "ResourceNotFound",
    408: "OperationTimedOut",
    409: "OperationInvalidForCurrentState",
    412: "ConditionNotMet",
    413: "RequestBodyTooLarge",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServerBusy",
}


_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)  # version and variant bits of a random UUID
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))


def new_request_id() -> str:
    """A random (version 4) GUID; a fifth of ``str(uuid.uuid4())``'s cost, on every request."""
    digits = f"{random.getrandbits(128) & _VERSION_MASK | _VERSION_4:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def common_headers(request_id: str, client_request_id: str | None) -> list[tuple[str, str]]:
    """Headers every Batch answer carries; ``client-request-id`` only when asked to echo it."""
    headers = [("request-id", request_id), ("DataServiceVersion", "3.0")]
    if client_request_id is not None:
        headers.append(("client-request-id", client_request_id))
    return headers


def error_body(
    base_url: str,
    code: str,
    request_id: str,
    message: str | None = None,
    values: list[dict[str, str]] | None = None,
) -> bytes:
    text = message if message is not None else ERRORS.get(code, (0, code))[1]
    body: dict[str, object] = {
        "odata.metadata": (
            f"{base_url}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"
        ),
        "code": code,
        "message": {
            "lang": "en-US",
            "value": f"{text}\nRequestId:{request_id}\nTime:{iso7(utcnow())}",
        },
    }
    if values:
        body["values"] = values
    return json.dumps(body, separators=(",", ":")).encode()


class BatchError(Exception):
    """Raised inside request processing; becomes a Batch error answer."""

    def __init__(
        self,
        code: str,
        values: dict[str, str] | None = None,
        *,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.status = ERRORS[code][0]
        self.values = [{"key": k, "value": v} for k, v in (values or {}).items()]
        self.headers = headers or []

    def response(self, base_url: str, request_id: str, client_request_id: str | None) -> Response:
        headers = [("Content-Type", ERROR_CONTENT_TYPE)]
        headers.extend(common_headers(request_id, client_request_id))
        headers.extend(self.headers)
        body = error_body(base_url, self.code, request_id, values=self.values)
        return Response(self.status, headers, body)
