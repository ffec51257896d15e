"""What a joining node asks the cluster, with the bootstrap token, once discovery has established trust.

kubeadm's init grants the bootstrap-token group read access to exactly these objects (see
:func:`bootstrap.cluster.objects.bootstrap_token_rbac` and the ``kubeadm:kubeadm-certs`` Role): the
``kubeadm-config`` and ``kubelet-config`` ConfigMaps, ``nodes/<name>`` and the ``kubeadm-certs``
Secret. Every answer the user can act on becomes one line naming the fix.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bootstrap.cluster.apierror import ApiError, Reason
from bootstrap.cluster.client import Credentials, KubeApi
from bootstrap.cluster.discovery import NEW_TOKEN_HINT
from bootstrap.errors import PhaseError

NAMESPACE = "kube-system"
KUBEADM_CONFIG = "kubeadm-config"
KUBELET_CONFIG_MAP = "kubelet-config"
CERTS_SECRET = "kubeadm-certs"
UPLOAD_CERTS_COMMAND = "bootstrap init phase upload-certs --upload-certs"
# The names kubeadm's TLS-bootstrap kubeconfig uses (the kubelet reads only the current context).
BOOTSTRAP_CLUSTER = "kubernetes"
BOOTSTRAP_USER = "tls-bootstrap-token-user"


@dataclass(frozen=True)
class ClusterSettings:
    """What the cluster says about itself: its ClusterConfiguration and its kubelet configuration."""

    cluster_configuration: str  # YAML, as uploaded by init's upload-config phase
    kubelet_configuration: dict[str, Any]


def token_credentials(server: str, ca_pem: bytes, token: str) -> Credentials:
    """The identity of the bootstrap token at ``server``, held in memory only."""
    from cryptography import x509

    return Credentials(
        path=Path("the bootstrap token"),
        server=server,
        ca_pem=ca_pem,
        ca_subject=x509.load_pem_x509_certificate(ca_pem).subject.rfc4514_string(),
        client_cert_pem=None,
        client_key_pem=None,
        token=token,
    )


def _token_call(what: str, server: str, call: Any) -> Any:
    """``call()``, with a refused token turned into the line the user needs."""
    try:
        return call()
    except ApiError as exc:
        if exc.reason is Reason.UNAUTHORIZED:
            raise PhaseError(
                f"{server} refuses the bootstrap token while reading {what}: it is unknown or has expired; "
                f"{NEW_TOKEN_HINT}"
            ) from None
        if exc.reason is Reason.FORBIDDEN:
            raise PhaseError(
                f"the bootstrap token may not read {what} ({exc}): was the cluster made by bootstrap init, "
                "and is the token in the group system:bootstrappers:kubeadm:default-node-token?"
            ) from None
        raise PhaseError(f"cannot read {what} from {server}: {exc}") from None


def read_cluster_settings(api: KubeApi) -> ClusterSettings:
    """The ClusterConfiguration and KubeletConfiguration init uploaded (kubeadm reads both with the token)."""
    server = api.credentials.server
    kubeadm = _token_call(
        f"ConfigMap {NAMESPACE}/{KUBEADM_CONFIG}",
        server,
        lambda: api.read("ConfigMap", NAMESPACE, KUBEADM_CONFIG),
    )
    text = ((kubeadm or {}).get("data") or {}).get("ClusterConfiguration")
    if not isinstance(text, str):
        raise PhaseError(
            f"{server} has no ClusterConfiguration in ConfigMap {NAMESPACE}/{KUBEADM_CONFIG}: has bootstrap "
            'init finished its upload-config phase there? ("bootstrap init phase upload-config" uploads it)'
        )
    kubelet = _token_call(
        f"ConfigMap {NAMESPACE}/{KUBELET_CONFIG_MAP}",
        server,
        lambda: api.read("ConfigMap", NAMESPACE, KUBELET_CONFIG_MAP),
    )
    kubelet_text = ((kubelet or {}).get("data") or {}).get("kubelet")
    document: object = None
    if isinstance(kubelet_text, str):
        try:
            document = yaml.safe_load(kubelet_text)
        except yaml.YAMLError:
            document = None
    if not isinstance(document, dict):
        raise PhaseError(
            f"{server} has no usable KubeletConfiguration in ConfigMap {NAMESPACE}/{KUBELET_CONFIG_MAP}: "
            'run "bootstrap init phase upload-config kubelet" on a control-plane node'
        )
    return ClusterSettings(text, document)


def ready_node(api: KubeApi, name: str) -> dict[str, Any] | None:
    """The Node ``name`` when it exists and reports Ready=True (kubeadm's ``kubeadm:get-nodes`` right)."""
    node = _token_call(f"Node {name}", api.credentials.server, lambda: api.read_node(name))
    if not isinstance(node, dict):
        return None
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return node if ready else None


CERTS_SECRET_MISSING = (
    f"Secret {NAMESPACE}/{CERTS_SECRET} was not found: the uploaded certificates expired or were never "
    f'uploaded; run "{UPLOAD_CERTS_COMMAND}" on a control-plane node and join with the key it prints'
)


def read_certs_secret(api: KubeApi) -> dict[str, bytes] | None:
    """The sealed values of ``kube-system/kubeadm-certs``; None when there is no such Secret (expired,
    or never uploaded: :data:`CERTS_SECRET_MISSING` says what to do)."""
    secret = _token_call(
        f"Secret {NAMESPACE}/{CERTS_SECRET}",
        api.credentials.server,
        lambda: api.read("Secret", NAMESPACE, CERTS_SECRET),
    )
    if secret is None:
        return None
    data = secret.get("data") or {}
    return {str(k): base64.b64decode(v or "") for k, v in data.items()}


def bootstrap_kubeconfig(server: str, ca_pem: bytes, token: str) -> str:
    """The kubelet's TLS-bootstrap kubeconfig (``bootstrap-kubelet.conf``): server, CA, token."""
    context = f"{BOOTSTRAP_USER}@{BOOTSTRAP_CLUSTER}"
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": BOOTSTRAP_CLUSTER,
                    "cluster": {
                        "server": server,
                        "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                    },
                }
            ],
            "contexts": [
                {"name": context, "context": {"cluster": BOOTSTRAP_CLUSTER, "user": BOOTSTRAP_USER}}
            ],
            "current-context": context,
            "preferences": {},
            "users": [{"name": BOOTSTRAP_USER, "user": {"token": token}}],
        },
        sort_keys=False,
    )


def node_identity(api: KubeApi, name: str) -> None:
    """Prove that ``api``'s client certificate is accepted as ``system:node:<name>``: a node may read
    its own Node object (the real API server's node authorizer, and the stand-ins)."""
    api.read_node(name)


def kubeconfig_in_rootfs(path: Path, resolve: Callable[[str], Path]) -> Credentials:
    """The credentials of the kubeconfig at ``path`` whose absolute file references (the kubelet's
    ``/var/lib/kubelet/pki/kubelet-client-current.pem``, an absolute link) are node paths: each is read
    where ``resolve`` maps it (inside ``--rootfs``)."""
    from bootstrap.cluster.apierror import kubeconfig_error
    from bootstrap.cluster.client import kubeconfig_credentials

    try:
        doc = yaml.safe_load(path.read_bytes())
    except FileNotFoundError:
        raise ApiError(f"{path}: no such file", reason=Reason.KUBECONFIG) from None
    except (OSError, yaml.YAMLError):
        raise kubeconfig_error(path, "cannot be read as YAML") from None
    if not isinstance(doc, dict):
        raise kubeconfig_error(path, "not a mapping")
    sections = [c.get("cluster") for c in doc.get("clusters") or [] if isinstance(c, dict)]
    sections += [u.get("user") for u in doc.get("users") or [] if isinstance(u, dict)]
    for section in sections:
        if not isinstance(section, dict):
            continue
        for key in ("certificate-authority", "client-certificate", "client-key"):
            name = section.get(key)
            if isinstance(name, str) and name.startswith("/"):
                try:
                    data = resolve(name).read_bytes()
                except OSError as exc:
                    raise kubeconfig_error(path, f"{key} {name}: {exc.strerror or exc}") from None
                del section[key]
                section[f"{key}-data"] = base64.b64encode(data).decode()
    return kubeconfig_credentials(path, doc)


def client_common_name(credentials: Credentials) -> str | None:
    """The subject CN of the client certificate of ``credentials`` (None without one)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    if credentials.client_cert_pem is None:
        return None
    try:
        cert = x509.load_pem_x509_certificates(credentials.client_cert_pem)[0]
    except (ValueError, IndexError):
        return None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


ETCD_POD_SELECTOR = "component=etcd,tier=control-plane"
ETCD_CLIENT_URLS_ANNOTATION = "kubeadm.kubernetes.io/etcd.advertise-client-urls"


def etcd_client_urls(api: KubeApi, timeout: float, interval: float = 0.5) -> list[str]:
    """The client URLs of the cluster's etcd members, as kubeadm finds them: the annotation every
    etcd mirror pod (``component=etcd,tier=control-plane``) carries; waits, bounded, until each has it."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            pods = api.list_pods(NAMESPACE, label_selector=ETCD_POD_SELECTOR).get("items", [])
            problem = "" if pods else "no etcd pod (component=etcd,tier=control-plane) in kube-system"
        except ApiError as exc:
            if not exc.transient:
                raise PhaseError(f"cannot list the etcd pods: {exc}") from None
            pods, problem = [], str(exc)
        urls: list[str] = []
        for pod in pods:
            annotations = (pod.get("metadata") or {}).get("annotations") or {}
            value = annotations.get(ETCD_CLIENT_URLS_ANNOTATION)
            if not value:
                problem = (
                    f"pod {pod['metadata'].get('name')} has no {ETCD_CLIENT_URLS_ANNOTATION} annotation yet"
                )
                break
            urls += [u.strip() for u in str(value).split(",") if u.strip()]
        if not problem:
            return list(dict.fromkeys(urls))
        if time.monotonic() >= deadline:
            raise PhaseError(f"cannot find the etcd members' client URLs after {timeout:.0f}s: {problem}")
        time.sleep(interval)
