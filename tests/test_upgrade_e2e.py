"""`bootstrap upgrade apply` on a running control plane (the kubelet and API server stand-ins).

Each test inits its own node with the real `bootstrap init`, then runs `upgrade apply` as a
subprocess, as a user would, and checks the node and the cluster afterwards.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.components.strays import find_strays
from tests.tools import tool
from tests.upgrade_cluster import COMPONENTS, Cluster, running_cluster

BACKUPS = "etc/kubernetes/tmp"


@pytest.fixture
def v133(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path, "v1.33.4") as cluster:
        yield cluster


@pytest.fixture
def v134(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path, None) as cluster:  # the default version, v1.34
        yield cluster


def backups(cluster: Cluster) -> list[str]:
    directory = cluster.rootfs / BACKUPS
    return sorted(p.name for p in directory.glob("kube-bootstrap-backup-*")) if directory.exists() else []


def with_cluster_lines(config_text: str, lines: str) -> str:
    """The config with ``lines`` (YAML at the ClusterConfiguration's top level) added to that document."""
    return config_text.replace("kind: ClusterConfiguration\n", f"kind: ClusterConfiguration\n{lines}", 1)


def test_upgrade_from_v1_33_to_v1_34_swaps_each_component_in_turn_and_records_the_version(
    v133: Cluster,
) -> None:
    before = {c: v133.mirror_hash(c) for c in COMPONENTS}
    assert "kubernetesVersion: v1.33.4" in v133.stored_configuration()
    apiserver_cert = (v133.rootfs / "etc/kubernetes/pki/apiserver.crt").read_bytes()

    code, doc, stderr = v133.upgrade("v1.34.2", stored=True)  # no --config: kubeadm-config is read

    assert code == 0, stderr
    assert doc["plan"]["storedConfiguration"] == "kube-system/kubeadm-config"
    assert doc["ok"] is True and doc["changed"] is True
    rollouts = doc["rollouts"]
    assert [r["component"] for r in rollouts] == list(COMPONENTS)  # one at a time, in this order
    for rollout in rollouts:
        component = rollout["component"]
        assert rollout["healthy"] is True, rollout
        assert rollout["oldHash"] == before[component]
        assert rollout["newHash"] not in (None, before[component])
        assert v133.mirror_hash(component) == rollout["newHash"]
    images = {c["component"]: (c["from"], c["to"]) for c in doc["components"]}
    assert images["etcd"] == ("registry.k8s.io/etcd:3.5.21-0", "registry.k8s.io/etcd:3.6.4-0")
    assert images["kube-apiserver"] == (
        "registry.k8s.io/kube-apiserver:v1.33.4",
        "registry.k8s.io/kube-apiserver:v1.34.2",
    )
    scheduler = v133.manifest("kube-scheduler").read_text()
    assert "image: registry.k8s.io/kube-scheduler:v1.34.2" in scheduler
    assert "port: probe-port" in scheduler  # v1.34's named probe port
    assert "--feature-gates=InitialCorruptCheck=true" in v133.manifest("etcd").read_text()
    assert "kubernetesVersion: v1.34.2" in v133.stored_configuration()
    assert doc["certificateRenewal"] is True
    assert "/etc/kubernetes/pki/apiserver.crt" in doc["certificatesRenewed"]
    assert (v133.rootfs / "etc/kubernetes/pki/apiserver.crt").read_bytes() != apiserver_cert
    assert len(backups(v133)) == 1
    backup = v133.rootfs / BACKUPS / backups(v133)[0]
    assert "registry.k8s.io/kube-apiserver:v1.33.4" in (backup / "manifests/kube-apiserver.yaml").read_text()
    assert backup.stat().st_mode & 0o777 == 0o700
    assert (backup / "pki/apiserver.key").stat().st_mode & 0o777 == 0o600
    assert (backup / "pki/apiserver.crt").read_bytes() == apiserver_cert
    assert "PRIVATE KEY" not in json.dumps(doc) and "client-key-data" not in json.dumps(doc)

    manifests = {c: v133.manifest(c).stat().st_mtime_ns for c in COMPONENTS}
    hashes = {c: v133.mirror_hash(c) for c in COMPONENTS}
    again, doc, stderr = v133.upgrade("v1.34.2", stored=True)

    assert again == 0, stderr
    assert doc["changed"] is False and doc["rollouts"] == [] and doc["backupDir"] is None
    assert {c: v133.manifest(c).stat().st_mtime_ns for c in COMPONENTS} == manifests
    assert {c: v133.mirror_hash(c) for c in COMPONENTS} == hashes
    assert len(backups(v133)) == 1


def test_an_apiserver_flag_that_crashes_it_is_rolled_back_and_nothing_else_is_touched(
    v134: Cluster,
) -> None:
    apiserver_before = v134.manifest("kube-apiserver").read_text()
    others = {
        c: (v134.manifest(c).read_text(), v134.mirror_hash(c)) for c in COMPONENTS if c != "kube-apiserver"
    }
    bad = v134.write_config(
        "bad.yaml",
        with_cluster_lines(
            v134.config_text, "apiServer:\n  extraArgs:\n  - name: no-such-flag\n    value: '1'\n"
        ),
    )
    seen: set[str] = set()
    stop = threading.Event()
    watched = v134.rootfs / "etc/kubernetes/manifests"

    def watch() -> None:  # every file the kubelet would load, for the whole run
        while not stop.wait(0.01):
            seen.update(p.name for p in watched.iterdir() if not p.name.startswith("."))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        code, doc, stderr = v134.upgrade(config=bad, timeout="6s")
    finally:
        stop.set()
        watcher.join()

    assert code == 5, stderr
    message = doc["error"]["message"]
    assert "kube-apiserver did not become healthy" in message
    assert "+--no-such-flag=1" in message  # the diagnosis names the change
    assert "rolled back" in message and "healthy again" in message
    assert [r["component"] for r in doc["upgrade"]["applied"]["rollouts"]] == ["kube-apiserver"] * 2
    assert v134.manifest("kube-apiserver").read_text() == apiserver_before
    mirror = v134.mirror("kube-apiserver")
    assert {c.type: c.status for c in mirror.status.conditions}["Ready"] == "True"
    assert "--no-such-flag=1" not in mirror.spec.containers[0].command
    for component, (text, mirror_hash) in others.items():
        assert v134.manifest(component).read_text() == text, component
        assert v134.mirror_hash(component) == mirror_hash, component
    assert seen == {f"{c}.yaml" for c in COMPONENTS}  # no backup copy was ever visible to the kubelet
    assert find_strays(watched, {f"{c}.yaml" for c in COMPONENTS}, COMPONENTS) == []
    assert "kube-system/kubeadm-config was not updated" in message
    assert "no-such-flag" not in v134.stored_configuration()


def _san(cert: Path) -> str:
    return subprocess.run(
        [tool("openssl"), "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _key_algorithm(cert: Path) -> tuple[str, str]:
    text = subprocess.run(
        [tool("openssl"), "x509", "-in", str(cert), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    algorithm = re.search(r"Public Key Algorithm: (\S+)", text)
    curve = re.search(r"(?:NIST CURVE|ASN1 OID): (\S+)", text)
    assert algorithm is not None
    return algorithm.group(1), curve.group(1) if curve else ""


def test_a_cert_sans_change_reissues_the_apiserver_certificate_and_restarts_only_the_apiserver(
    v134: Cluster,
) -> None:
    cert = v134.rootfs / "etc/kubernetes/pki/apiserver.crt"
    algorithm = _key_algorithm(cert)
    issuer = subprocess.run(
        [tool("openssl"), "x509", "-in", str(cert), "-noout", "-issuer"], capture_output=True, text=True
    ).stdout
    assert "upgrade.example.test" not in _san(cert)
    hashes = {c: v134.mirror_hash(c) for c in COMPONENTS}
    wanted = v134.write_config(
        "sans.yaml",
        with_cluster_lines(
            v134.config_text, "apiServer:\n  certSANs:\n  - upgrade.example.test\n  - 10.0.0.77\n"
        ),
    )

    code, doc, stderr = v134.upgrade(config=wanted)

    assert code == 0, stderr
    sans = _san(cert)
    assert "DNS:upgrade.example.test" in sans and "IP Address:10.0.0.77" in sans
    assert _key_algorithm(cert) == algorithm
    assert (
        subprocess.run(
            [tool("openssl"), "x509", "-in", str(cert), "-noout", "-issuer"], capture_output=True, text=True
        ).stdout
        == issuer
    )
    verified = subprocess.run(
        [tool("openssl"), "verify", "-CAfile", str(cert.parent / "ca.crt"), str(cert)],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr
    assert doc["certificatesReissued"] == ["apiserver"]
    assert [r["component"] for r in doc["rollouts"]] == ["kube-apiserver"]
    assert v134.mirror_hash("kube-apiserver") != hashes["kube-apiserver"]
    for component in ("etcd", "kube-controller-manager", "kube-scheduler"):
        assert v134.mirror_hash(component) == hashes[component], component
    assert "upgrade.example.test" in v134.stored_configuration()

    again, doc, stderr = v134.upgrade(config=wanted)
    assert again == 0, stderr
    assert doc["changed"] is False
