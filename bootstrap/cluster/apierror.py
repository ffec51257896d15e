"""Typed failures of the Kubernetes API and of the health endpoints: what went wrong, and whether
waiting can fix it.

A wait retries only what can heal (the server is not up yet, it timed out, it answered 5xx or 429);
everything else -- the client library missing, a broken kubeconfig, a certificate that does not
verify, credentials the server rejects -- ends the run at once with its own message. Callers decide on
:attr:`ApiError.reason`, never on message text.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from bootstrap.errors import PhaseError

if TYPE_CHECKING:  # ssl costs a fresh node's `phase manifests` (nothing listening yet) 4% of its run
    import ssl


class Reason(Enum):
    """Why an API call failed."""

    # Transient: the server may come up, recover or stop throttling; retried with backoff.
    UNREACHABLE = "unreachable"  # connection refused or reset, name not resolved yet
    TIMEOUT = "timeout"
    SERVER_ERROR = "server-error"  # HTTP 5xx
    THROTTLED = "throttled"  # HTTP 429
    # 410: the watch's resourceVersion is too old; list again (not a retry of the same call).
    GONE = "gone"
    # Permanent: no amount of waiting fixes these.
    CLIENT_MISSING = "client-missing"  # the Kubernetes client library cannot be imported
    KUBECONFIG = "kubeconfig"  # the kubeconfig is missing, unreadable or not valid
    TLS = "tls"  # the server's certificate does not verify against the kubeconfig's CA
    UNAUTHORIZED = "unauthorized"  # HTTP 401: the server rejects our credentials
    FORBIDDEN = "forbidden"  # HTTP 403 (after the admin.conf binding escalation, see kubeapi)
    REJECTED = "rejected"  # any other 4xx (404, 409, 422, ...): the caller decides

    @property
    def transient(self) -> bool:
        return self in _TRANSIENT


_TRANSIENT = frozenset({Reason.UNREACHABLE, Reason.TIMEOUT, Reason.SERVER_ERROR, Reason.THROTTLED})


def reason_for_status(status: int) -> Reason:
    """The reason an HTTP status stands for (0: the server was not reached)."""
    if status == 0:
        return Reason.UNREACHABLE
    if status >= 500:
        return Reason.SERVER_ERROR
    return {
        401: Reason.UNAUTHORIZED,
        403: Reason.FORBIDDEN,
        410: Reason.GONE,
        429: Reason.THROTTLED,
    }.get(status, Reason.REJECTED)


class ApiError(PhaseError):
    """An API call (or a health check of the API server) failed.

    ``status`` is the HTTP status (0 when there was no HTTP answer); ``reason`` says why, and so
    whether to retry.
    """

    def __init__(self, message: str, status: int = 0, reason: Reason | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason if reason is not None else reason_for_status(status)

    @property
    def transient(self) -> bool:
        return self.reason.transient


class Gone(ApiError):
    """The resourceVersion is too old (410): list again."""

    def __init__(self, message: str, status: int = 410) -> None:
        super().__init__(message, status, Reason.GONE)


def kubeconfig_error(path: object, problem: str) -> ApiError:
    """``path`` cannot be used as a kubeconfig; ``problem`` must never quote the file's content."""
    return ApiError(f"{path}: not a valid kubeconfig ({problem})", reason=Reason.KUBECONFIG)


# OpenSSL verify codes (X509_V_ERR_*) and what they mean for someone who set up the PKI.
_VERIFY_MEANINGS = {
    9: "the server's certificate is not valid yet",
    10: "the server's certificate has expired",
    18: "the server's certificate is self-signed",
    19: "certificate signed by an unknown authority",
    20: "certificate signed by an unknown authority",
    21: "certificate signed by an unknown authority",
}
_HOSTNAME_MISMATCH = 62


def tls_failure(url: str, error: ssl.SSLCertVerificationError, trusted: str) -> ApiError:
    """The server at ``url`` presented a certificate that ``trusted`` (which CA, from which file) does
    not accept: a wrong CA or a stale serving certificate never fixes itself."""
    code = error.verify_code
    if code == _HOSTNAME_MISMATCH:
        meaning = "the server's certificate is not valid for this address"
    else:
        meaning = _VERIFY_MEANINGS.get(code) or str(error.verify_message or error.reason or error)
    return ApiError(f"TLS verification of {url} failed: {meaning} ({trusted})", reason=Reason.TLS)
