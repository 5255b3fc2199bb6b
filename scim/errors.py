"""SCIM errors: one class per RFC 7644 §3.12 `scimType`, each with its HTTP status.

The gateway turns any `ScimError` into the §3.12 JSON body; nothing else here knows HTTP.
"""

from __future__ import annotations

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(Exception):
    """Base of every protocol error. `status` is the HTTP status, `scim_type` the keyword."""

    status: int = 400
    scim_type: str | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def to_json(self) -> dict[str, object]:
        # RFC 7644 §3.12: "status" is a string; "scimType" only for 400/409/413-class keywords.
        body: dict[str, object] = {"schemas": [ERROR_SCHEMA], "status": str(self.status)}
        if self.scim_type:
            body["scimType"] = self.scim_type
        body["detail"] = self.detail
        return body


class InvalidFilterError(ScimError):
    scim_type = "invalidFilter"


class TooManyError(ScimError):
    scim_type = "tooMany"


class UniquenessError(ScimError):
    status = 409
    scim_type = "uniqueness"


class MutabilityError(ScimError):
    scim_type = "mutability"


class InvalidSyntaxError(ScimError):
    scim_type = "invalidSyntax"


class InvalidPathError(ScimError):
    scim_type = "invalidPath"


class NoTargetError(ScimError):
    scim_type = "noTarget"


class InvalidValueError(ScimError):
    scim_type = "invalidValue"


class InvalidVersionError(ScimError):
    scim_type = "invalidVers"


class SensitiveError(ScimError):
    status = 403
    scim_type = "sensitive"


class UnauthorizedError(ScimError):
    status = 401


class ForbiddenError(ScimError):
    status = 403


class NotFoundError(ScimError):
    status = 404


class MethodNotAllowedError(ScimError):
    status = 405


class ConflictError(ScimError):
    status = 409


class PreconditionFailedError(ScimError):
    status = 412


class PayloadTooLargeError(ScimError):
    status = 413


class UnsupportedMediaTypeError(ScimError):
    status = 415


class NotImplementedScimError(ScimError):
    status = 501
