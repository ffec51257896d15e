"""``bootstrap reset`` on a joined stacked-etcd node takes its member out of the real etcd cluster first.

m1 runs from the test's own flags; m2 is added as a learner, its node is initialised with ``bootstrap
init`` into a rootfs (etcd's URLs and ``--initial-cluster`` set through etcd extraArgs, the etcd CA the
cluster's), and its etcd is started from the rendered manifest's own command, then promoted. Reset runs
through the CLI, as a dry run and for real.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tools import tool

from bootstrap.etcd.learner import add_learner, promote_learner
from bootstrap.etcd.members import EtcdClient
from tests.conftest import CLUSTER_PHASES
from tests.etcd_cluster import LocalCluster, Node
from tests.test_etcd_manifest import (
    container_command,
    etcd_binary,
    etcd_version,
    kubernetes_version_for,
    runnable,
)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path / "cluster")
    try:
        yield local
    finally:
        local.close()


def joined_config(node: Node, initial_cluster: str) -> str:
    args = {
        "listen-client-urls": node.client_url,
        "advertise-client-urls": node.client_url,
        "listen-peer-urls": node.peer_url,
        "initial-advertise-peer-urls": node.peer_url,
        "listen-metrics-urls": f"http://127.0.0.1:{node.metrics_port}",
        "initial-cluster": initial_cluster,
        "initial-cluster-state": "existing",
    }
    extra = "".join(f"    - name: {name}\n      value: {value}\n" for name, value in args.items())
    return f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 127.0.0.1
nodeRegistration:
  name: {node.name}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {kubernetes_version_for(etcd_version(etcd_binary("etcd")))}
etcd:
  local:
    extraArgs:
{extra}"""


def bootstrap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("bootstrap"), *args], capture_output=True, text=True, timeout=120)


def reset(rootfs: Path, *extra: str) -> dict[str, Any]:
    proc = bootstrap("reset", "--rootfs", str(rootfs), "-o", "json", "--timeout", "1s", *extra)
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def test_reset_of_a_joined_node_removes_its_etcd_member_first(cluster: LocalCluster, tmp_path: Path) -> None:
    m1 = cluster.start_first("m1")
    client = EtcdClient([m1.client_url], m1.tls)
    m2 = cluster.node("m2")
    learner = add_learner(client, "m2", m2.peer_url, 10)

    rootfs = tmp_path / "rootfs"
    etcd_pki = rootfs / "etc/kubernetes/pki/etcd"
    etcd_pki.mkdir(parents=True)
    for part in ("ca.crt", "ca.key"):  # what download-certs brings a joining node
        shutil.copy(cluster.ca_pki / "etcd" / part, etcd_pki / part)
    config = tmp_path / "join.yaml"
    config.write_text(joined_config(m2, learner.initial_cluster))
    init = bootstrap(
        "init",
        "--config",
        str(config),
        "--rootfs",
        str(rootfs),
        "--skip-phases",
        f"kubelet-start,preflight,{CLUSTER_PHASES}",
    )
    assert init.returncode == 0, init.stderr
    argv = runnable(container_command(rootfs, "etcd"), etcd_binary("etcd"), rootfs, {})
    with m2.log.open("ab") as sink:  # the fixture kills it, whatever happens
        m2.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
    promote_learner(client, learner, m2.client_url, 20, diagnose=lambda: None)
    assert sorted(m.name for m in client.members()) == ["m1", "m2"]

    dry = reset(rootfs, "--dry-run")
    assert dry["etcdMember"] == {
        "id": learner.hex_id,
        "name": "m2",
        "peerURLs": [m2.peer_url],
        "removed": False,
    }
    assert f"would remove etcd member {learner.hex_id} (m2, {m2.peer_url})" in dry["notes"]
    assert len(client.members()) == 2
    assert (rootfs / "etc/kubernetes/manifests/etcd.yaml").exists()

    done = reset(rootfs, "--force")
    assert done["etcdMember"] == {
        "id": learner.hex_id,
        "name": "m2",
        "peerURLs": [m2.peer_url],
        "removed": True,
    }
    assert "/var/lib/etcd" in done["removed"]
    assert [m.name for m in client.members()] == ["m1"]
    assert not (rootfs / "etc/kubernetes/manifests/etcd.yaml").exists()
