"""Health endpoints of the control-plane components, derived from the manifests actually on disk.

The probe of the manifest says where the kubelet checks the component; the flags the component
spec table names fill in what the probe leaves open (``--advertise-address``, ``--bind-address``,
``--secure-port``, ``--listen-metrics-urls``), then the table's defaults. So a user's overrides are
respected. The kube-apiserver is checked with admin.conf's client
certificate and TLS verified against the cluster CA; kube-controller-manager and kube-scheduler
serve self-signed certificates by default, which (like the kubelet's probes and kubeadm) we
cannot verify; etcd's metrics endpoint is plain HTTP.
"""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.cluster.apierror import kubeconfig_error, tls_failure
from bootstrap.cluster.client import Credentials, read_kubeconfig
from bootstrap.cluster.clientconfig import MemoryFile
from bootstrap.components.flags import host_for_url
from bootstrap.components.podfile import first_container, pod_flags, read_document
from bootstrap.components.spec import SPECS

HEALTH_TIMEOUT = 2.0


@dataclass(frozen=True)
class Endpoint:
    component: str
    scheme: str  # "http" | "https"
    host: str
    port: int
    path: str
    verify: bool  # TLS verified against the cluster CA (with admin.conf's client certificate)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{host_for_url(self.host)}:{self.port}{self.path}"


def _probe_port(container: dict[str, Any], port: object) -> int | None:
    if isinstance(port, int):
        return port
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    return int(port) if isinstance(port, str) and port.isdigit() else None


def _loopback(address: str | None) -> str:
    """Where we connect to a component bound to ``address``: loopback for no or a wildcard address."""
    if not address or address in ("0.0.0.0",):
        return "127.0.0.1"
    return "::1" if address == "::" else address


def endpoint_from_pod(component: str, pod: dict[str, Any]) -> Endpoint:
    """Where to check ``component``: its readiness probe (else liveness), completed from its flags
    and the component spec table."""
    spec = SPECS[component]
    container = first_container(pod)
    probe = container.get("readinessProbe") or container.get("livenessProbe") or {}
    http_get = probe.get("httpGet") or {}
    flag_host, flag_port, scheme = spec.health_address(dict(pod_flags(pod)))
    return Endpoint(
        component,
        str(http_get.get("scheme") or scheme).lower(),
        http_get.get("host") or _loopback(flag_host),
        _probe_port(container, http_get.get("port")) or flag_port or spec.port(spec.health.port).default,
        http_get.get("path") or spec.health.path,
        spec.health.verify,
    )


def endpoint_from_manifest(component: str, path: Path) -> Endpoint:
    """The endpoint of the manifest on disk at ``path`` (ours, or edited since)."""
    return endpoint_from_pod(component, read_document(path))


class ClientTLS:
    """SSL contexts for health checks: verified with a kubeconfig's CA and client cert, or unverified.

    ``ClientTLS(None)`` can only check endpoints that need no verification. A kubeconfig that cannot
    be read or is not valid raises a permanent :class:`ApiError` naming the file: no wait fixes it.
    """

    def __init__(self, kubeconfig: Path | None) -> None:
        self.credentials = read_kubeconfig(kubeconfig) if kubeconfig is not None else None
        self.verified = self._verified_context(self.credentials) if self.credentials else None
        self.unverified = ssl.create_default_context()
        self.unverified.check_hostname = False
        self.unverified.verify_mode = ssl.CERT_NONE

    @staticmethod
    def _verified_context(credentials: Credentials) -> ssl.SSLContext:
        path = credentials.path
        ca = credentials.ca_pem
        try:
            context = ssl.create_default_context(cadata=ca.decode(errors="replace") if ca else None)
        except ssl.SSLError:
            raise kubeconfig_error(
                path, "certificate-authority-data is not a usable CA certificate"
            ) from None
        cert, key = credentials.client_cert_pem, credentials.client_key_pem
        if cert is None or key is None:
            return context  # no client identity: the health endpoint is public
        # ssl loads client credentials only from files: memory files, never on disk (a killed run
        # would leave a temporary copy of the admin key behind).
        cert_file, key_file = MemoryFile("client.crt", cert), MemoryFile("client.key", key)
        try:
            context.load_cert_chain(cert_file.path, key_file.path)
        except ssl.SSLError:
            raise kubeconfig_error(
                path, "client-certificate-data and client-key-data are not a matching certificate and key"
            ) from None
        finally:
            cert_file.close()
            key_file.close()
        return context

    def context_for(self, endpoint: Endpoint) -> ssl.SSLContext | None:
        """The context to check ``endpoint`` with; None when it must be verified and cannot be."""
        if endpoint.verify:
            return self.verified
        return self.unverified


def check(endpoint: Endpoint, tls: ClientTLS, timeout: float = HEALTH_TIMEOUT) -> str | None:
    """None when the endpoint answers 200; otherwise what went wrong, for people (it may heal).

    Raises :class:`ApiError` (reason TLS) when the certificate does not verify: that cannot heal.
    """
    connection: http.client.HTTPConnection
    if endpoint.scheme == "https":
        context = tls.context_for(endpoint)
        if context is None:  # never fall back to an unverified check of the API server
            return "cannot verify TLS: admin.conf (with the cluster CA) is missing"
        connection = http.client.HTTPSConnection(
            endpoint.host, endpoint.port, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)
    try:
        connection.request("GET", endpoint.path)
        response = connection.getresponse()
        body = response.read(300).decode(errors="replace").strip()
    except ssl.SSLCertVerificationError as exc:
        # A certificate our CA does not accept stays that way: fail the wait now, not at its deadline.
        assert tls.credentials is not None  # only verified endpoints verify
        raise tls_failure(endpoint.url, exc, tls.credentials.trusted) from None
    except ssl.SSLError as exc:
        return f"TLS error: {exc.reason or exc}"
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except OSError as exc:
        return f"{exc.strerror or exc}"
    finally:
        connection.close()
    if response.status == 200:
        return None
    excerpt = " ".join(body.split())[:160]
    return f"HTTP {response.status}" + (f": {excerpt}" if excerpt else "")
