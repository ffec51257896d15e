"""The kubelet stand-in behaves like the kubelet, as seen through the official client with admin.conf."""

from __future__ import annotations

import logging
import shutil
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.standin.harness import (
    MANIFESTS,
    NODE,
    Ports,
    admin_client,
    prepare_rootfs,
    running_control_plane,
)
from tests.standin.kubelet import Scenario, probe_endpoints
from tests.tools import wait_for

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
INSECURE = ssl.create_default_context()
INSECURE.check_hostname = False
INSECURE.verify_mode = ssl.CERT_NONE


# ---- fixtures and helpers ----


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ports]:
    """One ``bootstrap init`` per module (free ports); each test runs a copy."""
    root = tmp_path_factory.mktemp("template") / "rootfs"
    return root, prepare_rootfs(root)


@pytest.fixture
def rootfs(template: tuple[Path, Ports], tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    shutil.copytree(template[0], root, symlinks=True)
    return root


@pytest.fixture
def ports(template: tuple[Path, Ports]) -> Ports:
    return template[1]


@pytest.fixture(autouse=True)
def no_leaked_threads(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every thread a test's stand-ins started has ended once the test is over (no leaked ports either)."""
    if "troubled" in request.fixturenames:  # module-scoped: checked when it ends
        yield
        return
    before = {t.ident for t in threading.enumerate()}
    yield
    wait_for(
        lambda: not [t for t in threading.enumerate() if t.ident not in before and t.is_alive()],
        timeout=5,
        what="the stand-ins' threads to end",
    )


class Cluster:
    """The API as a user sees it: the official client with admin.conf, TLS verified."""

    def __init__(self, rootfs: Path) -> None:
        from kubernetes import client

        self.rootfs = rootfs
        self.ports: Ports | None = None
        self.api_client = admin_client(rootfs)
        self.core: Any = client.CoreV1Api(self.api_client)  # Any: the models' Optional fields are set here

    def mirror(self, component: str) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.core.read_namespaced_pod(f"{component}-{NODE}", "kube-system", _request_timeout=3)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def events(self, name: str, namespace: str = "kube-system") -> list[Any]:
        return [
            e
            for e in self.core.list_namespaced_event(namespace, _request_timeout=3).items
            if e.involved_object.name == name
        ]

    def close(self) -> None:
        self.api_client.close()


def cluster(rootfs: Path) -> Cluster:
    c: Cluster = wait_for(lambda: Cluster(rootfs) if _api_up(rootfs) else None, what="the API")
    return c


def _api_up(rootfs: Path) -> bool:
    c = Cluster(rootfs)
    try:
        c.core.list_namespace(_request_timeout=1)
        return True
    finally:
        c.close()


def condition(pod: Any, kind: str) -> str | None:
    return next((c.status for c in pod.status.conditions or [] if c.type == kind), None)


def running_ready(pod: Any) -> bool:
    return pod is not None and pod.status.phase == "Running" and condition(pod, "Ready") == "True"


def container(pod: Any) -> Any:
    statuses = pod.status.container_statuses or []
    return statuses[0] if statuses else None


def waiting_reason(pod: Any) -> str | None:
    cs = container(pod) if pod is not None else None
    return cs.state.waiting.reason if cs is not None and cs.state.waiting is not None else None


def manifest(rootfs: Path, component: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((rootfs / MANIFESTS / f"{component}.yaml").read_text())
    return doc


def health_urls(rootfs: Path, component: str) -> list[str]:
    """The URLs the manifest's probes declare (named ports resolved), as the real kubelet probes them."""
    c = manifest(rootfs, component)["spec"]["containers"][0]
    return [
        f"{scheme.lower()}://{host}:{port}{path}"
        for (host, port, scheme), paths in probe_endpoints(c).items()
        for path in paths
    ]


def get(url: str) -> tuple[int, str]:
    """(status, body); raises URLError when nothing listens."""
    try:
        with urllib.request.urlopen(url, context=INSECURE, timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def refused(url: str) -> bool:
    try:
        get(url)
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)
    return False


def edit_command(rootfs: Path, component: str, flag: str) -> None:
    path = rootfs / MANIFESTS / f"{component}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["containers"][0]["command"].append(flag)
    path.write_text(yaml.safe_dump(doc))


# ---- the happy path ----


def test_success_runs_all_four_static_pods_with_kubelet_style_mirror_pods(rootfs: Path, ports: Ports) -> None:
    with running_control_plane(rootfs) as kubelet:
        c = cluster(rootfs)
        wait_for(lambda: all(running_ready(c.mirror(n)) for n in COMPONENTS), what="four Ready mirror pods")
        node = c.core.read_node(NODE)
        assert node.metadata.labels["kubernetes.io/hostname"] == NODE
        assert node.metadata.labels["kubernetes.io/os"] == "linux"
        assert condition(node, "Ready") == "True"
        assert {"type": "InternalIP", "address": "127.0.0.1"} in [a.to_dict() for a in node.status.addresses]
        for name in COMPONENTS:
            pod = c.mirror(name)
            ann = pod.metadata.annotations
            assert len(ann["kubernetes.io/config.hash"]) == 32
            assert ann["kubernetes.io/config.mirror"] == ann["kubernetes.io/config.hash"]
            assert ann["kubernetes.io/config.source"] == "file"
            assert ann["kubernetes.io/config.seen"].endswith("Z")
            (owner,) = pod.metadata.owner_references
            assert (owner.api_version, owner.kind, owner.name, owner.uid, owner.controller) == (
                "v1",
                "Node",
                NODE,
                node.metadata.uid,
                True,
            )
            assert pod.spec.node_name == NODE
            assert any(t.operator == "Exists" and t.effect == "NoExecute" for t in pod.spec.tolerations)
            cs = container(pod)
            assert (cs.name, cs.ready, cs.started, cs.restart_count) == (name, True, True, 0)
            assert cs.state.running is not None
            assert cs.image == manifest(rootfs, name)["spec"]["containers"][0]["image"]
            assert {condition(pod, k) for k in ("PodScheduled", "Initialized", "ContainersReady")} == {"True"}
            assert pod.status.host_ip == pod.status.pod_ip == "127.0.0.1"
            assert pod.status.start_time is not None
            reasons = [e.reason for e in c.events(pod.metadata.name)]
            assert {"Pulled", "Created", "Started"} <= set(reasons)
        # the health endpoints answer where the manifests' probes point, on the test's free ports
        urls = {n: health_urls(rootfs, n) for n in ("etcd", "kube-controller-manager", "kube-scheduler")}
        assert f"http://127.0.0.1:{ports.etcd_metrics}/readyz" in urls["etcd"]
        assert f"https://127.0.0.1:{ports.controller_manager}/healthz" in urls["kube-controller-manager"]
        assert f"https://127.0.0.1:{ports.scheduler}/livez" in urls["kube-scheduler"]
        for url in [u for us in urls.values() for u in us]:
            assert get(url) == (200, "ok"), url
        assert get(f"http://127.0.0.1:{ports.kubelet_healthz}/healthz") == (200, "ok")
        assert kubelet.api is not None and kubelet.api.url == f"https://127.0.0.1:{ports.apiserver}"
        c.close()


def test_kubelet_down_means_healthz_refused_and_components_stopped(rootfs: Path, ports: Ports) -> None:
    with running_control_plane(rootfs) as kubelet:
        healthz = f"http://127.0.0.1:{ports.kubelet_healthz}/healthz"
        etcd = f"http://127.0.0.1:{ports.etcd_metrics}/livez"
        wait_for(lambda: get(etcd)[0] == 200)
        assert get(healthz) == (200, "ok")
        kubelet.stop()
        assert refused(healthz)
        assert refused(etcd)
        assert refused(f"https://127.0.0.1:{ports.apiserver}/livez")
        assert kubelet.api is None


# ---- file changes ----


def test_changed_manifest_changes_the_hash_and_replaces_the_mirror_pod(rootfs: Path) -> None:
    with running_control_plane(rootfs):
        c = cluster(rootfs)
        old = wait_for(lambda: (p := c.mirror("kube-scheduler")) is not None and running_ready(p) and p)
        edit_command(rootfs, "kube-scheduler", "--v=2")

        def replaced() -> Any:
            pod = c.mirror("kube-scheduler")
            return pod is not None and pod.metadata.uid != old.metadata.uid and running_ready(pod) and pod

        new = wait_for(replaced, what="a new mirror pod")
        old_hash = old.metadata.annotations["kubernetes.io/config.hash"]
        new_hash = new.metadata.annotations["kubernetes.io/config.hash"]
        assert new_hash != old_hash
        assert new.metadata.annotations["kubernetes.io/config.mirror"] == new_hash
        assert "--v=2" in new.spec.containers[0].command
        assert (
            new.metadata.annotations["kubernetes.io/config.seen"]
            > old.metadata.annotations["kubernetes.io/config.seen"]
        )
        c.close()


def test_pickup_delay_keeps_the_old_pod_and_hash_for_a_while(rootfs: Path) -> None:
    with running_control_plane(rootfs, {"kube-controller-manager": Scenario(pickup_delay=0.8)}):
        c = cluster(rootfs)
        old = wait_for(
            lambda: (p := c.mirror("kube-controller-manager")) is not None and running_ready(p) and p
        )
        old_hash = old.metadata.annotations["kubernetes.io/config.hash"]
        edit_command(rootfs, "kube-controller-manager", "--v=2")
        time.sleep(0.4)
        assert (
            c.mirror("kube-controller-manager").metadata.annotations["kubernetes.io/config.hash"] == old_hash
        )
        wait_for(
            lambda: (
                c.mirror("kube-controller-manager").metadata.annotations["kubernetes.io/config.hash"]
                != old_hash
            ),
            what="the hash to change after pickup_delay",
        )
        c.close()


def test_apiserver_manifest_change_restarts_the_api_and_keeps_its_data(rootfs: Path) -> None:
    from kubernetes.client import V1ConfigMap

    with running_control_plane(rootfs) as kubelet:
        c = cluster(rootfs)
        c.core.create_namespaced_config_map("default", V1ConfigMap.from_dict({"metadata": {"name": "keep"}}))
        first = kubelet.api
        edit_command(rootfs, "kube-apiserver", "--v=2")
        wait_for(lambda: kubelet.api is not None and kubelet.api is not first, what="a new API server")
        c2 = cluster(rootfs)
        assert c2.core.read_namespaced_config_map("keep", "default").metadata.name == "keep"
        wait_for(lambda: "--v=2" in c2.mirror("kube-apiserver").spec.containers[0].command)
        c.close()
        c2.close()


def test_removed_manifest_stops_the_pod_and_deletes_its_mirror_pod(rootfs: Path, ports: Ports) -> None:
    with running_control_plane(rootfs):
        c = cluster(rootfs)
        wait_for(lambda: running_ready(c.mirror("kube-scheduler")))
        (rootfs / MANIFESTS / "kube-scheduler.yaml").unlink()
        wait_for(lambda: c.mirror("kube-scheduler") is None, what="the mirror pod to go")
        assert refused(f"https://127.0.0.1:{ports.scheduler}/livez")
        assert running_ready(c.mirror("etcd"))
        c.close()


def test_deleted_mirror_pod_comes_back_and_the_static_pod_keeps_running(rootfs: Path, ports: Ports) -> None:
    with running_control_plane(rootfs):
        c = cluster(rootfs)
        old = wait_for(lambda: (p := c.mirror("etcd")) is not None and running_ready(p) and p)
        c.core.delete_namespaced_pod("etcd-cp1", "kube-system")
        new = wait_for(
            lambda: (
                (p := c.mirror("etcd")) is not None
                and p.metadata.uid != old.metadata.uid
                and running_ready(p)
                and p
            ),
            what="the mirror pod to be recreated",
        )
        assert (
            new.metadata.annotations["kubernetes.io/config.hash"]
            == old.metadata.annotations["kubernetes.io/config.hash"]
        )
        assert get(f"http://127.0.0.1:{ports.etcd_metrics}/livez") == (200, "ok")
        assert container(new).restart_count == 0
        c.close()


def test_bak_file_is_run_like_the_real_kubelet_and_dot_file_is_not(rootfs: Path) -> None:
    d = rootfs / MANIFESTS
    for file, name in (("stray.yaml.bak", "stray"), (".hidden.yaml", "hidden")):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "kube-system"},
            "spec": {"containers": [{"name": name, "image": "registry.k8s.io/pause:3.10"}]},
        }
        (d / file).write_text(yaml.safe_dump(pod))
    (d / "notes.txt").write_text("not a pod: [")
    # a backup of a real manifest: same pod name, later in name order → rejected as a duplicate
    shutil.copy(d / "kube-scheduler.yaml", d / "kube-scheduler.yaml.bak")
    (d / "subdir").mkdir()
    (d / "subdir" / "nested.yaml").write_text((d / "stray.yaml.bak").read_text().replace("stray", "nested"))
    with running_control_plane(rootfs) as kubelet:
        c = cluster(rootfs)
        wait_for(lambda: running_ready(c.mirror("stray")), what="the .bak pod")
        wait_for(lambda: all(running_ready(c.mirror(n)) for n in COMPONENTS))
        assert c.mirror("hidden") is None
        assert c.mirror("nested") is None
        assert d / "notes.txt" in kubelet.errors
        assert "duplicate pod name" in kubelet.errors[d / "kube-scheduler.yaml.bak"]
        assert wait_for(lambda: [e for e in c.events(NODE, "default") if "notes.txt" in e.message])
        c.close()


# ---- scenarios ----


@pytest.fixture(scope="module")
def troubled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One control plane (its own ports) for three "broken component" scenarios, each test checks one."""
    root = tmp_path_factory.mktemp("troubled") / "rootfs"
    troubled_ports = prepare_rootfs(root)
    scenarios = {
        "etcd": Scenario(crash_loop_exit_code=3),
        "kube-scheduler": Scenario(image_pull_failure=True),
        "kube-controller-manager": Scenario(never_ready=True),
    }
    before = {t.ident for t in threading.enumerate()}
    with running_control_plane(root, scenarios):
        c = cluster(root)
        c.ports = troubled_ports
        yield c
        c.close()
    wait_for(lambda: not [t for t in threading.enumerate() if t.ident not in before], timeout=5)


def test_crash_loop_shows_back_off_exit_code_and_growing_restart_count(troubled: Cluster) -> None:
    c = troubled
    pod = wait_for(
        lambda: (
            (p := c.mirror("etcd")) is not None
            and container(p) is not None
            and container(p).restart_count >= 2
            and waiting_reason(p) == "CrashLoopBackOff"
            and p
        )
    )
    cs = container(pod)
    assert cs.state.waiting.reason == "CrashLoopBackOff"
    assert cs.last_state.terminated.exit_code == 3
    assert cs.last_state.terminated.message
    assert (cs.ready, pod.status.phase, condition(pod, "Ready")) == (False, "Running", "False")
    assert c.ports is not None
    assert refused(f"http://127.0.0.1:{c.ports.etcd_metrics}/livez")
    # between back-offs the exited container shows as terminated, as the kubelet reports it
    exited = wait_for(lambda: (t := container(c.mirror("etcd")).state.terminated) is not None and t)
    assert (exited.exit_code, exited.reason) == (3, "Error")
    backoff = wait_for(
        lambda: [
            e
            for e in c.events("etcd-cp1")
            if e.reason == "BackOff" and "Back-off restarting failed container" in e.message and e.count >= 2
        ],
        what="an aggregated BackOff event",
    )
    assert len(backoff) == 1 and backoff[0].type == "Warning"


def test_image_pull_failure_shows_image_pull_back_off_naming_the_image(
    troubled: Cluster, rootfs: Path
) -> None:
    c = troubled
    image = manifest(troubled.rootfs, "kube-scheduler")["spec"]["containers"][0]["image"]
    pod = wait_for(lambda: waiting_reason(p := c.mirror("kube-scheduler")) == "ImagePullBackOff" and p)
    assert image in container(pod).state.waiting.message
    assert pod.status.phase == "Pending"
    events = wait_for(
        lambda: (
            [e for e in c.events("kube-scheduler-cp1") if e.reason == "BackOff"]
            and c.events("kube-scheduler-cp1")
        )
    )
    assert any(
        e.reason == "Failed" and e.message.startswith(f'Failed to pull image "{image}": ') for e in events
    )
    assert any(e.reason == "BackOff" and e.message.startswith("Back-off pulling image") for e in events)


def test_never_ready_is_running_not_ready_and_health_answers_500(troubled: Cluster) -> None:
    c = troubled
    pod = wait_for(
        lambda: (p := c.mirror("kube-controller-manager")) is not None and p.status.phase == "Running" and p
    )
    assert condition(pod, "Ready") == "False"
    assert container(pod).state.running is not None
    (url,) = health_urls(troubled.rootfs, "kube-controller-manager")
    code, body = get(url)
    assert code == 500 and "failed" in body
    assert wait_for(
        lambda: [
            e
            for e in c.events("kube-controller-manager-cp1")
            if e.reason == "Unhealthy"
            and e.message == "Readiness probe failed: HTTP probe failed with statuscode: 500"
        ]
    )


def test_slow_start_is_pending_first_then_running_after_ready_delay(rootfs: Path, ports: Ports) -> None:
    scenarios = {"kube-scheduler": Scenario(start_delay=1.2, ready_delay=0.5)}
    with running_control_plane(rootfs, scenarios):
        c = cluster(rootfs)
        pod = wait_for(
            lambda: (p := c.mirror("kube-scheduler")) is not None and container(p) is not None and p
        )
        assert pod.status.phase == "Pending"
        assert waiting_reason(pod) == "ContainerCreating"
        assert refused(f"https://127.0.0.1:{ports.scheduler}/livez")
        pod = wait_for(lambda: (p := c.mirror("kube-scheduler")).status.phase == "Running" and p)
        assert condition(pod, "Ready") == "False"
        wait_for(lambda: running_ready(c.mirror("kube-scheduler")))
        assert get(f"https://127.0.0.1:{ports.scheduler}/livez") == (200, "ok")
        c.close()


def test_ignored_manifest_gets_no_mirror_pod_and_config_error_waits(rootfs: Path) -> None:
    scenarios = {"kube-scheduler": Scenario(ignore=True), "etcd": Scenario(config_error=True)}
    with running_control_plane(rootfs, scenarios):
        c = cluster(rootfs)
        wait_for(lambda: running_ready(c.mirror("kube-controller-manager")))
        assert waiting_reason(wait_for(lambda: c.mirror("etcd"))) == "CreateContainerConfigError"
        time.sleep(0.3)
        assert c.mirror("kube-scheduler") is None
        c.close()


def test_crash_after_is_healthy_then_crash_loops(rootfs: Path, ports: Ports) -> None:
    with running_control_plane(rootfs, {"kube-scheduler": Scenario(crash_after=1.0)}):
        c = cluster(rootfs)
        wait_for(lambda: running_ready(c.mirror("kube-scheduler")))
        assert get(f"https://127.0.0.1:{ports.scheduler}/livez") == (200, "ok")
        pod = wait_for(lambda: waiting_reason(p := c.mirror("kube-scheduler")) == "CrashLoopBackOff" and p)
        assert container(pod).last_state.terminated.exit_code == 1
        assert refused(f"https://127.0.0.1:{ports.scheduler}/livez")
        c.close()


def test_static_pods_keep_running_while_the_api_server_crash_loops(
    rootfs: Path, ports: Ports, caplog: pytest.LogCaptureFixture
) -> None:
    with running_control_plane(rootfs, {"kube-apiserver": Scenario(crash_after=1.5)}) as kubelet:
        c = cluster(rootfs)
        wait_for(lambda: running_ready(c.mirror("etcd")))
        wait_for(lambda: kubelet.api is None, what="the API server to crash")
        assert refused(f"https://127.0.0.1:{ports.apiserver}/livez")
        time.sleep(0.3)
        assert get(f"http://127.0.0.1:{ports.etcd_metrics}/livez") == (200, "ok")
        assert get(f"http://127.0.0.1:{ports.kubelet_healthz}/healthz") == (200, "ok")
        c.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "the kubelet retries quietly"


# ---- identity, configuration, restarts ----


def test_kubelet_config_paths_map_under_the_rootfs_and_node_name_comes_from_the_client_cert(
    rootfs: Path, ports: Ports
) -> None:
    from tests.standin.kubelet import KubeletStandin

    config = rootfs / "var/lib/kubelet/config.yaml"
    doc = yaml.safe_load(config.read_text())
    assert KubeletStandin(rootfs).static_pod_dir == rootfs / MANIFESTS
    doc.update(staticPodPath="/custom/pods", healthzPort=0)
    other = rootfs / "other-config.yaml"
    other.write_text(yaml.safe_dump(doc))
    (rootfs / "var/lib/kubelet/kubeadm-flags.env").write_text(
        'KUBELET_KUBEADM_ARGS="--hostname-override=wrong"\n'
    )
    kubelet = KubeletStandin(rootfs, kubelet_config=other)
    assert kubelet.static_pod_dir == rootfs / "custom/pods"
    assert kubelet.healthz_url is None  # healthzPort 0 disables it, as kubeadm's wait knows
    assert kubelet.node_name == NODE  # system:node:cp1 in kubelet.conf's client certificate
    assert KubeletStandin(rootfs).healthz_url == f"http://127.0.0.1:{ports.kubelet_healthz}/healthz"


def test_kubelet_restart_adopts_its_mirror_pods_and_the_api_keeps_its_data(rootfs: Path) -> None:
    with running_control_plane(rootfs) as first:
        c = cluster(rootfs)
        wait_for(lambda: all(running_ready(c.mirror(n)) for n in COMPONENTS))
        uids = {n: c.mirror(n).metadata.uid for n in COMPONENTS}
        node_uid = c.core.read_node(NODE).metadata.uid
        c.close()
    with running_control_plane(rootfs, apiserver_store=first.apiserver_store):
        c = cluster(rootfs)
        wait_for(lambda: all(running_ready(c.mirror(n)) for n in COMPONENTS))
        assert {n: c.mirror(n).metadata.uid for n in COMPONENTS} == uids
        assert c.core.read_node(NODE).metadata.uid == node_uid
        c.close()
