"""The kubelet stand-in's TLS bootstrap: from ``bootstrap-kubelet.conf`` to its own client certificate.

What the real kubelet does when ``/etc/kubernetes/kubelet.conf`` is missing and a bootstrap kubeconfig
exists (pkg/kubelet/certificate/bootstrap, client-go's csr helpers), and so what this does:

* makes an ECDSA P-256 key and a CSR for ``CN=system:node:<node>``, ``O=system:nodes``, signer
  ``kubernetes.io/kube-apiserver-client-kubelet``, usages ``digital signature`` and ``client auth``
  (no ``key encipherment``: that is for RSA keys), and creates it with the bootstrap kubeconfig's
  credentials (the bootstrap token);
* polls the CSR until it carries a certificate (the stand-in controllers approve and sign it), and
  gives up on a denied or failed one;
* writes ``/var/lib/kubelet/pki/kubelet-client-<YYYY-MM-DD-HH-MM-SS>.pem`` (certificate then key,
  mode 0600) and points ``kubelet-client-current.pem`` at it, then writes ``kubelet.conf`` with the
  bootstrap kubeconfig's cluster (same server, same CA) and that file as client certificate and key.

A kubelet started with a ``kubelet.conf`` that embeds its client certificate and key (the init node's,
written by ``kubeconfig/kubelet``) stores them the same way on its first start, as the real kubelet's
certificate manager does before it rotates them (:func:`store_embedded_credentials`); kubeadm's
kubelet-finalize then points ``kubelet.conf`` at that file.

Under a rootfs: the real kubelet's ``kubelet-client-current.pem`` link is absolute
(``/var/lib/kubelet/pki/kubelet-client-<ts>.pem``). The stand-in writes the same absolute target, as
the node sees it, and every reader here resolves it inside the rootfs, as a ``chroot`` would
(:func:`resolve_in_rootfs`). On the host, outside the rootfs, the link dangles: read it through
:func:`resolve_in_rootfs`, never by opening the link directly.

The key stays in memory while the CSR is pending (the real kubelet keeps it in a ``.tmp`` file so a
restart can reuse its CSR): a stand-in restarted mid-bootstrap just makes a new CSR.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BOOTSTRAP_KUBECONFIG = "/etc/kubernetes/bootstrap-kubelet.conf"
KUBELET_KUBECONFIG = "/etc/kubernetes/kubelet.conf"
PKI_DIR = "/var/lib/kubelet/pki"
CURRENT_CLIENT_PEM = f"{PKI_DIR}/kubelet-client-current.pem"
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
USAGES = ["digital signature", "client auth"]
FILE_KEYS = ("certificate-authority", "client-certificate", "client-key")
MAX_LINKS = 40  # as the kernel's limit on symlinks followed in one lookup


class BootstrapFailed(RuntimeError):
    """The bootstrap cannot go on with what it has (token refused, CSR denied, bad kubeconfig)."""


def under(rootfs: Path, host_path: str) -> Path:
    """``host_path`` (absolute, as the node sees it) under ``rootfs``, without following links."""
    return rootfs / host_path.lstrip("/")


def resolve_in_rootfs(rootfs: Path, host_path: str) -> Path:
    """``host_path`` under ``rootfs`` with a symlink in its last component followed inside the rootfs:
    an absolute target is taken as the node's path, a relative one from the link's directory."""
    path = host_path
    for _ in range(MAX_LINKS):
        candidate = under(rootfs, path)
        if not candidate.is_symlink():
            return candidate
        target = os.readlink(candidate)
        path = target if target.startswith("/") else os.path.join(os.path.dirname(path), target)
    raise OSError(f"{host_path}: too many levels of symbolic links under {rootfs}")


def map_file_refs(data: dict[str, Any], rootfs: Path) -> None:
    """Rewrite a kubeconfig's absolute file references (node paths) to host paths inside ``rootfs``."""
    items = [c.get("cluster") or {} for c in data.get("clusters") or []]
    items += [u.get("user") or {} for u in data.get("users") or []]
    for item in items:
        for key in FILE_KEYS:
            if isinstance(item.get(key), str) and item[key].startswith("/"):
                item[key] = str(resolve_in_rootfs(rootfs, item[key]))


def _current(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The current context's cluster and user entries of a kubeconfig."""
    name = data.get("current-context")
    ctx = next((c.get("context") or {} for c in data.get("contexts") or [] if c.get("name") == name), None)
    if ctx is None:
        raise BootstrapFailed(f"{BOOTSTRAP_KUBECONFIG}: no context named {name!r}")
    clusters, users = data.get("clusters") or [], data.get("users") or []
    cluster = next((c.get("cluster") for c in clusters if c.get("name") == ctx.get("cluster")), None)
    user = next((u.get("user") for u in users if u.get("name") == ctx.get("user")), None)
    if not cluster or user is None:
        raise BootstrapFailed(f"{BOOTSTRAP_KUBECONFIG}: context {name!r} lacks its cluster or user")
    return dict(cluster), dict(user)


def _link_current(rootfs: Path, pem_name: str) -> None:
    """Point ``kubelet-client-current.pem`` at ``pem_name`` (the node's absolute path), swapped in by
    a rename so a reader never sees it missing."""
    link = under(rootfs, CURRENT_CLIENT_PEM)
    tmp_link = link.with_name(f".{link.name}.tmp")
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(f"{PKI_DIR}/{pem_name}")
    os.replace(tmp_link, link)


def store_embedded_credentials(rootfs: Path) -> bool:
    """Write ``kubelet.conf``'s embedded client certificate and key to a dated pem and link
    ``kubelet-client-current.pem`` to it, unless that link exists; True when it wrote them."""
    if under(rootfs, CURRENT_CLIENT_PEM).is_symlink() or under(rootfs, CURRENT_CLIENT_PEM).exists():
        return False
    try:
        data = yaml.safe_load(under(rootfs, KUBELET_KUBECONFIG).read_text()) or {}
        _, user = _current(data)
    except (OSError, yaml.YAMLError, BootstrapFailed, AttributeError):
        return False
    cert, key = user.get("client-certificate-data"), user.get("client-key-data")
    if not cert or not key:
        return False
    pki = under(rootfs, PKI_DIR)
    pki.mkdir(parents=True, exist_ok=True, mode=0o755)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d-%H-%M-%S")
    pem_name = f"kubelet-client-{stamp}.pem"
    pem = base64.b64decode(cert).rstrip(b"\n") + b"\n" + base64.b64decode(key)
    _write_private(pki / pem_name, pem)
    _link_current(rootfs, pem_name)
    return True


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the first byte, atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _said(exc: Any) -> str:
    """The message of an API error's Status body, on one line."""
    try:
        return " ".join(str(json.loads(exc.body).get("message", "")).split())
    except (TypeError, ValueError, AttributeError):
        return ""


class TlsBootstrap:
    """One kubelet's bootstrap, advanced a step per sync by :meth:`step` so the kubelet never blocks."""

    def __init__(self, rootfs: Path, node_name: str) -> None:
        self.rootfs = rootfs
        self.node_name = node_name
        self.csr_name: str | None = None
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._client: Any = None
        self._cluster: dict[str, Any] = {}

    @property
    def bootstrap_kubeconfig(self) -> Path:
        return under(self.rootfs, BOOTSTRAP_KUBECONFIG)

    def step(self) -> bool:
        """Create the CSR, or look at it; True once ``kubelet.conf`` is written. Raises
        :class:`BootstrapFailed` (and starts over on the next call) when it cannot go on."""
        from kubernetes.client.exceptions import ApiException

        try:
            if self.csr_name is None:
                self._create_csr()
                return False
            certificate = self._signed_certificate()
        except ApiException as exc:
            self.reset()
            if exc.status == 401:
                raise BootstrapFailed(
                    f"the API server refused the bootstrap token in {BOOTSTRAP_KUBECONFIG} "
                    "(401 Unauthorized): the token is unknown, expired or deleted"
                ) from None
            said = f"{exc.status} {exc.reason}: {_said(exc)}"
            raise BootstrapFailed(f"the CSR request failed: {said}") from None
        except BootstrapFailed:
            self.reset()
            raise
        if certificate is None:
            return False
        self._write_credentials(certificate)
        self.reset()
        return True

    def reset(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self._key = None
        self.csr_name = None

    def _api(self) -> Any:
        from kubernetes import client, config

        if self._client is None:
            try:
                data = yaml.safe_load(self.bootstrap_kubeconfig.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise BootstrapFailed(f"{BOOTSTRAP_KUBECONFIG}: {exc}") from None
            self._cluster, _ = _current(data)
            map_file_refs(data, self.rootfs)
            cfg = client.Configuration()
            cfg.retries = False  # the kubelet's sync loop is the retry
            self._client = config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
                data, client_configuration=cfg, persist_config=False
            )
        return client.CertificatesV1Api(self._client)

    def _create_csr(self) -> None:
        from kubernetes import client

        api = self._api()
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{self.node_name}"),
            ]
        )
        request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        pem = request.public_bytes(serialization.Encoding.PEM)
        # Named from the request, like the real kubelet's node-csr-<digest>: one name per key
        # (hex, so it is also a valid lower-case DNS subdomain).
        name = "node-csr-" + hashlib.sha256(pem).hexdigest()[:32]
        body = client.V1CertificateSigningRequest(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1CertificateSigningRequestSpec(
                request=base64.b64encode(pem).decode(), signer_name=KUBELET_CLIENT_SIGNER, usages=USAGES
            ),
        )
        api.create_certificate_signing_request(body)
        self._key, self.csr_name = key, name

    def _signed_certificate(self) -> bytes | None:
        assert self.csr_name is not None
        csr = self._api().read_certificate_signing_request(self.csr_name)
        status = csr.status
        for cond in (status.conditions if status else None) or []:
            if cond.type in ("Denied", "Failed") and cond.status == "True":
                said = f"{cond.type.lower()}: {cond.reason}: {cond.message}"
                raise BootstrapFailed(f"CSR {self.csr_name} {said}")
        if status is None or not status.certificate:
            return None
        return base64.b64decode(status.certificate)

    def _write_credentials(self, certificate: bytes) -> None:
        assert self._key is not None
        key_pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        pki = under(self.rootfs, PKI_DIR)
        pki.mkdir(parents=True, exist_ok=True, mode=0o755)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d-%H-%M-%S")
        pem_name = f"kubelet-client-{stamp}.pem"
        _write_private(pki / pem_name, certificate.rstrip(b"\n") + b"\n" + key_pem)
        _link_current(self.rootfs, pem_name)
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "default-cluster", "cluster": self._cluster}],
            "contexts": [
                {"name": "default-context", "context": {"cluster": "default-cluster", "user": "default-auth"}}
            ],
            "current-context": "default-context",
            "users": [
                {
                    "name": "default-auth",
                    "user": {"client-certificate": CURRENT_CLIENT_PEM, "client-key": CURRENT_CLIENT_PEM},
                }
            ],
        }
        _write_private(under(self.rootfs, KUBELET_KUBECONFIG), yaml.safe_dump(kubeconfig).encode())


__all__ = [
    "BootstrapFailed",
    "TlsBootstrap",
    "map_file_refs",
    "resolve_in_rootfs",
    "store_embedded_credentials",
    "under",
]
