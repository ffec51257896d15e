"""Several real etcd members on loopback for the membership tests, with certificates from our own PKI code.

Every member listens on 127.0.0.1 with its own client, peer and metrics ports, and has its own pki dir
holding the shared etcd CA and its own server, peer and healthcheck-client certs (issued by
``bootstrap.pki.ensure_cert`` exactly as ``bootstrap init phase certs`` issues them). The flags are the
ones the rendered manifest gives etcd (kubeadm's set), with the ports moved.

:class:`LocalCluster` kills every etcd it started when closed, whatever happened.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bootstrap.etcd.members import EtcdTLS
from bootstrap.pki import KeySource, PkiSettings, ensure_cert
from tests.pki_helpers import make_settings
from tests.standin.harness import free_ports
from tests.test_etcd_manifest import etcd_binary, etcd_version

LOOPBACK = "127.0.0.1"
ALGORITHM = "ECDSA-P256"  # fast to generate; etcd takes it like RSA


def pki_settings(name: str, address: str = LOOPBACK) -> PkiSettings:
    return make_settings(
        node_name=name,
        advertise_address=address,
        encryption_algorithm=ALGORITHM,
        cert_validity=timedelta(days=1),
        ca_validity=timedelta(days=2),
        now=datetime.now(UTC),
    )


def issue_ca(pki: Path) -> None:
    with KeySource(ALGORITHM) as keys:
        ensure_cert("etcd-ca", pki_settings("ca"), pki, keys)


def issue_member_certs(ca_pki: Path, pki: Path, name: str, address: str = LOOPBACK) -> None:
    """The etcd CA copied from ``ca_pki`` (what download-certs brings) plus this member's leaf certs."""
    (pki / "etcd").mkdir(parents=True, exist_ok=True)
    for part in ("ca.crt", "ca.key"):
        shutil.copy(ca_pki / "etcd" / part, pki / "etcd" / part)
    with KeySource(ALGORITHM) as keys:
        for cert in ("etcd-server", "etcd-peer", "etcd-healthcheck-client"):
            ensure_cert(cert, pki_settings(name, address), pki, keys)


@dataclass
class Node:
    name: str
    base: Path
    client_port: int
    peer_port: int
    metrics_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def pki(self) -> Path:
        return self.base / "pki"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "etcd.log"

    @property
    def client_url(self) -> str:
        return f"https://{LOOPBACK}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{LOOPBACK}:{self.peer_port}"

    @property
    def tls(self) -> EtcdTLS:
        return EtcdTLS.healthcheck(self.pki)

    def flags(self, initial_cluster: str, state: str) -> list[str]:
        etcd = self.pki / "etcd"
        minor = etcd_version(etcd_binary("etcd"))
        version_flags = (
            ["--feature-gates=InitialCorruptCheck=true", "--watch-progress-notify-interval=5s"]
            if minor >= (3, 6)
            else [
                "--experimental-initial-corrupt-check=true",
                "--experimental-watch-progress-notify-interval=5s",
            ]
        )
        return [
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-client-urls={self.client_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--listen-metrics-urls=http://{LOOPBACK}:{self.metrics_port}",
            f"--initial-cluster={initial_cluster}",
            f"--initial-cluster-state={state}",
            f"--cert-file={etcd / 'server.crt'}",
            f"--key-file={etcd / 'server.key'}",
            "--client-cert-auth=true",
            f"--trusted-ca-file={etcd / 'ca.crt'}",
            f"--peer-cert-file={etcd / 'peer.crt'}",
            f"--peer-key-file={etcd / 'peer.key'}",
            "--peer-client-cert-auth=true",
            f"--peer-trusted-ca-file={etcd / 'ca.crt'}",
            "--snapshot-count=10000",
            *version_flags,
        ]

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class LocalCluster:
    """Members on loopback under ``base``; ``node(name)`` prepares one, ``start`` runs it."""

    base: Path
    nodes: dict[str, Node] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ca_pki = self.base / "ca"
        issue_ca(self.ca_pki)

    def node(self, name: str) -> Node:
        if name not in self.nodes:
            client, peer, metrics = free_ports(3)
            node = Node(name, self.base / name, client, peer, metrics)
            issue_member_certs(self.ca_pki, node.pki, name)
            self.nodes[name] = node
        return self.nodes[name]

    def start(self, node: Node, initial_cluster: str | None = None, state: str = "new") -> None:
        node.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        argv = [
            str(etcd_binary("etcd")),
            *node.flags(initial_cluster or f"{node.name}={node.peer_url}", state),
        ]
        with node.log.open("ab") as sink:
            node.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)

    def start_first(self, name: str) -> Node:
        node = self.node(name)
        self.start(node)
        self.wait_healthy(node)
        return node

    def wait_healthy(self, node: Node, timeout: float = 20.0) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        url = f"http://{LOOPBACK}:{node.metrics_port}/health"
        while time.monotonic() < deadline:
            if node.process is not None and node.process.poll() is not None:
                raise AssertionError(f"etcd {node.name} exited:\n{node.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if b'"health":"true"' in response.read():
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"etcd {node.name} not healthy after {timeout}s:\n{node.log_tail()}")

    def stop(self, node: Node) -> None:
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait(timeout=10)
        node.process = None

    def close(self) -> None:
        for node in self.nodes.values():
            self.stop(node)
