"""`roll_out`: one static pod's manifest swapped on a running control plane (the kubelet stand-in).

The function runs in this process, next to the stand-ins; the wait it drives talks to them over
HTTPS with admin.conf, as it would to a real control plane.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootstrap.components.strays import StrayFiles
from bootstrap.errors import PhaseError
from bootstrap.wait.progress import LineProgress
from bootstrap.wait.rollout import RolloutOutcome, StaticPodNode, current_manifest, roll_out, static_pod_node
from tests.standin.harness import NODE, admin_client, prepare_rootfs, running_control_plane
from tests.standin.kubelet import KubeletStandin, Scenario

MANIFESTS = "/etc/kubernetes/manifests"


@dataclass
class Node:
    rootfs: Path
    static_pods: StaticPodNode
    kubelet: KubeletStandin
    log: io.StringIO

    def manifest(self, component: str) -> Path:
        return self.rootfs / MANIFESTS.lstrip("/") / f"{component}.yaml"

    def roll_out(self, component: str, text: str, timeout: float = 30.0) -> RolloutOutcome:
        return roll_out(
            self.static_pods, component, text, settle=1.0, timeout=timeout, progress=LineProgress(self.log)
        )

    def mirror_hash(self, component: str) -> str:
        from kubernetes.client import CoreV1Api

        pod = CoreV1Api(admin_client(self.rootfs)).read_namespaced_pod(f"{component}-{NODE}", "kube-system")
        return str(pod.metadata.annotations["kubernetes.io/config.hash"])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `bootstrap init` for the module; each test runs on its own copy."""
    rootfs = tmp_path_factory.mktemp("rollout") / "rootfs"
    prepare_rootfs(rootfs)
    return rootfs


@pytest.fixture
def node(prepared: Path, tmp_path: Path) -> Iterator[Node]:
    import shutil

    rootfs = tmp_path / "rootfs"
    shutil.copytree(prepared, rootfs, symlinks=True)
    static_pods = static_pod_node(
        rootfs / MANIFESTS.lstrip("/"),
        MANIFESTS,
        rootfs / "etc/kubernetes",
        NODE,
        rootfs / "var/lib/kubelet/config.yaml",
    )
    with running_control_plane(rootfs) as kubelet:
        node = Node(rootfs, static_pods, kubelet, io.StringIO())
        # Everything healthy first: an unchanged manifest only checks the running pods.
        for component in ("kube-apiserver", "kube-scheduler"):
            text = node.manifest(component).read_text()
            assert node.roll_out(component, text).healthy, node.log.getvalue()
        yield node


def with_flag(text: str, anchor: str, flag: str) -> str:
    assert anchor in text
    return text.replace(f"- {anchor}\n", f"- {anchor}\n    - {flag}\n", 1)


def visible_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_a_changed_manifest_gets_a_new_healthy_pod(node: Node) -> None:
    before = node.mirror_hash("kube-scheduler")
    text = with_flag(node.manifest("kube-scheduler").read_text(), "--leader-elect=true", "--v=2")
    outcome = node.roll_out("kube-scheduler", text)
    assert outcome.healthy and outcome.written, outcome.diagnosis
    assert outcome.old_hash == before
    assert outcome.new_hash is not None and outcome.new_hash != before
    assert outcome.new_hash == node.mirror_hash("kube-scheduler")
    assert outcome.seconds >= 1.0  # the settle window
    assert node.manifest("kube-scheduler").read_text() == text
    assert node.manifest("kube-scheduler").stat().st_mode & 0o777 == 0o600
    # Only the four manifests: no temporary file or copy left in the watched directory.
    assert visible_files(node.manifest("etcd").parent) == [
        "etcd.yaml",
        "kube-apiserver.yaml",
        "kube-controller-manager.yaml",
        "kube-scheduler.yaml",
    ]
    document = outcome.to_dict()
    assert document["oldHash"] == before and document["newHash"] == outcome.new_hash
    assert "diagnosis" not in document


def test_the_api_server_itself_can_be_rolled_out(node: Node) -> None:
    before = node.mirror_hash("kube-apiserver")
    text = with_flag(node.manifest("kube-apiserver").read_text(), "--allow-privileged=true", "--v=2")
    outcome = node.roll_out("kube-apiserver", text)
    assert outcome.healthy, outcome.diagnosis
    assert outcome.old_hash == before and outcome.new_hash not in (None, before)
    assert outcome.new_hash == node.mirror_hash("kube-apiserver")


def test_the_old_pod_still_running_does_not_count(node: Node) -> None:
    # The kubelet keeps the old, healthy scheduler pod for 2 s after the file changes.
    node.kubelet.scenarios["kube-scheduler"] = Scenario(pickup_delay=2.0)
    with node.kubelet._lock:  # the running pod decides how long the kubelet keeps it
        for pod in node.kubelet.pods.values():
            if pod.name == "kube-scheduler":
                pod.scenario = node.kubelet.scenarios["kube-scheduler"]
    text = with_flag(node.manifest("kube-scheduler").read_text(), "--leader-elect=true", "--v=3")
    start = time.monotonic()
    outcome = node.roll_out("kube-scheduler", text)
    assert outcome.healthy, outcome.diagnosis
    assert time.monotonic() - start >= 2.0 and outcome.seconds >= 2.0
    assert outcome.new_hash != outcome.old_hash


def test_a_crashing_new_pod_is_an_unhealthy_outcome_with_the_diagnosis_and_no_rollback(node: Node) -> None:
    node.kubelet.scenarios["kube-controller-manager"] = Scenario(crash_loop_exit_code=2)
    text = with_flag(node.manifest("kube-controller-manager").read_text(), "--leader-elect=true", "--v=2")
    outcome = node.roll_out("kube-controller-manager", text, timeout=6.0)
    assert not outcome.healthy and outcome.written
    assert outcome.new_hash is None and outcome.old_hash is not None
    assert outcome.diagnosis is not None
    assert "kube-controller-manager" in outcome.diagnosis and "exit code 2" in outcome.diagnosis
    assert outcome.details is not None and outcome.details["healthy"] is False
    assert outcome.seconds >= 6.0
    assert node.manifest("kube-controller-manager").read_text() == text  # the caller decides


def test_an_unchanged_manifest_writes_nothing_and_checks_the_running_pod(node: Node) -> None:
    path = node.manifest("kube-scheduler")
    before, mtime = node.mirror_hash("kube-scheduler"), path.stat().st_mtime_ns
    outcome = node.roll_out("kube-scheduler", path.read_text())
    assert outcome.healthy and not outcome.written
    assert outcome.old_hash == outcome.new_hash == before
    assert path.stat().st_mtime_ns == mtime


def test_a_manifest_of_another_component_is_refused_with_nothing_written(node: Node) -> None:
    path = node.manifest("kube-scheduler")
    before = path.read_text()
    with pytest.raises(PhaseError, match="not the static pod of kube-scheduler"):
        node.roll_out("kube-scheduler", node.manifest("kube-apiserver").read_text())
    with pytest.raises(PhaseError, match="not valid YAML"):
        node.roll_out("kube-scheduler", "metadata: [")
    assert path.read_text() == before


def test_a_stray_copy_in_the_watched_directory_is_refused_with_nothing_written(node: Node) -> None:
    path = node.manifest("kube-scheduler")
    before = path.read_text()
    stray = path.with_name("kube-scheduler.yaml.bak")
    stray.write_text(before)
    try:
        with pytest.raises(StrayFiles, match=r"kube-scheduler\.yaml\.bak"):
            node.roll_out("kube-scheduler", with_flag(before, "--leader-elect=true", "--v=2"))
    finally:
        stray.unlink()
    assert path.read_text() == before


def test_current_manifest_is_the_text_on_disk(node: Node) -> None:
    assert current_manifest(node.static_pods, "etcd") == node.manifest("etcd").read_text()
    node.manifest("etcd").write_text("kind: ConfigMap\n")
    assert current_manifest(node.static_pods, "etcd") is None
