"""`bootstrap serve-manifests`: a PodList the official client's models accept, following config changes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import V1PodList

from tests.tools import tool

CONFIG = """apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  name: cp1
localAPIEndpoint:
  advertiseAddress: 10.0.0.1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking:
  serviceSubnet: {subnet}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fetch(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        document: dict[str, object] = json.loads(response.read())
        return document


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    config = tmp_path / "kubeadm.yaml"
    config.write_text(CONFIG.format(subnet="10.96.0.0/12"))
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            tool("bootstrap"),
            "serve-manifests",
            "--listen",
            f"127.0.0.1:{port}",
            "--config",
            str(config),
            "--rootfs",
            str(tmp_path / "rootfs"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                fetch(url)
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "serve-manifests did not start"
                time.sleep(0.1)
        yield url, config
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_served_podlist_is_accepted_by_the_official_client_models(served: tuple[str, Path]) -> None:
    url, _ = served
    pods = V1PodList.from_dict(fetch(url))
    assert pods is not None
    names = sorted(p.metadata.name for p in pods.items)
    assert names == ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    apiserver = next(p for p in pods.items if p.metadata.name == "kube-apiserver")
    assert "--service-cluster-ip-range=10.96.0.0/12" in apiserver.spec.containers[0].command
    assert apiserver.spec.host_network is True


def test_served_podlist_follows_a_config_change(served: tuple[str, Path]) -> None:
    url, config = served
    config.write_text(CONFIG.format(subnet="10.112.0.0/12"))
    stat = config.stat()
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    items = fetch(url)["items"]
    assert isinstance(items, list)
    apiserver = next(p for p in items if p["metadata"]["name"] == "kube-apiserver")
    assert "--service-cluster-ip-range=10.112.0.0/12" in apiserver["spec"]["containers"][0]["command"]


def test_a_broken_config_keeps_the_last_good_pods_and_reports_at_healthz(served: tuple[str, Path]) -> None:
    url, config = served
    before = fetch(url)
    config.write_text(CONFIG.format(subnet="10.96.0.0/8"))
    stat = config.stat()
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert fetch(url) == before
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(url + "healthz", timeout=5)
    assert failed.value.code == 500
    assert b"networking.serviceSubnet" in failed.value.read()
