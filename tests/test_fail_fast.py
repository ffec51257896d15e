"""Only what can heal is retried: permanent failures end a wait or an API call at once, with their
own message.

Transient failures (connection refused, 5xx, 429) are retried until they heal. A missing client
library, a broken admin.conf, a serving certificate from another CA, and a 401/403 that the
admin.conf escalation cannot fix end the wait within seconds, never as "kube-apiserver is not
serving" at the deadline. The wait runs as the real CLI against the stand-ins (tests/standin); the
single API calls run against a scripted server.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bootstrap.cluster.client import RBAC_PROPAGATION, ApiError, KubeApi, Reason
from tests.scripted_api import Answer, ScriptedApi, serving
from tests.standin.harness import bootstrap_command, prepare_rootfs, running_control_plane
from tests.tools import wait_for

PODS = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "5"}, "items": []}
# Far beyond any of the failures below: a run that retries instead of failing shows up as a timeout.
WAIT_TIMEOUT = "30s"
# What "at once" may take beyond the CLI's own start-up (measured on the same machine, same moment).
FAIL_FAST_SECONDS = 2.0


# -- single API calls against a scripted server ---------------------------------------------------


def test_5xx_and_429_are_retried_until_the_call_succeeds(tmp_path: Path) -> None:
    script = {"GET": [Answer.failure(503), Answer.failure(429), Answer(200, PODS)]}
    with serving(ScriptedApi(script)) as api:
        client = KubeApi(api.kubeconfig(tmp_path / "kubeconfig"))
        listing = client.call_with_retry(lambda: client.list_pods("kube-system"), time.monotonic() + 10)
    assert listing["kind"] == "PodList"
    assert len(api.requests) == 3


def test_connection_refused_is_retried_until_the_server_listens(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = ScriptedApi({"GET": [Answer(200, PODS)]}, port=port)
    client = KubeApi(api.kubeconfig(tmp_path / "kubeconfig"))
    started = threading.Event()

    def serve_later() -> None:
        time.sleep(0.6)
        with serving(api):
            started.set()
            time.sleep(5)

    threading.Thread(target=serve_later, daemon=True).start()
    with pytest.raises(ApiError) as refused:
        client.list_pods("kube-system")
    assert refused.value.reason is Reason.UNREACHABLE and refused.value.transient
    listing = client.call_with_retry(lambda: client.list_pods("kube-system"), time.monotonic() + 10)
    assert started.is_set() and listing["kind"] == "PodList"


def test_401_fails_at_once_naming_the_kubeconfig(tmp_path: Path) -> None:
    with serving(ScriptedApi({"GET": [Answer.failure(401, "Unauthorized")]})) as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        client = KubeApi(kubeconfig)
        start = time.monotonic()
        with pytest.raises(ApiError) as raised:
            client.call_with_retry(lambda: client.list_pods("kube-system"), time.monotonic() + 30)
    assert time.monotonic() - start < 1.0
    assert raised.value.reason is Reason.UNAUTHORIZED and not raised.value.transient
    assert "HTTP 401" in str(raised.value) and str(kubeconfig) in str(raised.value)
    assert len(api.requests) == 1


def test_a_403_that_persists_after_the_escalation_fails_fast(tmp_path: Path) -> None:
    escalations: list[str] = []

    def escalate(forbidden: ApiError) -> str:
        escalations.append(str(forbidden))
        return "after the test's escalation"

    with serving(ScriptedApi({"GET": [Answer.failure(403, "pods is forbidden")]})) as api:
        client = KubeApi(api.kubeconfig(tmp_path / "kubeconfig"), on_forbidden=escalate)
        start = time.monotonic()
        with pytest.raises(ApiError) as raised:
            client.call_with_retry(lambda: client.list_pods("kube-system"), time.monotonic() + 30)
    elapsed = time.monotonic() - start
    assert escalations == ["HTTP 403: pods is forbidden"]
    assert raised.value.reason is Reason.FORBIDDEN and not raised.value.transient
    assert "still forbidden after the test's escalation" in str(raised.value)
    # Only the short grace for the new binding to reach the RBAC cache, never the call deadline.
    assert RBAC_PROPAGATION <= elapsed < RBAC_PROPAGATION + 1.0


def test_a_403_fixed_by_the_escalation_is_retried(tmp_path: Path) -> None:
    script = {"GET": [Answer.failure(403, "pods is forbidden"), Answer(200, PODS)]}
    with serving(ScriptedApi(script)) as api:
        client = KubeApi(api.kubeconfig(tmp_path / "kubeconfig"), on_forbidden=lambda _: "after granting")
        assert client.list_pods("kube-system")["kind"] == "PodList"
    assert len(api.requests) == 2


# -- the wait, as the CLI runs it -----------------------------------------------------------------


class Node:
    def __init__(self, tmp_path: Path) -> None:
        self.rootfs = tmp_path / "rootfs"
        prepare_rootfs(self.rootfs)
        self.config = tmp_path / "rootfs-kubeadm.yaml"
        self.kubernetes = self.rootfs / "etc/kubernetes"

    def wait(self, *extra: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], float]:
        args = bootstrap_command(self.rootfs, self.config, "phase", "wait-control-plane")
        start = time.monotonic()
        proc = subprocess.run(
            [*args, *extra], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
        )
        return proc.returncode, json.loads(proc.stdout), time.monotonic() - start

    def start_up_seconds(self, env: dict[str, str] | None = None) -> float:
        """How long the CLI takes to load the config and plan the wait and return (a dry run)."""
        return self.wait("--dry-run", env=env)[2]


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def error_of(doc: dict[str, Any]) -> str:
    message: str = doc["error"]["message"]
    return message


def assert_failed_fast(code: int, message: str, seconds: float, start_up: float) -> None:
    assert code == 1, message  # a phase failure, not a wait timeout (5)
    assert "not serving" not in message and "not healthy after" not in message
    assert seconds < start_up + FAIL_FAST_SECONDS, f"took {seconds:.1f}s (start-up {start_up:.1f}s)"


def test_a_missing_kubernetes_client_fails_the_wait_at_once(node: Node, tmp_path: Path) -> None:
    # A package named kubernetes that cannot be imported, ahead of the real one on sys.path.
    shadow = tmp_path / "shadow" / "kubernetes"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'kubernetes'\", name='kubernetes')\n"
    )
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(shadow.parent), os.environ.get("PYTHONPATH")]))}
    start_up = node.start_up_seconds(env)
    code, doc, seconds = node.wait("--timeout", WAIT_TIMEOUT, env=env)
    message = error_of(doc)
    assert_failed_fast(code, message, seconds, start_up)
    assert "the Kubernetes client library cannot be imported" in message
    assert "No module named 'kubernetes'" in message


SECRET = "c2VjcmV0LWtleS1tYXRlcmlhbA=="  # what must never be quoted back


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (f"clusters: [\n  client-key-data: {SECRET}: x\n", "not valid YAML at line"),
        ("apiVersion: v1\nkind: Config\n", "no clusters"),
        (
            "clusters:\n- name: k\n  cluster: {server: 'https://127.0.0.1:6443', "
            f"certificate-authority-data: '{SECRET}'}}\nusers:\n- name: u\n  user: {{}}\n",
            "certificate-authority-data is not a PEM certificate",
        ),
    ],
    ids=["not-yaml", "no-clusters", "ca-not-pem"],
)
def test_a_corrupt_admin_conf_fails_the_wait_at_once(node: Node, content: str, problem: str) -> None:
    start_up = node.start_up_seconds()
    admin = node.kubernetes / "admin.conf"
    admin.write_text(content)
    code, doc, seconds = node.wait("--timeout", WAIT_TIMEOUT)
    message = error_of(doc)
    assert_failed_fast(code, message, seconds, start_up)
    assert f"{admin}: not a valid kubeconfig ({problem}" in message
    assert SECRET not in message


def _serving_cert_from_another_ca(pki: Path) -> None:
    """Replace the API server's serving certificate with one from a CA admin.conf does not trust."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "some-other-ca")])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (pki / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (pki / "apiserver.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def test_a_serving_certificate_from_another_ca_fails_the_wait_at_once(node: Node) -> None:
    _serving_cert_from_another_ca(node.kubernetes / "pki")
    start_up = node.start_up_seconds()
    with running_control_plane(node.rootfs) as kubelet:
        wait_for(lambda: kubelet.api is not None and kubelet.api.running, timeout=30, what="the API server")
        code, doc, seconds = node.wait("--timeout", WAIT_TIMEOUT)
    message = error_of(doc)
    assert_failed_fast(code, message, seconds, start_up)
    assert "TLS verification of https://127.0.0.1:" in message
    assert "failed: certificate signed by an unknown authority" in message
    assert f"{node.kubernetes / 'admin.conf'} trusts only the CA CN=kubernetes" in message
    assert "BEGIN" not in message


def test_a_403_the_escalation_cannot_fix_fails_the_wait_without_retrying(node: Node) -> None:
    # Without super-admin.conf nothing can bind admin.conf's group to cluster-admin.
    (node.kubernetes / "super-admin.conf").unlink()
    with running_control_plane(node.rootfs) as kubelet:
        api = wait_for(lambda: kubelet.api if kubelet.api and kubelet.api.running else None, timeout=30)
        code, doc, seconds = node.wait("--timeout", WAIT_TIMEOUT)
        lists = [p for m, p, user in list(api.request_log) if user == "kubernetes-admin" and "/pods" in p]
    message = error_of(doc)
    assert code == 1, message
    assert "HTTP 403" in message and "not serving" not in message
    assert f"{node.kubernetes / 'super-admin.conf'}, which would grant them, does not exist" in message
    assert len(lists) == 1, lists  # asked once, never retried
    assert seconds < 20  # long before the 30 s deadline, even with the client import on a busy machine
