"""Bootstrap tokens as ``bootstrap token`` manages them: parse, describe, create, list and delete.

A token is a ``kube-system/bootstrap-token-<id>`` Secret; its secret half is a credential and is
never part of a listing or a message here (only ``<id>.<redacted>``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from bootstrap.cluster import objects
from bootstrap.cluster.client import ApiError, KubeApi
from bootstrap.config.tokens import TOKEN_RE
from bootstrap.errors import PhaseError

T = TypeVar("T")

NAMESPACE = "kube-system"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
ID_RE = re.compile(r"^[a-z0-9]{6}$")
GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
USAGES = ("signing", "authentication")
DEFAULT_TTL = timedelta(hours=24)
DEFAULT_DESCRIPTION = "Created by 'bootstrap token create'."
# How long one command keeps retrying an API server that is restarting or briefly unreachable.
API_DEADLINE = 20.0


def token_problems(token: str | None, usages: Sequence[str], groups: Sequence[str]) -> list[str]:
    """What is wrong with a token request, each naming its flag (empty when it is fine)."""
    problems = []
    if token is not None and not TOKEN_RE.match(token):
        problems.append("TOKEN: must match [a-z0-9]{6}.[a-z0-9]{16} (see 'bootstrap token generate')")
    for usage in usages:
        if usage not in USAGES:
            problems.append(f"--usages: {usage!r} is not one of {', '.join(USAGES)}")
    for group in groups:
        if not GROUP_RE.match(group):
            problems.append(f"--groups: {group!r} must match {GROUP_RE.pattern}")
    if groups and "authentication" not in usages:
        problems.append('--groups: only a token with the "authentication" usage has groups')
    return problems


def token_id_of(value: str) -> str:
    """The id of ``<id>`` or ``<id>.<secret>``; ValueError (not quoting the value) otherwise."""
    match = TOKEN_RE.match(value)
    if match:
        return match.group(1)
    if ID_RE.match(value):
        return value
    raise ValueError("not a token id ([a-z0-9]{6}) nor a token ([a-z0-9]{6}.[a-z0-9]{16})")


@dataclass(frozen=True)
class TokenInfo:
    """What a listing shows of one token: everything but its secret half."""

    token_id: str
    expires: datetime | None
    usages: list[str]
    groups: list[str]
    description: str

    def ttl(self, now: datetime) -> str:
        if self.expires is None:
            return "<forever>"
        left = self.expires - now
        return "<expired>" if left <= timedelta(0) else short_duration(left)

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "token": f"{self.token_id}.<redacted>",
            "id": self.token_id,
            "ttl": self.ttl(now),
            "expires": None if self.expires is None else _timestamp(self.expires),
            "expired": self.expires is not None and self.expires <= now,
            "usages": self.usages,
            "groups": self.groups,
            "description": self.description,
        }


def short_duration(delta: timedelta) -> str:
    """``23h``, ``59m``, ``3d``: the largest whole unit, as kubectl and kubeadm show ages."""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def info_of(secret: dict[str, Any]) -> TokenInfo | None:
    """The listing row of a bootstrap token Secret (None when it is not a well-formed one)."""
    import base64

    if secret.get("type") != SECRET_TYPE:
        return None
    found = objects.token_of(secret)
    if found is None:
        return None
    token, expires = found
    data = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            data[key] = base64.b64decode(value).decode()
        except ValueError:
            continue
    usages = [u for u in USAGES if data.get(f"usage-bootstrap-{u}") == "true"]
    groups = [g for g in data.get("auth-extra-groups", "").split(",") if g]
    return TokenInfo(token.split(".", 1)[0], expires, usages, groups, data.get("description", ""))


class TokenApi:
    """The token operations against one API server (every call retried through brief outages)."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api

    def close(self) -> None:
        self.api.close()

    def _retry(self, func: Callable[[], T]) -> T:
        return self.api.call_with_retry(func, time.monotonic() + API_DEADLINE)

    def create(
        self,
        token: str,
        expires: datetime | None,
        usages: Sequence[str],
        groups: Sequence[str],
        description: str,
    ) -> None:
        secret = objects.token_secret(token, expires, list(usages), list(groups), description)
        # Not labelled as init's: `bootstrap init` must never adopt (and rewrite) a user's token.
        secret["metadata"].pop("labels", None)
        try:
            self._retry(lambda: self.api.create("Secret", NAMESPACE, secret))
        except ApiError as exc:
            if exc.status == 409:
                token_id = token.split(".", 1)[0]
                raise PhaseError(
                    f'a token with id "{token_id}" already exists '
                    f'(delete it with "bootstrap token delete {token_id}", or omit TOKEN for a new one)'
                ) from None
            raise

    def list(self) -> list[TokenInfo]:
        secrets = self._retry(lambda: self.api.list_objects("Secret", NAMESPACE))
        found = [info for info in (info_of(s) for s in secrets) if info is not None]
        return sorted(found, key=lambda t: t.token_id)

    def reusable(
        self, usages: Sequence[str], groups: Sequence[str], description: str, valid_until: datetime
    ) -> tuple[str, TokenInfo] | None:
        """A token made for the same purpose (exactly these usages, groups and description) that is
        still valid at ``valid_until``: the one that lasts longest, with its whole value."""
        secrets = self._retry(lambda: self.api.list_objects("Secret", NAMESPACE))
        candidates = []
        for secret in secrets:
            info = info_of(secret)
            found = objects.token_of(secret)
            if info is None or found is None:
                continue
            if (set(info.usages), set(info.groups), info.description) != (
                set(usages),
                set(groups),
                description,
            ):
                continue
            if info.expires is not None and info.expires < valid_until:
                continue
            candidates.append((found[0], info))
        # Never-expiring first, then the latest expiry; the id breaks ties so the choice is stable.
        candidates.sort(
            key=lambda c: (
                c[1].expires is not None,
                -(c[1].expires or valid_until).timestamp(),
                c[1].token_id,
            )
        )
        return candidates[0] if candidates else None

    def delete(self, token_id: str) -> bool:
        """Delete the token; False when there was none with that id."""
        return self._retry(lambda: self.api.delete("Secret", NAMESPACE, f"bootstrap-token-{token_id}"))

    def exists(self, token_id: str) -> bool:
        found = self._retry(lambda: self.api.read("Secret", NAMESPACE, f"bootstrap-token-{token_id}"))
        return found is not None and found.get("type") == SECRET_TYPE


def ca_hash_of(ca_pem: bytes) -> str:
    """kubeadm's discovery hash of the first certificate in ``ca_pem``."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert = x509.load_pem_x509_certificates(ca_pem)[0]
    return objects.ca_cert_hash(
        cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
