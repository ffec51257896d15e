"""The kube-controller-manager controllers the join flow depends on, played by the API server stand-in.

kubeadm runs the controller-manager with ``--controllers=*,bootstrapsigner,tokencleaner``; the stand-in
has no controller-manager, so its API server runs these on its store, on one background thread:

* **bootstrapsigner**: keeps a ``jws-kubeconfig-<token-id>`` key in ``kube-public/cluster-info`` for
  every valid bootstrap token with ``usage-bootstrap-signing``, and removes the others. A token's
  signature appears ``signer_delay`` seconds after the signer first sees the token, as the real
  controller lags (joins must wait for it).
* **tokencleaner**: deletes expired bootstrap-token Secrets.
* **garbage collector** (the part used here): deletes an object once every owner it names is gone.
* **csrapproving**: approves kubelet client CSRs (``kubernetes.io/kube-apiserver-client-kubelet``)
  whose requester may create ``certificatesigningrequests/nodeclient`` (or ``selfnodeclient`` for its
  own node name), after the same checks of the request's content.
* **csrsigning**: signs approved CSRs of the kube-apiserver client signers with the cluster CA (the
  controller-manager's ``--cluster-signing-cert-file``/``--cluster-signing-key-file``).

Several API servers on one etcd (:mod:`tests.standin.etcd_store`, an HA control plane) each run these
controllers, with no leader election: a conflict is retried on the next pass. Every write they make
is guarded (an update carries the resourceVersion it was computed from; a delete of what is already
gone is a 404), so when two instances race one write lands and the other gets a 409 or 404, which
:meth:`Controllers.reconcile` drops, and the next pass starts again from the stored state. What they
write converges whoever wins: the JWS is a function of the token and the content, an approval reads
the same, and a CSR keeps the first certificate stored. The alternative, a Lease in etcd as
kube-controller-manager uses, adds a renew loop and, when the leader's node dies (the HA tests kill
nodes), a lease duration during which no CSR is signed and no token signed for: a join would wait
for the takeover instead of going on with the surviving servers.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.standin.authorizer import CSR_GROUP, allowed
from tests.standin.store import ApiError, Obj, Resource, Store, resource_by_name

TOKEN_TYPE = "bootstrap.kubernetes.io/token"
TOKEN_PREFIX = "bootstrap-token-"
JWS_PREFIX = "jws-kubeconfig-"
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
SIGNERS = (KUBELET_CLIENT_SIGNER, CLIENT_SIGNER)
KUBELET_CLIENT_USAGES = {"digital signature", "key encipherment", "client auth"}
DEFAULT_CERT_DURATION = datetime.timedelta(days=365)
MIN_CERT_DURATION = datetime.timedelta(minutes=10)
BACKDATE = datetime.timedelta(minutes=5)


def _res(group: str, name: str) -> Resource:
    res = resource_by_name(group, "v1", name)
    assert res is not None, name
    return res


def detached_jws(content: str, token_id: str, token_secret: str) -> str:
    """HS256 JWS of ``content`` with the payload left out of the serialisation (RFC 7515 App. F)."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    mac = hmac.new(token_secret.encode(), f"{header}.{b64(content.encode())}".encode(), hashlib.sha256)
    return f"{header}..{b64(mac.digest())}"


def token_data(secret: Obj) -> dict[str, str]:
    """A Secret's data, decoded (``stringData`` too, as a client may send it)."""
    data: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            data[key] = base64.b64decode(value).decode()
        except (binascii.Error, ValueError):
            continue
    data.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return data


def expired(data: dict[str, str], now: datetime.datetime) -> bool:
    """A token whose ``expiration`` is in the past (an unparsable one counts as expired, as in the
    real authenticator, which refuses what it cannot read)."""
    text = data.get("expiration")
    if not text:
        return False
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return True
    if when.tzinfo is None:
        return True
    return when <= now


def valid_token(secret: Obj | None, token_id: str, now: datetime.datetime) -> dict[str, str] | None:
    """The decoded data of a bootstrap-token Secret that may be used now; None otherwise."""
    if secret is None or secret.get("type") != TOKEN_TYPE:
        return None
    meta = secret.get("metadata") or {}
    if meta.get("deletionTimestamp") or meta.get("name") != f"{TOKEN_PREFIX}{token_id}":
        return None
    data = token_data(secret)
    if data.get("token-id") != token_id or not data.get("token-secret") or expired(data, now):
        return None
    return data


class Controllers:
    """The controllers above, reconciling ``store`` every ``interval`` seconds while started."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime.datetime],
        *,
        signer_delay: float = 0.5,
        signing_cert: Path | None = None,
        signing_key: Path | None = None,
        interval: float = 0.05,
    ) -> None:
        self.store = store
        self.now = now
        self.signer_delay = signer_delay
        self.signing_cert, self.signing_key = signing_cert, signing_key
        self.interval = interval
        self._first_seen: dict[str, float] = {}  # token id -> when the signer first saw it valid
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []  # what a reconcile could not do (kept for test diagnostics)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="standin-controllers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.reconcile()

    def reconcile(self) -> None:
        """One pass of every controller; a conflict with a client's write is retried on the next pass."""
        for step in (
            self.clean_tokens,
            self.collect_garbage,
            self.sign_cluster_info,
            self.approve_csrs,
            self.sign_csrs,
        ):
            try:
                step()
            except ApiError as exc:
                if exc.code not in (404, 409):
                    self.errors.append(f"{step.__name__}: {exc.message}")

    # -- tokencleaner -------------------------------------------------------------------------------
    def clean_tokens(self) -> None:
        secrets = _res("", "secrets")
        now = self.now()
        for secret in self.store.list(secrets, "kube-system", lambda o: o.get("type") == TOKEN_TYPE)[0]:
            if expired(token_data(secret), now):
                self.store.delete(secrets, "kube-system", secret["metadata"]["name"])

    # -- garbage collector --------------------------------------------------------------------------
    def collect_garbage(self) -> None:
        """Only dependents of Secrets (kubeadm-certs, owned by a short-lived token): the mirror pods
        the kubelet stand-in may create before its Node are left to it, as the real GC would not
        race a kubelet that registers its Node first."""
        with self.store.lock:
            objects = list(self.store.objects.items())
        uids = {obj["metadata"].get("uid") for _, obj in objects}
        for (res, namespace, name), obj in objects:
            owners = obj["metadata"].get("ownerReferences") or []
            if not owners or any(o.get("kind") != "Secret" for o in owners):
                continue
            if not any(o.get("uid") in uids for o in owners):
                self.store.delete(res, namespace, name)

    # -- bootstrapsigner ----------------------------------------------------------------------------
    def _signing_tokens(self) -> dict[str, str]:
        """token id -> secret of every token the signer signs with now."""
        now, tick = self.now(), time.monotonic()
        tokens: dict[str, str] = {}
        for secret in self.store.list(_res("", "secrets"), "kube-system")[0]:
            name = secret["metadata"]["name"]
            token_id = name[len(TOKEN_PREFIX) :] if name.startswith(TOKEN_PREFIX) else ""
            data = valid_token(secret, token_id, now)
            if data is None or data.get("usage-bootstrap-signing") != "true":
                continue
            first = self._first_seen.setdefault(token_id, tick)
            if tick - first >= self.signer_delay:
                tokens[token_id] = data["token-secret"]
        return tokens

    def sign_cluster_info(self) -> None:
        configmaps = _res("", "configmaps")
        info = self.store.get_or_none(configmaps, "kube-public", "cluster-info")
        tokens = self._signing_tokens()
        if info is None:
            return
        data: dict[str, str] = dict(info.get("data") or {})
        content = data.get("kubeconfig")
        if content is None:
            return
        wanted = {f"{JWS_PREFIX}{tid}": detached_jws(content, tid, secret) for tid, secret in tokens.items()}
        new = {k: v for k, v in data.items() if not k.startswith(JWS_PREFIX)} | wanted
        if new != data:
            info["data"] = new
            self.store.update(configmaps, "kube-public", "cluster-info", info)  # conflict: next pass

    # -- csrapproving -------------------------------------------------------------------------------
    def approve_csrs(self) -> None:
        csrs = _res(CSR_GROUP, "certificatesigningrequests")
        for csr in self.store.list(csrs, None)[0]:
            if _conditions(csr) or csr["spec"].get("signerName") != KUBELET_CLIENT_SIGNER:
                continue
            request = _parse_request(csr)
            if request is None or not _is_kubelet_client_request(request, csr["spec"].get("usages") or []):
                continue
            if not self._requester_may_ask(csr, request):
                continue
            status = dict(csr.get("status") or {})
            status["conditions"] = [
                {
                    "type": "Approved",
                    "status": "True",
                    "reason": "AutoApproved",
                    "message": "Auto approving kubelet client certificate after SubjectAccessReview.",
                    "lastUpdateTime": _stamp(self.now()),
                    "lastTransitionTime": _stamp(self.now()),
                }
            ]
            csr["status"] = status
            self.store.update(csrs, "", csr["metadata"]["name"], csr, subresource="status")

    def _requester_may_ask(self, csr: Obj, request: x509.CertificateSigningRequest) -> bool:
        spec = csr["spec"]
        user, groups = str(spec.get("username", "")), list(spec.get("groups") or [])
        if "system:masters" in groups:
            return True
        common_name = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        sub = "selfnodeclient" if user == common_name else "nodeclient"
        return allowed(
            self.store, user, groups, "create", CSR_GROUP, f"certificatesigningrequests/{sub}", None, ""
        )

    # -- csrsigning ---------------------------------------------------------------------------------
    def sign_csrs(self) -> None:
        csrs = _res(CSR_GROUP, "certificatesigningrequests")
        for csr in self.store.list(csrs, None)[0]:
            kinds = {c.get("type") for c in _conditions(csr) if c.get("status") == "True"}
            status = csr.get("status") or {}
            if "Approved" not in kinds or kinds & {"Denied", "Failed"} or status.get("certificate"):
                continue
            if csr["spec"].get("signerName") not in SIGNERS or self.signing_key is None:
                continue
            request = _parse_request(csr)
            if request is None:
                continue
            certificate = self._sign(request, csr["spec"])
            csr["status"] = {**status, "certificate": base64.b64encode(certificate).decode()}
            self.store.update(csrs, "", csr["metadata"]["name"], csr, subresource="status")

    def _sign(self, request: x509.CertificateSigningRequest, spec: Obj) -> bytes:
        assert self.signing_cert is not None and self.signing_key is not None
        ca = x509.load_pem_x509_certificate(self.signing_cert.read_bytes())
        key = serialization.load_pem_private_key(self.signing_key.read_bytes(), password=None)
        assert isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
        now = self.now()
        duration = DEFAULT_CERT_DURATION
        if spec.get("expirationSeconds"):
            duration = max(MIN_CERT_DURATION, datetime.timedelta(seconds=int(spec["expirationSeconds"])))
        not_after = min(now + duration, ca.not_valid_after_utc)
        usages = set(spec.get("usages") or [])
        builder = (
            x509.CertificateBuilder()
            .subject_name(request.subject)
            .issuer_name(ca.subject)
            .public_key(request.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature="digital signature" in usages,
                    key_encipherment="key encipherment" in usages,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _stamp(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(csr: Obj) -> list[Obj]:
    return list((csr.get("status") or {}).get("conditions") or [])


def _parse_request(csr: Obj) -> x509.CertificateSigningRequest | None:
    try:
        return x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
    except (KeyError, ValueError, TypeError):
        return None


def _is_kubelet_client_request(request: x509.CertificateSigningRequest, usages: list[Any]) -> bool:
    """What the approver checks of a kubelet client CSR: ``O=system:nodes``, ``CN=system:node:<name>``,
    no subject alternative names, client-auth usage and nothing beyond the allowed usages."""
    organizations = [a.value for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    names = [a.value for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if organizations != ["system:nodes"] or len(names) != 1 or not str(names[0]).startswith("system:node:"):
        return False
    try:
        request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return False
    except x509.ExtensionNotFound:
        pass
    return "client auth" in usages and set(usages) <= KUBELET_CLIENT_USAGES


__all__ = ["Controllers", "detached_jws", "valid_token"]
