"""The component spec table and what reads it: rendering, the reader of pods on disk, the health
endpoints, preflight's port ownership, the reference check, reset.

The table's facts are checked against kubeadm's (reference §4), and every consumer is checked to
agree with what the renderer wrote, through the file on disk.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from bootstrap.components import COMPONENTS, podfile, spec
from bootstrap.components.pods import HostView
from bootstrap.components.references import manifest_files, referenced_files
from bootstrap.components.render import Manifest, components_for, render
from bootstrap.config import Config, HostFacts, load_config
from bootstrap.host import preflight_checks
from bootstrap.host.fs import Rootfs
from bootstrap.host.ledger import Ledger
from bootstrap.host.reset import plan_reset
from bootstrap.wait.health import endpoint_from_manifest, endpoint_from_pod
from tests.standin.harness import free_ports

NODE = "cp1"
ADDRESS = "10.0.0.1"
NO_HOST = HostView(dir_exists=lambda p: False, proxy_env={})


def load(version: str | None = None, **overrides: object) -> Config:
    values: dict[str, object] = {"node-name": NODE, "advertise-address": ADDRESS, **overrides}
    if version is not None:
        values["kubernetes-version"] = version
    return load_config(None, values, host=HostFacts(hostname=lambda: NODE, default_ipv4=lambda: ADDRESS))


def rendered(cfg: Config) -> dict[str, Manifest]:
    return {c: render(c, cfg, NO_HOST) for c in components_for(cfg)}


def written(directory: Path, manifests: dict[str, Manifest]) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for component, manifest in manifests.items():
        paths[component] = directory / manifest.filename
        paths[component].write_text(manifest.text)
    return paths


@pytest.fixture(scope="module")
def default() -> dict[str, Manifest]:
    return rendered(load())


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# --- the table ---------------------------------------------------------------------------------


def test_one_row_per_component_with_kubeadms_ports_and_kubeconfigs() -> None:
    assert COMPONENTS == ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
    ports = {name: {p.role: (p.default, p.flag) for p in row.ports} for name, row in spec.SPECS.items()}
    assert ports == {
        "etcd": {
            "client": (2379, "listen-client-urls"),
            "peer": (2380, "listen-peer-urls"),
            "metrics": (2381, "listen-metrics-urls"),
        },
        "kube-apiserver": {"secure": (6443, "secure-port")},
        "kube-controller-manager": {"secure": (10257, "secure-port")},
        "kube-scheduler": {"secure": (10259, "secure-port")},
    }
    assert {name: row.kubeconfig for name, row in spec.SPECS.items()} == {
        "etcd": None,
        "kube-apiserver": None,
        "kube-controller-manager": "/etc/kubernetes/controller-manager.conf",
        "kube-scheduler": "/etc/kubernetes/scheduler.conf",
    }
    for row in spec.SPECS.values():
        assert row.port(row.health.port) in row.ports, row.name


def paths(probes: spec.Probes) -> tuple[str, str | None, str]:
    readiness = probes.readiness.path if probes.readiness else None
    return probes.liveness.path, readiness, probes.startup.path


def test_scheduler_probes_change_at_v1_32() -> None:
    scheduler = spec.SPECS["kube-scheduler"]
    assert paths(scheduler.probes_for(31)) == ("/healthz", None, "/healthz")
    assert paths(scheduler.probes_for(32)) == ("/livez", "/readyz", "/livez")
    assert spec.SPECS["kube-controller-manager"].probes_for(35).readiness is None
    assert paths(spec.SPECS["etcd"].probes_for(35)) == ("/livez", "/readyz", "/readyz")


def test_every_component_probes_with_kubeadms_timings() -> None:
    for row in spec.SPECS.values():
        probes = row.probes_for(35)
        assert probes.liveness.timings == spec.Timings(initial_delay=10, timeout=15, failure=8, period=10)
        if probes.readiness is not None:
            assert probes.readiness.timings == spec.Timings(initial_delay=0, timeout=15, failure=3, period=1)
        assert probes.startup.timings == spec.Timings(initial_delay=10, timeout=15, failure=None, period=10)


def test_health_address_takes_the_flags_the_table_names() -> None:
    etcd, apiserver = spec.SPECS["etcd"], spec.SPECS["kube-apiserver"]
    metrics = {"listen-metrics-urls": "https://[::1]:12381,http://10.0.0.1:2381"}
    assert etcd.health_address(metrics) == ("::1", 12381, "https")
    assert etcd.health_address({}) == (None, None, "http")
    flags = {"advertise-address": "10.0.0.9", "bind-address": "127.0.0.1", "secure-port": "7443"}
    assert apiserver.health_address(flags) == ("10.0.0.9", 7443, "https")
    assert apiserver.health_address({"secure-port": "many"}) == (None, None, "https")


def test_listeners_use_the_components_own_defaults_for_absent_flags() -> None:
    # etcd's metrics port is not checked by preflight (kubeadm checks 2379 and 2380 only).
    assert spec.SPECS["etcd"].listeners({}) == {2379: ["127.0.0.1"], 2380: ["127.0.0.1"]}
    assert spec.SPECS["kube-scheduler"].listeners({"bind-address": "[fd00::1]"}) == {10259: ["fd00::1"]}


def test_our_pod_is_named_and_labelled_after_its_component() -> None:
    def pod(name: str, component: str) -> dict[str, object]:
        labels = {"component": component, "tier": "control-plane"}
        return {"kind": "Pod", "metadata": {"name": name, "labels": labels}}

    assert spec.our_component(pod("etcd", "etcd")) == "etcd"
    assert spec.our_component(pod("kube-proxy", "kube-proxy")) is None
    assert spec.our_component(pod("etcd", "kube-apiserver")) is None
    assert spec.our_component(None) is None


# --- rendering consumes the table --------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1.31.4", "v1.35.0"])
def test_rendered_probes_are_the_tables(version: str) -> None:
    cfg = load(version)
    minor = int(version.split(".")[1])
    threshold = 24  # the default 4m health-check timeout over the startup probe's 10s period
    for component, manifest in rendered(cfg).items():
        container = manifest.pod["spec"]["containers"][0]
        probes = spec.SPECS[component].probes_for(minor)
        expected = {"livenessProbe": probes.liveness, "readinessProbe": probes.readiness}
        expected["startupProbe"] = probes.startup
        for kind, check in expected.items():
            if check is None:
                assert kind not in container, component
                continue
            probe = container[kind]
            assert probe["httpGet"]["path"] == check.path, (component, kind)
            assert probe["periodSeconds"] == check.timings.period
            assert probe["timeoutSeconds"] == check.timings.timeout
            assert probe.get("initialDelaySeconds", 0) == check.timings.initial_delay
            assert probe["failureThreshold"] == (check.timings.failure or threshold)
        named = container["livenessProbe"]["httpGet"]["port"] == spec.PROBE_PORT_NAME
        assert named == (minor >= 34), component
        labels = manifest.pod["metadata"]["labels"]
        assert labels == {"component": component, "tier": spec.CONTROL_PLANE_TIER}


def test_the_manifest_keeps_the_flags_it_was_rendered_from(default: dict[str, Manifest]) -> None:
    for component, manifest in default.items():
        command = manifest.pod["spec"]["containers"][0]["command"]
        assert command == [component, *(f"--{n}={v}" for n, v in manifest.flags)]


# --- the reader, and the consumers of a manifest on disk ---------------------------------------


def test_the_reader_gets_back_what_was_rendered(tmp_path: Path, default: dict[str, Manifest]) -> None:
    for component, path in written(tmp_path, default).items():
        pod = podfile.our_manifest(component, path)
        assert pod is not None, component
        assert podfile.pod_flags(pod) == default[component].flags
        assert podfile.declared_pod_name(path) == component
        assert sorted(referenced_files(pod)) == sorted(manifest_files(default[component].inputs))
        assert preflight_checks.listeners(component, pod) == spec.SPECS[component].listeners(
            dict(default[component].flags)
        )


def test_the_reader_takes_json_and_refuses_what_is_not_ours(tmp_path: Path) -> None:
    json_pod = tmp_path / "etcd.json"
    json_pod.write_text('{"kind": "Pod", "metadata": {"name": "etcd"}}')
    assert podfile.declared_pod_name(json_pod) == "etcd"
    assert podfile.our_manifest("etcd", json_pod) is None  # no labels: someone else's
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Pod\nmetadata: [unclosed\n")
    assert podfile.load_pod(broken) is None
    assert podfile.our_manifest("etcd", tmp_path / "absent.yaml") is None
    assert podfile.pod_flags(
        {"spec": {"containers": [{"command": ["x", "y", "--a=1"], "args": ["-b"]}]}}
    ) == [
        ("a", "1"),
        ("b", ""),
    ]


def test_health_endpoints_of_the_default_manifests(tmp_path: Path, default: dict[str, Manifest]) -> None:
    urls = {
        c: (endpoint_from_manifest(c, p).url, endpoint_from_manifest(c, p).verify)
        for c, p in written(tmp_path, default).items()
    }
    assert urls == {
        "etcd": ("http://127.0.0.1:2381/readyz", False),
        "kube-apiserver": (f"https://{ADDRESS}:6443/readyz", True),
        "kube-controller-manager": ("https://127.0.0.1:10257/healthz", False),
        "kube-scheduler": ("https://127.0.0.1:10259/readyz", False),
    }


def test_health_endpoint_of_a_pod_without_probes_comes_from_its_flags() -> None:
    def pod(*command: str) -> dict[str, object]:
        return {"spec": {"containers": [{"command": list(command)}]}}

    scheduler = endpoint_from_pod("kube-scheduler", pod("s", "--bind-address=0.0.0.0", "--secure-port=11259"))
    assert (scheduler.url, scheduler.verify) == ("https://127.0.0.1:11259/healthz", False)
    etcd = endpoint_from_pod("etcd", pod("etcd", "--listen-metrics-urls=http://[::1]:12381"))
    assert etcd.url == "http://[::1]:12381/readyz"
    assert endpoint_from_pod("kube-apiserver", pod("a")).url == "https://127.0.0.1:6443/readyz"


# --- preflight's port ownership ----------------------------------------------------------------


def test_planned_listeners_merge_components_sharing_a_port() -> None:
    planned = preflight_checks.planned_listeners(
        {
            "etcd": [
                ("listen-client-urls", "https://127.0.0.1:2379"),
                ("listen-peer-urls", "https://10.0.0.1:2380"),
            ],
            "kube-apiserver": [("secure-port", "2379"), ("bind-address", "10.0.0.1")],
        }
    )
    assert planned == {
        2379: (["127.0.0.1", "10.0.0.1"], ["etcd", "kube-apiserver"]),
        2380: (["10.0.0.1"], ["etcd"]),
    }


def test_a_taken_port_is_ours_only_when_our_manifest_binds_it(tmp_path: Path, listening: int) -> None:
    cfg = load(**{"apiserver-bind-port": listening})
    manifests = rendered(cfg)
    flags = {c: m.flags for c, m in manifests.items()}
    # Bound on loopback so that the check sees the test's listener.
    flags["kube-apiserver"] = [*flags["kube-apiserver"], ("bind-address", "127.0.0.1")]
    (kubelet_port,) = free_ports(1)
    kubelet = {"port": kubelet_port, "address": "127.0.0.1"}

    def run(name: str) -> str | None:
        checks = preflight_checks.port_checks(flags, lambda c: tmp_path / f"{c}.yaml", kubelet, lambda: False)
        assert [c.name for c in checks][-1] == f"Port-{kubelet_port}"
        return next(c for c in checks if c.name == name).run()

    assert run(f"Port-{listening}") == f"Port {listening} is in use"
    (tmp_path / "kube-apiserver.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n"  # our name, not our labels
    )
    assert run(f"Port-{listening}") == f"Port {listening} is in use"
    written(tmp_path, {"kube-apiserver": manifests["kube-apiserver"]})
    assert run(f"Port-{listening}") is None
    assert preflight_checks.held_by_our_pod(["kube-apiserver"], listening, lambda c: tmp_path / f"{c}.yaml")
    assert not preflight_checks.held_by_our_pod(["kube-apiserver"], 1, lambda c: tmp_path / f"{c}.yaml")
    assert not preflight_checks.held_by_our_pod(["etcd"], listening, lambda c: tmp_path / f"{c}.yaml")


def test_kubelet_listener_defaults() -> None:
    assert preflight_checks.kubelet_listener(None) == (10250, "0.0.0.0")
    assert preflight_checks.kubelet_listener({"port": 11250, "address": "127.0.0.1"}) == (11250, "127.0.0.1")
    assert preflight_checks.kubelet_listener({"port": "11250", "address": 7}) == (10250, "0.0.0.0")


def test_etcd_owns_its_data_dir_only_through_our_manifest(
    tmp_path: Path, default: dict[str, Manifest]
) -> None:
    path = written(tmp_path, {"etcd": default["etcd"]})["etcd"]
    owns = partial(preflight_checks.etcd_owns_data_dir, path)
    assert owns("/var/lib/etcd/")
    assert not owns("/srv/etcd")
    path.write_text(path.read_text().replace("tier: control-plane", "tier: other"))
    assert not owns("/var/lib/etcd")


# --- reset -------------------------------------------------------------------------------------


def test_reset_plans_our_manifests_from_the_ledger(tmp_path: Path, default: dict[str, Manifest]) -> None:
    fs = Rootfs(tmp_path)
    directory = tmp_path / "etc/kubernetes/manifests"
    written(directory, default)
    foreign = directory / "kube-proxy.yaml"
    foreign.write_text(default["kube-scheduler"].text.replace("kube-scheduler", "kube-proxy"))
    ledger = Ledger(fs)
    for name in [*(m.filename for m in default.values()), foreign.name]:
        ledger.record(directory / name, "file")
    plan = plan_reset(fs)
    assert sorted(plan.components) == sorted(default)
    assert plan.etcd_data == "/var/lib/etcd"
    assert "/etc/kubernetes/manifests/kube-proxy.yaml" in plan.files
