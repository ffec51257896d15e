"""Kubeconfig files for the control plane: the spec table, building, and reuse checks.

Pure logic plus one write through :func:`bootstrap.host.fs.write_atomic`; knows nothing of the CLI.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootstrap.config.hostport import split_host_port
from bootstrap.config.kubeversion import minor_of
from bootstrap.errors import PkiError
from bootstrap.results import Outcome

if TYPE_CHECKING:
    from bootstrap.pki import CertificateAuthority, KeySource, PkiSettings

# cryptography and yaml are imported where used: the spec table feeds the phase tree, which the
# CLI builds at start-up.

KUBECONFIG_MODE = 0o600


@dataclass(frozen=True)
class Endpoints:
    """The two API server URLs a kubeconfig can point at."""

    local: str  # https://<advertiseAddress>:<bindPort>
    cluster: str  # controlPlaneEndpoint when set, else local


@dataclass(frozen=True)
class KubeconfigSpec:
    """One row of the kubeconfig table (reference §3)."""

    name: str
    file: str
    user: Callable[[str], str]  # node name -> user (and client cert CN)
    organizations: tuple[str, ...]
    server: Callable[[Endpoints, str], str]  # (endpoints, kubernetesVersion) -> URL


def _kubelet_server(endpoints: Endpoints, version: str) -> str:
    # ControlPlaneKubeletLocalMode is on by default from v1.33: the kubelet talks to its local API server.
    return endpoints.local if minor_of(version) >= 33 else endpoints.cluster


KUBECONFIG_SPECS: dict[str, KubeconfigSpec] = {
    spec.name: spec
    for spec in (
        KubeconfigSpec(
            "admin",
            "admin.conf",
            lambda _: "kubernetes-admin",
            ("kubeadm:cluster-admins",),
            lambda e, _: e.cluster,
        ),
        KubeconfigSpec(
            "super-admin",
            "super-admin.conf",
            lambda _: "kubernetes-super-admin",
            ("system:masters",),
            lambda e, _: e.cluster,
        ),
        KubeconfigSpec(
            "kubelet", "kubelet.conf", lambda node: f"system:node:{node}", ("system:nodes",), _kubelet_server
        ),
        KubeconfigSpec(
            "controller-manager",
            "controller-manager.conf",
            lambda _: "system:kube-controller-manager",
            (),
            lambda e, _: e.local,
        ),
        KubeconfigSpec(
            "scheduler", "scheduler.conf", lambda _: "system:kube-scheduler", (), lambda e, _: e.local
        ),
    )
}
KUBECONFIG_NAMES = tuple(KUBECONFIG_SPECS)


def https_url(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"https://{host}:{port}"


def endpoints_for(advertise_address: str, bind_port: int, control_plane_endpoint: str) -> Endpoints:
    local = https_url(advertise_address, bind_port)
    if not control_plane_endpoint:
        return Endpoints(local, local)
    host, port = split_host_port(control_plane_endpoint)  # validated: well formed
    return Endpoints(local, https_url(host, bind_port if port is None else int(port)))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build(
    spec: KubeconfigSpec,
    cluster_name: str,
    server: str,
    ca_pem: bytes,
    user: str,
    cert_pem: bytes,
    key_pem: bytes,
) -> dict[str, Any]:
    context = f"{user}@{cluster_name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": cluster_name, "cluster": {"certificate-authority-data": _b64(ca_pem), "server": server}}
        ],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)},
            }
        ],
    }


def _check_existing(
    path: Path,
    data: dict[str, Any],
    ca: CertificateAuthority,
    user: str,
    organizations: tuple[str, ...],
    server: str,
    read_file: Callable[[str], bytes] | None = None,
) -> list[str]:
    """Problems that make an existing kubeconfig unusable (empty: reuse it) and soft warnings.

    With ``read_file`` (host path -> content), client credentials may be files instead of embedded
    data: kubelet-finalize points kubelet.conf at the kubelet's rotating certificate."""
    from cryptography import x509

    from bootstrap.pki import verify_client_pair

    fix = f'delete {path.name} and re-run "bootstrap phase kubeconfig {path.stem}"'
    try:
        cluster = data["clusters"][0]["cluster"]
        ca_pem = base64.b64decode(cluster["certificate-authority-data"])
        creds = data["users"][0]["user"]
        if read_file is not None and "client-certificate-data" not in creds and "client-certificate" in creds:
            cert_pem, key_pem = read_file(creds["client-certificate"]), read_file(creds["client-key"])
        else:
            cert_pem = base64.b64decode(creds["client-certificate-data"])
            key_pem = base64.b64decode(creds["client-key-data"])
    except OSError as exc:
        raise PkiError(f"{path}: cannot read its client certificate or key ({exc.strerror}); {fix}") from exc
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        # Name the missing field only: the values may hold key material.
        raise PkiError(
            f"{path}: not a kubeconfig with embedded CA and client credentials "
            f"({type(exc).__name__}: {exc if isinstance(exc, KeyError) else 'unreadable value'}); {fix}"
        ) from exc
    try:
        embedded_ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as exc:
        raise PkiError(f"{path}: certificate-authority-data is not a PEM certificate ({exc}); {fix}") from exc
    if embedded_ca != ca.cert:
        raise PkiError(f"{path}: embedded CA is not the cluster CA (ca.crt); {fix}")
    problem = verify_client_pair(ca.cert, cert_pem, key_pem, common_name=user, organizations=organizations)
    if problem:
        raise PkiError(f"{path}: {problem}; {fix}")
    warnings = []
    if cluster.get("server") != server:
        warnings.append(f"{path}: server is {cluster.get('server')}, expected {server} (kept)")
    return warnings


def ensure_kubeconfig(
    spec: KubeconfigSpec,
    kube_dir: Path,
    ca: CertificateAuthority,
    settings: PkiSettings,
    cluster_name: str,
    server: str,
    keys: KeySource,
    read_file: Callable[[str], bytes] | None = None,
) -> tuple[Outcome, list[str]]:
    """Write ``spec``'s kubeconfig unless a valid one exists; return the outcome and warnings."""
    import yaml
    from cryptography.hazmat.primitives.serialization import Encoding

    from bootstrap.pki import issue_client_cert

    path = kube_dir / spec.file
    user = spec.user(settings.node_name)
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise PkiError(
                f"{path}: not valid YAML ({exc.__class__.__name__}); delete {path.name} and re-run "
                f'"bootstrap phase kubeconfig {path.stem}"'
            ) from exc
        warnings = _check_existing(path, data, ca, user, spec.organizations, server, read_file)
        return Outcome(False, f'Using existing kubeconfig file: "{path}"'), warnings
    if ca.key is None:
        raise PkiError(
            f"{path}: missing, and the CA key is absent (external CA mode): provide {spec.file} "
            "signed by the external CA"
        )
    cert_pem, key_pem = issue_client_cert(ca, user, spec.organizations, settings, keys)
    ca_pem = ca.cert.public_bytes(Encoding.PEM)
    document = build(spec, cluster_name, server, ca_pem, user, cert_pem, key_pem)
    # libyaml's emitter when present: the same text (the documents are plain strings, lists and
    # mappings), but the pure-Python one spends ~10 ms a file inspecting the base64 blobs char by char.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(document, Dumper=dumper, sort_keys=False, default_flow_style=False)
    from bootstrap.host.fs import write_atomic

    write_atomic(path, text.encode(), KUBECONFIG_MODE)
    return Outcome(True, f'Writing "{spec.file}" kubeconfig file', [path]), []
