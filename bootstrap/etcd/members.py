"""A small etcd v3 client for membership, over etcd's JSON gateway on the client port (stdlib only).

Every request is TLS-verified against the etcd CA and carries a client certificate (kubeadm uses
``etcd/ca.crt`` and ``etcd/healthcheck-client.{crt,key}``). Endpoints are tried in turn, but only when
one cannot be reached: an answer from etcd (an error included) is the cluster's answer and is final.

Errors keep etcd's own text (``etcdserver: unhealthy cluster``) and carry a typed :class:`Reason`, so
callers decide what to retry without matching strings.
"""

from __future__ import annotations

import enum
import http.client
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bootstrap.errors import PhaseError


class Reason(enum.Enum):
    """Why an etcd call failed: what a caller may retry on."""

    UNHEALTHY_CLUSTER = "etcdserver: unhealthy cluster"
    TOO_MANY_LEARNERS = "etcdserver: too many learner members in cluster"
    LEARNER_NOT_IN_SYNC = "etcdserver: can only promote a learner member which is in sync with leader"
    NOT_A_LEARNER = "etcdserver: can only promote a learner member"
    MEMBER_NOT_FOUND = "etcdserver: member not found"
    PEER_URL_EXISTS = "etcdserver: Peer URLs already exists"
    UNREACHABLE = "unreachable"  # no endpoint answered
    TIMEOUT = "timeout"  # a bounded wait (add, start, promote) ran out
    TLS = "tls"  # a certificate was refused (ours by etcd, or etcd's by us) or a TLS file is unusable
    OTHER = "other"

    @classmethod
    def of(cls, etcd_message: str) -> Reason:
        """The reason for one of etcd's error texts (OTHER for any text not listed)."""
        for reason in cls:
            if reason.value == etcd_message:
                return reason
        return cls.OTHER


class EtcdError(PhaseError):
    """An etcd call failed; ``reason`` says why, ``etcd_message`` is etcd's own text when it answered."""

    def __init__(self, message: str, reason: Reason, etcd_message: str | None = None) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever a peer sent
        self.reason = reason
        self.etcd_message = etcd_message


@dataclass(frozen=True)
class EtcdTLS:
    """The files a client presents to etcd: the CA that signed etcd's serving cert, and our client pair."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def healthcheck(cls, cert_dir: Path) -> EtcdTLS:
        """kubeadm's choice: the etcd CA and the healthcheck client cert under ``cert_dir`` (the pki dir)."""
        etcd = cert_dir / "etcd"
        return cls(etcd / "ca.crt", etcd / "healthcheck-client.crt", etcd / "healthcheck-client.key")


@dataclass(frozen=True)
class Member:
    """One etcd member as the member list shows it; an added member that never started has no name."""

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @property
    def started(self) -> bool:
        return self.name != ""

    @property
    def hex_id(self) -> str:
        """The id as etcdctl prints it (``etcdctl member remove <hex>``)."""
        return f"{self.id:x}"

    @classmethod
    def from_json(cls, doc: Any) -> Member:
        if not isinstance(doc, dict):
            raise EtcdError(f"etcd returned a member that is not an object: {doc!r}"[:200], Reason.OTHER)
        return cls(
            id=parse_id(doc.get("ID")),
            name=str(doc.get("name") or ""),
            peer_urls=tuple(str(u) for u in doc.get("peerURLs") or ()),
            client_urls=tuple(str(u) for u in doc.get("clientURLs") or ()),
            is_learner=bool(doc.get("isLearner", False)),
        )


@dataclass(frozen=True)
class Status:
    """``/v3/maintenance/status`` of one endpoint: who it is, who leads, and whether it is a learner."""

    member_id: int
    leader: int
    is_learner: bool
    raft_index: int
    version: str


def parse_id(value: object) -> int:
    """A member id: the gateway writes uint64 as a decimal string (a JSON number would lose digits)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    else:
        raise EtcdError(f"etcd returned a member id that is not a uint64: {value!r}"[:200], Reason.OTHER)
    if not 0 < number < 2**64:
        raise EtcdError(f"etcd returned a member id out of range: {number}", Reason.OTHER)
    return number


def _split_endpoint(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    if parts.scheme != "https" or not parts.hostname:
        raise EtcdError(f"etcd endpoint {endpoint!r}: expected https://<host>:<port>", Reason.OTHER)
    try:
        port = parts.port or 2379
    except ValueError:
        raise EtcdError(f"etcd endpoint {endpoint!r}: the port is not a number", Reason.OTHER) from None
    return parts.hostname, port


class EtcdClient:
    """Membership calls against ``endpoints`` (``https://host:port``), tried in order."""

    def __init__(self, endpoints: Sequence[str], tls: EtcdTLS, timeout: float = 5.0) -> None:
        if not endpoints:
            raise EtcdError("no etcd endpoint to talk to", Reason.UNREACHABLE)
        self.endpoints = list(endpoints)
        self.tls = tls
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None

    # ---- membership

    def members(self) -> list[Member]:
        return self._members(self._call("/v3/cluster/member/list", {}))

    def add_learner(self, peer_url: str) -> tuple[Member, list[Member]]:
        """Add ``peer_url`` as a learner: the new member (no name yet) and the member list after the add."""
        doc = self._call("/v3/cluster/member/add", {"peerURLs": [peer_url], "isLearner": True})
        return Member.from_json(doc.get("member")), self._members(doc)

    def promote(self, member_id: int) -> None:
        self._call("/v3/cluster/member/promote", {"ID": str(member_id)})

    def remove(self, member_id: int) -> None:
        self._call("/v3/cluster/member/remove", {"ID": str(member_id)})

    # ---- one endpoint

    def status(self, endpoint: str) -> Status:
        doc = self._call("/v3/maintenance/status", {}, endpoints=[endpoint])
        header = doc.get("header") or {}
        return Status(
            member_id=parse_id(header.get("member_id")),
            leader=int(str(doc.get("leader") or 0)),
            is_learner=bool(doc.get("isLearner", False)),
            raft_index=int(str(doc.get("raftIndex") or 0)),
            version=str(doc.get("version") or ""),
        )

    def healthy(self, endpoint: str) -> bool:
        """``GET /health`` on ``endpoint`` says true (it has a leader and serves reads); never raises."""
        try:
            doc = self._call("/health", None, endpoints=[endpoint])
        except EtcdError:
            return False
        return bool(doc.get("health") == "true")

    # ---- transport

    def _members(self, doc: dict[str, Any]) -> list[Member]:
        return [Member.from_json(m) for m in doc.get("members") or ()]

    def context(self) -> ssl.SSLContext:
        if self._context is None:
            try:
                context = ssl.create_default_context(cafile=str(self.tls.ca))
                context.load_cert_chain(str(self.tls.cert), str(self.tls.key))
            except (OSError, ssl.SSLError) as exc:
                raise EtcdError(
                    f"cannot load the etcd client TLS files (CA {self.tls.ca}, cert {self.tls.cert}, "
                    f"key {self.tls.key}): {exc}",
                    Reason.TLS,
                ) from exc
            self._context = context
        return self._context

    def _call(self, path: str, body: dict[str, Any] | None, endpoints: Sequence[str] | None = None) -> Any:
        """POST ``body`` (GET when None) to the first endpoint that answers; etcd's error is raised."""
        failures: list[tuple[str, BaseException]] = []
        for endpoint in endpoints or self.endpoints:
            try:
                status, raw = self._exchange(endpoint, path, body)
            except (OSError, http.client.HTTPException) as exc:  # ssl.SSLError is an OSError
                failures.append((endpoint, exc))
                continue
            return self._answer(endpoint, path, status, raw)
        raise self._unreachable(path, failures)

    def _exchange(self, endpoint: str, path: str, body: dict[str, Any] | None) -> tuple[int, bytes]:
        host, port = _split_endpoint(endpoint)
        connection = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self.context())
        try:
            if body is None:
                connection.request("GET", path)
            else:
                payload = json.dumps(body).encode()
                connection.request("POST", path, payload, {"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def _answer(self, endpoint: str, path: str, status: int, raw: bytes) -> Any:
        try:
            doc = json.loads(raw) if raw.strip() else {}
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            text = raw[:200].decode(errors="replace")
            raise EtcdError(f"etcd at {endpoint} answered {path} with HTTP {status}: {text}", Reason.OTHER)
        error = doc.get("error") or (doc.get("message") if status >= 400 else None)
        if error:
            message = str(error)
            raise EtcdError(f"etcd at {endpoint}: {message}", Reason.of(message), message)
        if status >= 400 and path != "/health":  # /health answers 503 with a body that says why
            raise EtcdError(f"etcd at {endpoint} answered {path} with HTTP {status}", Reason.OTHER)
        return doc

    def _unreachable(self, path: str, failures: list[tuple[str, BaseException]]) -> EtcdError:
        tls = [(e, exc) for e, exc in failures if isinstance(exc, ssl.SSLError)]
        if tls:
            endpoint, exc = tls[0]
            return EtcdError(
                f"etcd at {endpoint}: TLS failed ({_ssl_text(exc)}); etcd's serving cert must be signed by "
                f"{self.tls.ca} and carry the endpoint's address, and etcd must trust {self.tls.cert}",
                Reason.TLS,
            )
        tried = "; ".join(f"{e}: {_os_text(exc)}" for e, exc in failures)
        return EtcdError(f"no etcd endpoint answered {path} ({tried})", Reason.UNREACHABLE)


def _ssl_text(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return str(exc)


def _os_text(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
