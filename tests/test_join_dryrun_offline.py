"""``bootstrap join --dry-run`` with nothing listening at the endpoint plans the whole join, as kubeadm's
does since v1.32: against a stand-in cluster (the endpoint given, a throwaway CA), every file lands in
the dry-run directory, chains to that CA and names that endpoint, and nothing under --rootfs changes.

One run per node kind, shared by the tests that read it: a run waits for discovery to give up.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bootstrap.components.annotations import CERT_GENERATION, with_annotation
from tests.conftest import ADDRESS, files_under
from tests.test_manifests_schema import schema_version
from tests.tools import run_dry_run_keeping, tool

TOKEN = "abcdef.0123456789abcdef"
KEY = "5e" * 32
MANIFESTS = ("kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml", "etcd.yaml")


@dataclass
class Planned:
    endpoint: str
    code: int
    doc: dict[str, Any]
    stderr: str
    stdout: str
    kept: Path  # BOOTSTRAP_DRYRUN_DIR: what the run would have written, at host paths
    rootfs: Path
    planted: list[str]

    def plan(self) -> dict[str, dict[str, Any]]:
        return {s["phase"]: s for s in self.doc["dryRunPlan"]["plan"]}

    def file(self, host_path: str) -> Path:
        return self.kept / host_path.lstrip("/")


def _closed_port() -> int:
    """A loopback port nothing listens on (bound briefly by the kernel's choice, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _plan_join(
    base: Path,
    *extra: str,
    discovery: list[str] | None = None,
    endpoint: str = "",
    planted: dict[str, str] | None = None,
) -> Planned:
    """``bootstrap join --dry-run`` into a fresh rootfs (with ``planted`` files: relative path ->
    text); ``discovery`` replaces the token discovery flags, ``endpoint`` the closed loopback port
    chosen here."""
    rootfs, kept = base / "rootfs", base / "dry-run"
    rootfs.mkdir()
    (rootfs / "etc/kubernetes").mkdir(parents=True)
    (rootfs / "etc/kubernetes/keep.txt").write_text("the host's own file\n")
    for relative, text in (planted or {}).items():
        (rootfs / relative).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / relative).write_text(text)
    before = files_under(rootfs)
    config = base / "join.yaml"
    # Short discovery: nothing will answer, and the plan is what this test is about.
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"
        "nodeRegistration: {name: offline-b}\ntimeouts: {discovery: 1s}\n"
    )
    endpoint = endpoint or f"127.0.0.1:{_closed_port()}"
    if discovery is None:
        discovery = [endpoint, "--token", TOKEN, "--discovery-token-unsafe-skip-ca-verification"]
    args = [
        tool("bootstrap"), "join", *discovery, "--config", str(config),
        "--dry-run", "--rootfs", str(rootfs), "--ignore-preflight-errors", "all", "-o", "json", *extra,
    ]  # fmt: skip
    proc = run_dry_run_keeping(args, kept, timeout=120)
    doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return Planned(endpoint, proc.returncode, doc, proc.stderr, proc.stdout, kept, rootfs, before)


CONTROL_PLANE_FLAGS = ("--control-plane", "--certificate-key", KEY, "--apiserver-advertise-address", ADDRESS)


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planned]:
    yield _plan_join(tmp_path_factory.mktemp("offline-cp"), *CONTROL_PLANE_FLAGS)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planned]:
    yield _plan_join(tmp_path_factory.mktemp("offline-worker"))


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)


def kubeconfig_cluster(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    cluster: dict[str, Any] = doc["clusters"][0]["cluster"]
    return cluster


def test_a_control_plane_plan_without_a_cluster_exits_0_and_plans_every_phase(control_plane: Planned) -> None:
    assert control_plane.code == 0, control_plane.stderr
    assert control_plane.doc["ok"] and control_plane.doc["dryRun"]
    plan = control_plane.plan()
    # What stops a real run is still said first, and only there.
    assert plan["preflight"]["status"] == "would-fail"
    assert "the cluster is out of reach" in plan["preflight"]["wouldFail"]
    assert "connection refused" in plan["preflight"]["wouldFail"]
    later = {path: step for path, step in plan.items() if path != "preflight"}
    assert [p for p, s in later.items() if s["status"] in ("skipped", "would-fail")] == []
    assert {
        "control-plane-prepare/download-certs",
        "control-plane-prepare/certs/apiserver",
        "control-plane-prepare/kubeconfig/admin",
        "control-plane-prepare/control-plane/kube-apiserver",
        "kubelet-start",
        "etcd-join",
        "control-plane-join/mark-control-plane",
        "wait-control-plane",
    } <= set(later)
    assert plan["control-plane-prepare/download-certs"]["wouldChange"]
    assert "/etc/kubernetes/pki/ca.key" in plan["control-plane-prepare/download-certs"]["files"]


def test_the_node_checks_run_with_the_planned_settings(control_plane: Planned) -> None:
    preflight = next(p for p in control_plane.doc["phases"] if p["path"] == "preflight")
    messages = preflight["messages"]
    assert messages[0].startswith("Discovery: the cluster is out of reach")
    assert len(messages) > 1, messages  # init's checks of this node followed


def test_the_json_says_once_what_stood_in_and_why(control_plane: Planned, worker: Planned) -> None:
    stand_in = control_plane.doc["dryRunPlan"]["standIn"]
    assert "connection refused" in stand_in["reason"]
    assert set(stand_in["replaces"]) == {"cluster-ca", "cluster-settings", "shared-certificates"}
    assert set(worker.doc["dryRunPlan"]["standIn"]["replaces"]) == {"cluster-ca", "cluster-settings"}
    # ...and every outcome resting on it says so.
    for planned in (control_plane, worker):
        kubelet_start = next(p for p in planned.doc["phases"] if p["path"] == "kubelet-start")
        assert kubelet_start["messages"] and all("stand-in" in m for m in kubelet_start["messages"])


def test_the_nodes_apiserver_certificate_chains_to_the_stand_in_ca_with_its_address(
    control_plane: Planned,
) -> None:
    ca = control_plane.file("/etc/kubernetes/pki/ca.crt")
    cert = control_plane.file("/etc/kubernetes/pki/apiserver.crt")
    verified = openssl("verify", "-CAfile", str(ca), str(cert))
    assert verified.returncode == 0, verified.stderr
    front_proxy = openssl(
        "verify",
        "-CAfile",
        str(control_plane.file("/etc/kubernetes/pki/front-proxy-ca.crt")),
        str(control_plane.file("/etc/kubernetes/pki/front-proxy-client.crt")),
    )
    assert front_proxy.returncode == 0, front_proxy.stderr
    sans = openssl("x509", "-in", str(cert), "-noout", "-ext", "subjectAltName")
    assert sans.returncode == 0, sans.stderr
    assert f"IP Address:{ADDRESS}" in sans.stdout


def test_each_run_makes_its_own_ca(control_plane: Planned, worker: Planned) -> None:
    ca = control_plane.file("/etc/kubernetes/pki/ca.crt")
    assert ca.read_bytes() != worker.file("/etc/kubernetes/pki/ca.crt").read_bytes()
    other = openssl("verify", "-CAfile", str(worker.file("/etc/kubernetes/pki/ca.crt")), str(ca))
    assert other.returncode != 0


def test_the_manifests_render_as_valid_pods(control_plane: Planned) -> None:
    manifests = control_plane.doc["dryRunPlan"]["manifests"]
    assert set(MANIFESTS) <= set(manifests)
    # The schema of the Kubernetes version planned (etcd's image carries etcd's own version).
    image: str = yaml.safe_load(manifests["kube-apiserver.yaml"])["spec"]["containers"][0]["image"]
    version = schema_version(image.rsplit(":", 1)[1])
    for name in MANIFESTS:
        pod = yaml.safe_load(control_plane.file(f"/etc/kubernetes/manifests/{name}").read_text())
        assert yaml.safe_load(manifests[name]) == pod
        try:
            kubernetes_validate.validate(pod, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} is not a valid Pod for {version}: {exc}")


def test_the_kubeconfigs_carry_the_stand_in_ca(control_plane: Planned) -> None:
    ca = control_plane.file("/etc/kubernetes/pki/ca.crt").read_bytes()
    for name in ("admin.conf", "controller-manager.conf", "scheduler.conf", "bootstrap-kubelet.conf"):
        cluster = kubeconfig_cluster(control_plane.file(f"/etc/kubernetes/{name}"))
        assert base64.b64decode(cluster["certificate-authority-data"]) == ca, name
    # ControlPlaneKubeletLocalMode: the kubelet of a control-plane node bootstraps against its own API server.
    assert kubeconfig_cluster(control_plane.file("/etc/kubernetes/bootstrap-kubelet.conf"))["server"] == (
        f"https://{ADDRESS}:6443"
    )


def test_a_worker_plan_writes_the_kubelet_files_for_the_endpoint(worker: Planned) -> None:
    assert worker.code == 0, worker.stderr
    plan = worker.plan()
    assert plan["preflight"]["status"] == "would-fail"
    assert plan["kubelet-start"]["status"] == "ran" and plan["kubelet-start"]["wouldChange"]
    assert {
        "/etc/kubernetes/bootstrap-kubelet.conf",
        "/etc/kubernetes/pki/ca.crt",
        "/var/lib/kubelet/config.yaml",
        "/var/lib/kubelet/kubeadm-flags.env",
    } <= set(plan["kubelet-start"]["files"])
    cluster = kubeconfig_cluster(worker.file("/etc/kubernetes/bootstrap-kubelet.conf"))
    assert cluster["server"] == f"https://{worker.endpoint}"
    ca = worker.file("/etc/kubernetes/pki/ca.crt").read_bytes()
    assert base64.b64decode(cluster["certificate-authority-data"]) == ca
    assert openssl("x509", "-in", str(worker.file("/etc/kubernetes/pki/ca.crt")), "-noout").returncode == 0
    # A worker runs no control plane: those phases say why they are skipped, not that the cluster is away.
    assert plan["control-plane-prepare/download-certs"]["status"] == "skipped"


@pytest.mark.parametrize("kind", ["control_plane", "worker"])
def test_nothing_real_is_written_and_no_key_is_shown(request: pytest.FixtureRequest, kind: str) -> None:
    planned: Planned = request.getfixturevalue(kind)
    assert planned.code == 0, planned.stderr
    assert files_under(planned.rootfs) == planned.planted
    assert not (planned.rootfs / "var/lib/kube-bootstrap").exists()
    assert "PRIVATE KEY" not in planned.stdout + planned.stderr
    assert KEY not in planned.stdout + planned.stderr and TOKEN.split(".")[1] not in planned.stdout


def test_file_discovery_plans_against_the_server_the_file_names(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{_closed_port()}"
    discovery = tmp_path / "cluster.conf"  # no CA: cluster-info would have had to supply it
    discovery.write_text(
        f"apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'https://{endpoint}'}}\n"
        "contexts:\n- name: c\n  context: {cluster: c, user: ''}\ncurrent-context: c\n"
    )
    planned = _plan_join(
        tmp_path,
        discovery=["--discovery-file", str(discovery), "--tls-bootstrap-token", TOKEN],
        endpoint=endpoint,
    )
    assert planned.code == 0, planned.stderr
    assert planned.plan()["kubelet-start"]["status"] == "ran"
    assert kubeconfig_cluster(planned.file("/etc/kubernetes/bootstrap-kubelet.conf"))["server"] == (
        f"https://{endpoint}"
    )
    assert files_under(planned.rootfs) == planned.planted


def test_a_new_plan_keeps_the_etcd_manifests_certificate_generation(
    control_plane: Planned, tmp_path: Path
) -> None:
    """A join re-run after ``certs renew --restart`` (which annotated etcd's manifest to restart it)
    must not render the annotation away: that would rewrite the manifest and restart etcd once more."""
    manifest = "etc/kubernetes/manifests/etcd.yaml"
    annotated = with_annotation(control_plane.file("/" + manifest).read_text(), CERT_GENERATION, "7")

    again = _plan_join(tmp_path, *CONTROL_PLANE_FLAGS, planted={manifest: annotated})

    assert again.code == 0, again.stderr
    assert again.plan()["etcd-join"]["wouldChange"] is False, again.plan()["etcd-join"]
    assert again.file("/" + manifest).read_text() == annotated
