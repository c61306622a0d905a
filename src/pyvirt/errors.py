"""Errors: one root class, one subclass per kind of failure.

Every error a user may see derives from :class:`PyvirtError`; its message says what failed and on
what. Wrapping code raises ``... from err`` so the underlying cause is kept. The ``code`` names the
kind of failure on the wire between daemon and client, so the client can re-raise the same class.
"""

from __future__ import annotations


class PyvirtError(Exception):
    """Root of every pyvirt error."""

    code = "internal"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(PyvirtError):
    """A request or its parameters are malformed."""

    code = "invalid-argument"
    http_status = 400


class XMLError(InvalidArgument):
    """An XML document is malformed or names something unsupported."""

    code = "xml-error"


class UnsupportedConfig(InvalidArgument):
    """The configuration asks for something the driver cannot honour."""

    code = "unsupported-config"


class NotFound(PyvirtError):
    """A domain, network, pool or volume does not exist."""

    code = "not-found"
    http_status = 404


class AlreadyExists(PyvirtError):
    """An object with that name or UUID already exists."""

    code = "already-exists"
    http_status = 409


class InvalidState(PyvirtError):
    """The object is in the wrong state for the operation (e.g. starting a running domain)."""

    code = "invalid-state"
    http_status = 409


class OperationFailed(PyvirtError):
    """An operation on an engine (QEMU, the kernel, dnsmasq, libguestfs) failed."""

    code = "operation-failed"
    http_status = 500


class AccessDenied(PyvirtError):
    """The connection may not perform the operation (e.g. read-only)."""

    code = "access-denied"
    http_status = 403


class ConnectionFailed(PyvirtError):
    """The client could not reach the daemon."""

    code = "connection-failed"
    http_status = 503


class TimedOut(ConnectionFailed):
    """The daemon did not answer within the client's ``connect_timeout`` or ``read_timeout``."""


class ImageError(PyvirtError):
    """A disk image is malformed, unsupported, or an image operation failed."""

    code = "image-error"
    http_status = 400


ERRORS_BY_CODE: dict[str, type[PyvirtError]] = {
    cls.code: cls
    for cls in (
        PyvirtError,
        InvalidArgument,
        XMLError,
        UnsupportedConfig,
        NotFound,
        AlreadyExists,
        InvalidState,
        OperationFailed,
        AccessDenied,
        ConnectionFailed,
        ImageError,
    )
}


def error_from_wire(code: str, message: str) -> PyvirtError:
    """Rebuild the error the daemon reported."""
    return ERRORS_BY_CODE.get(code, PyvirtError)(message)
