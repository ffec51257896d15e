"""`bootstrap phase wait-control-plane` against the kubelet and API server stand-ins.

Every scenario runs the real CLI as a subprocess (the stand-ins run in this process), so the wait
talks to the stand-in exactly as it would to a real control plane: HTTPS, client certificates,
list + watch through the official client.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest

from tests.standin.harness import (
    admin_client,
    bootstrap_command,
    prepare_rootfs,
    running_control_plane,
)
from tests.standin.kubelet import KubeletStandin, Scenario
from tests.tools import tool, wait_for

SETTLE = "1s"
# Long enough for the wait to build its API client and list the pods on a loaded 2-core machine
# (the client import alone has taken 4-8 s there); each failure test runs until this deadline.
DIAGNOSIS_TIMEOUT = "8s"


@dataclass
class Cluster:
    rootfs: Path
    config: Path

    def args(self, *extra: str) -> list[str]:
        return [
            *bootstrap_command(self.rootfs, self.config, "phase", "wait-control-plane", settle=SETTLE),
            *extra,
        ]


@dataclass
class WaitRun:
    code: int
    doc: dict[str, Any]
    stderr: str
    seconds: float

    def component(self, name: str) -> dict[str, Any]:
        details = wait_details(self.doc)
        return next(c for c in details["components"] if c["component"] == name)


def wait_details(doc: dict[str, Any]) -> dict[str, Any]:
    phase = next(p for p in doc["phases"] if p["path"] == "wait-control-plane")
    details: dict[str, Any] = phase["details"]
    return details


def run_wait(cluster: Cluster, *extra: str, timeout: str = "20s") -> WaitRun:
    start = time.monotonic()
    proc = subprocess.run(
        cluster.args("--timeout", timeout, *extra), capture_output=True, text=True, timeout=120
    )
    return WaitRun(proc.returncode, json.loads(proc.stdout), proc.stderr, time.monotonic() - start)


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    rootfs = tmp_path / "rootfs"
    prepare_rootfs(rootfs)
    return Cluster(rootfs, tmp_path / "rootfs-kubeadm.yaml")


@pytest.fixture
def healthy(cluster: Cluster) -> Iterator[KubeletStandin]:
    with running_control_plane(cluster.rootfs) as kubelet:
        yield kubelet


def test_healthy_control_plane_passes_with_every_component_checked(cluster: Cluster, healthy: object) -> None:
    run = run_wait(cluster)
    assert run.code == 0, run.stderr
    details = wait_details(run.doc)
    assert details["ok"] is True and details["kubeletHealthyAfterSeconds"] is not None
    names = sorted(c["component"] for c in details["components"])
    assert names == ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    for component in details["components"]:
        assert component["healthy"] and component["pod"] == "Running" and component["ready"]
        assert component["health"] == "ok"
        assert component["healthyAfterSeconds"] >= 1.0  # the settle window was honoured
    assert "[control-plane-check] kube-scheduler is healthy after" in run.stderr


def test_health_endpoints_come_from_the_manifests_on_disk(cluster: Cluster, healthy: object) -> None:
    manifest = (cluster.rootfs / "etc/kubernetes/manifests/kube-scheduler.yaml").read_text()
    port = next(a.split("=")[1] for a in manifest.split() if a.startswith("--secure-port="))
    run = run_wait(cluster)
    assert run.code == 0, run.stderr
    assert f"Checking kube-scheduler at https://127.0.0.1:{port}/readyz" in run.stderr


def test_a_crash_looping_component_fails_with_exit_code_and_likely_cause(cluster: Cluster) -> None:
    with running_control_plane(cluster.rootfs, {"kube-scheduler": Scenario(crash_loop_exit_code=2)}):
        run = run_wait(cluster, timeout=DIAGNOSIS_TIMEOUT)
    assert run.code == 5
    scheduler = run.component("kube-scheduler")
    assert scheduler["healthy"] is False
    diagnosis = scheduler["diagnosis"]
    text = "\n".join(diagnosis["details"])
    assert "CrashLoopBackOff" in text and "exit code 2" in text
    assert "exit code 2" in diagnosis["likelyCause"]
    assert "likely cause:" in run.stderr and "timed out" not in run.stderr
    assert run.component("kube-apiserver")["healthy"] is True


def test_an_image_pull_failure_names_the_image(cluster: Cluster) -> None:
    with running_control_plane(
        cluster.rootfs, {"kube-controller-manager": Scenario(image_pull_failure=True)}
    ):
        run = run_wait(cluster, timeout=DIAGNOSIS_TIMEOUT)
    assert run.code == 5
    diagnosis = run.component("kube-controller-manager")["diagnosis"]
    text = "\n".join(diagnosis["details"])
    assert "ImagePullBackOff" in text or "ErrImagePull" in text
    assert "registry.k8s.io/kube-controller-manager:" in diagnosis["likelyCause"]
    assert any(line.startswith("event: Warning Failed") for line in diagnosis["details"])


def test_a_component_that_never_gets_ready_shows_the_http_error(cluster: Cluster) -> None:
    with running_control_plane(cluster.rootfs, {"etcd": Scenario(never_ready=True)}):
        run = run_wait(cluster, timeout=DIAGNOSIS_TIMEOUT)
    assert run.code == 5
    etcd = run.component("etcd")
    assert etcd["health"].startswith("HTTP 500")
    assert "health endpoint fails (HTTP 500" in etcd["diagnosis"]["likelyCause"]


def test_a_container_config_error_is_explained(cluster: Cluster) -> None:
    with running_control_plane(cluster.rootfs, {"kube-scheduler": Scenario(config_error=True)}):
        run = run_wait(cluster, timeout=DIAGNOSIS_TIMEOUT)
    assert run.code == 5
    assert "cannot be configured" in run.component("kube-scheduler")["diagnosis"]["likelyCause"]


def test_a_manifest_the_kubelet_never_picks_up_is_diagnosed(cluster: Cluster) -> None:
    with running_control_plane(cluster.rootfs, {"kube-scheduler": Scenario(ignore=True)}):
        run = run_wait(cluster, timeout=DIAGNOSIS_TIMEOUT)
    assert run.code == 5
    diagnosis = run.component("kube-scheduler")["diagnosis"]
    assert "mirror pod kube-system/kube-scheduler-cp1: not found" in diagnosis["details"]
    assert "has not started a pod from" in diagnosis["likelyCause"]
    assert "kube-scheduler.yaml" in diagnosis["likelyCause"]


def test_kubelet_down_fails_fast_at_the_kubelet_check(cluster: Cluster) -> None:
    run = run_wait(cluster, timeout="2s")
    assert run.code == 5
    assert "the kubelet is not healthy" in run.doc["error"]["message"]
    assert "connection refused" in run.doc["error"]["message"]
    assert "journalctl -xeu kubelet" in run.stderr


def test_healthy_then_crashing_is_not_success(cluster: Cluster) -> None:
    scenario = {"kube-controller-manager": Scenario(crash_after=1.0)}
    with running_control_plane(cluster.rootfs, scenario):
        run = run_wait(cluster, "--settle", "3s", timeout="8s")
    assert run.code == 5
    kcm = run.component("kube-controller-manager")
    assert kcm["healthy"] is False
    assert kcm["restarts"] >= 1 or "CrashLoopBackOff" in "\n".join(kcm["diagnosis"]["details"])


def test_slow_start_is_waited_for(cluster: Cluster) -> None:
    with running_control_plane(cluster.rootfs, {"kube-scheduler": Scenario(start_delay=2.0)}):
        run = run_wait(cluster)
    assert run.code == 0, run.stderr
    assert run.component("kube-scheduler")["healthyAfterSeconds"] >= 2.0


def test_api_server_down_then_up_is_reported_then_passes(cluster: Cluster) -> None:
    # The API server comes up only once the wait has tried it and said so (not after a fixed delay,
    # which a slow start of the CLI on a busy machine could outlast).
    held = Scenario(start_delay=3600.0)
    refused = "API server not reachable yet: connection refused"
    with running_control_plane(cluster.rootfs, {"kube-apiserver": held}):
        proc = subprocess.Popen(cluster.args("--timeout", "60s"), stdout=PIPE, stderr=PIPE, text=True)
        assert proc.stderr is not None
        before = []
        for line in proc.stderr:
            before.append(line)
            if refused in line:
                held.start_delay = 0.0  # the container starts on the kubelet's next sync
                break
        _, after = proc.communicate(timeout=120)
    stderr = "".join(before) + after
    assert proc.returncode == 0, stderr
    assert refused in "".join(before)


def wait_while(
    cluster: Cluster, kubelet: KubeletStandin, disturb: Callable[[Any], None]
) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run the wait, call ``disturb(api)`` once it is watching, and return its result and the API."""
    proc = subprocess.Popen(
        cluster.args("--timeout", "30s", "--settle", "4s"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    api = wait_for(lambda: kubelet.api, what="the API server stand-in")
    try:
        wait_for(
            lambda: any("watch=true" in path for _, path, _ in list(api.request_log)),
            timeout=15,
            what="the wait to start watching",
        )
        disturb(api)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), api


def pod_lists(api: Any) -> int:
    return sum(
        1 for m, p, _ in list(api.request_log) if m == "GET" and "/pods?" in p and "watch=true" not in p
    )


def test_watch_gone_and_dropped_connections_are_relisted(cluster: Cluster, healthy: KubeletStandin) -> None:
    lists_before: list[int] = []

    def expire_and_drop(api: Any) -> None:
        lists_before.append(pod_lists(api))
        api.expire_watch_history()
        api.drop_watches()

    done, api = wait_while(cluster, healthy, expire_and_drop)
    assert done.returncode == 0, done.stderr
    assert lists_before and pod_lists(api) > lists_before[0]
    assert json.loads(done.stdout)["ok"] is True


def test_freshness_an_old_pod_still_running_after_a_rewrite_does_not_count(
    cluster: Cluster, tmp_path: Path
) -> None:
    # The kubelet keeps the old scheduler pod (healthy) for 3 s after the manifest changes.
    with running_control_plane(cluster.rootfs, {"kube-scheduler": Scenario(pickup_delay=3.0)}):
        _rewrite_scheduler_and_wait(cluster, tmp_path)


def _rewrite_scheduler_and_wait(cluster: Cluster, tmp_path: Path) -> None:
    assert run_wait(cluster).code == 0
    client = admin_client(cluster.rootfs)
    from kubernetes.client import CoreV1Api

    def scheduler_hash() -> str:
        pod = CoreV1Api(client).read_namespaced_pod("kube-scheduler-cp1", "kube-system")
        return str(pod.metadata.annotations["kubernetes.io/config.hash"])

    old_hash = scheduler_hash()
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        cluster.config.read_text().replace(
            "scheduler:\n  extraArgs:\n", 'scheduler:\n  extraArgs:\n  - name: v\n    value: "2"\n'
        )
    )
    start = time.monotonic()
    proc = subprocess.run(
        [
            tool("bootstrap"),
            "init",
            "--config",
            str(changed),
            "--rootfs",
            str(cluster.rootfs),
            "--skip-phases",
            "preflight,kubelet-start",
            "--settle",
            SETTLE,
            "--timeout",
            "30s",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    manifests = {p["path"]: p["changed"] for p in doc["phases"] if p["path"].startswith("manifests/")}
    assert manifests == {
        "manifests/etcd": False,
        "manifests/kube-apiserver": False,
        "manifests/kube-controller-manager": False,
        "manifests/kube-scheduler": True,
    }
    wait = wait_details(doc)
    scheduler = next(c for c in wait["components"] if c["component"] == "kube-scheduler")
    # The old pod was Running and Ready the whole time; only the new one may count.
    assert scheduler["healthyAfterSeconds"] >= 3.0
    assert time.monotonic() - start >= 3.0
    assert scheduler_hash() != old_hash


def test_dry_run_says_what_it_would_wait_for_and_returns_at_once(cluster: Cluster) -> None:
    start = time.monotonic()
    proc = subprocess.run(cluster.args("--dry-run"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 10
    assert "Would wait for the kubelet at http://127.0.0.1:" in proc.stderr
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert f"Would wait for mirror pod kube-system/{name}-cp1" in proc.stderr
    assert json.loads(proc.stdout)["phases"][-1]["status"] == "ran"


def test_api_server_restart_mid_watch_is_survived(cluster: Cluster, healthy: KubeletStandin) -> None:
    def restart(api: Any) -> None:
        api.stop()
        time.sleep(1.0)
        api.start()

    done, api = wait_while(cluster, healthy, restart)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    watches = [p for _, p, _ in list(api.request_log) if "watch=true" in p]
    assert len(watches) >= 2  # watched again after the restart
