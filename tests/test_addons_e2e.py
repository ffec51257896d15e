"""The addons and kubelet-finalize after a real ``bootstrap init`` against the kubelet and API stand-ins:
what a client of the cluster sees, re-runs, skipping, dry runs and a Corefile edited in the cluster."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import AppsV1Api, CoreV1Api

from tests.corefile_parser import parse
from tests.standin.harness import admin_client, kubelet_once_configured
from tests.test_init_e2e import Node, make_node, run_init, statuses
from tests.tools import tool

NETWORKING = (
    "networking:\n  dnsDomain: corp.local\n  serviceSubnet: 10.112.0.0/16\n  podSubnet: 10.244.0.0/16\n"
)
PROXY_DOC = "---\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n"
ADDON_PHASES = ("kubelet-finalize/enable-client-cert-rotation", "addon/coredns", "addon/kube-proxy")


def customise(node: Node, cluster_extra: str = NETWORKING, docs: str = PROXY_DOC) -> None:
    text = node.config.read_text()
    text = text.replace("kind: ClusterConfiguration\n", "kind: ClusterConfiguration\n" + cluster_extra, 1)
    node.config.write_text(text + docs)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Node, dict[str, Any]]]:
    node = make_node(tmp_path)
    customise(node)
    with kubelet_once_configured(node.rootfs):
        code, doc, stderr = run_init(node)
        assert code == 0, stderr
        yield node, doc


def phase(doc: dict[str, Any], path: str) -> dict[str, Any]:
    return next(p for p in doc["phases"] if p["path"] == path)


def test_a_client_sees_the_addons_as_configured(cluster: tuple[Node, dict[str, Any]]) -> None:
    node, doc = cluster
    ran = statuses(doc)
    assert [ran[p] for p in ADDON_PHASES] == [("ran", True)] * 3
    order = [p["path"] for p in doc["phases"]]
    assert order.index("bootstrap-token") < order.index("kubelet-finalize/enable-client-cert-rotation")
    assert order.index("addon/kube-proxy") < order.index("show-join-command")
    api = admin_client(node.rootfs)
    core, apps = CoreV1Api(api), AppsV1Api(api)
    service = core.read_namespaced_service("kube-dns", "kube-system")
    assert service.spec.cluster_ip == str(ipaddress.ip_network("10.112.0.0/16")[10])
    assert [(p.port, p.protocol) for p in service.spec.ports] == [(53, "UDP"), (53, "TCP"), (9153, "TCP")]
    corefile = core.read_namespaced_config_map("coredns", "kube-system").data["Corefile"]
    assert parse(corefile)[0].plugin("kubernetes").args[0] == "corp.local"
    kubelet = yaml.safe_load((node.rootfs / "var/lib/kubelet/config.yaml").read_text())
    assert kubelet["clusterDNS"] == [service.spec.cluster_ip] and kubelet["clusterDomain"] == "corp.local"
    deployment = apps.read_namespaced_deployment("coredns", "kube-system")
    assert deployment.spec.replicas == 2
    proxy = core.read_namespaced_config_map("kube-proxy", "kube-system").data
    server = yaml.safe_load(proxy["kubeconfig.conf"])["clusters"][0]["cluster"]["server"]
    assert server == api.configuration.host  # the advertise address and port admin.conf uses
    config = yaml.safe_load(proxy["config.conf"])
    assert (config["mode"], config["clusterCIDR"]) == ("ipvs", "10.244.0.0/16")
    daemonset = apps.read_namespaced_daemon_set("kube-proxy", "kube-system")
    assert daemonset.spec.template.spec.host_network is True


def test_kubelet_conf_points_at_the_rotating_certificate(cluster: tuple[Node, dict[str, Any]]) -> None:
    node, _ = cluster
    kubelet_conf = yaml.safe_load((node.rootfs / "etc/kubernetes/kubelet.conf").read_text())
    user = kubelet_conf["users"][0]["user"]
    assert user == {
        "client-certificate": "/var/lib/kubelet/pki/kubelet-client-current.pem",
        "client-key": "/var/lib/kubelet/pki/kubelet-client-current.pem",
    }
    link = node.rootfs / "var/lib/kubelet/pki/kubelet-client-current.pem"
    assert link.is_symlink()


def test_a_rerun_changes_no_addon(cluster: tuple[Node, dict[str, Any]]) -> None:
    node, _ = cluster
    code, doc, stderr = run_init(node)
    assert code == 0, stderr
    ran = statuses(doc)
    assert [ran[p] for p in ADDON_PHASES] == [("ran", False)] * 3
    assert all("up to date" in m for m in phase(doc, "addon/coredns")["messages"])


def test_an_edited_corefile_is_kept_and_reported_unless_forced(cluster: tuple[Node, dict[str, Any]]) -> None:
    node, _ = cluster
    core = CoreV1Api(admin_client(node.rootfs))
    live = core.read_namespaced_config_map("coredns", "kube-system")
    edited = live.data["Corefile"].replace("    errors\n", "    errors\n    log\n")
    core.patch_namespaced_config_map("coredns", "kube-system", {"data": {"Corefile": edited}})

    code, doc, stderr = run_init(node)
    assert code == 0, stderr
    report = phase(doc, "addon/coredns")
    assert report["changed"] is False
    drift = report["details"]["corefileDrift"]
    assert drift["kept"] is True and "+    log" not in drift["diff"] and "-    log" in drift["diff"]
    assert any("Corefile was changed in the cluster" in w for w in doc["warnings"])
    assert core.read_namespaced_config_map("coredns", "kube-system").data["Corefile"] == edited

    code, doc, stderr = run_init(node, "--force-addons")
    assert code == 0, stderr
    report = phase(doc, "addon/coredns")
    assert report["changed"] is True and report["details"]["corefileDrift"]["kept"] is False
    assert core.read_namespaced_config_map("coredns", "kube-system").data["Corefile"] != edited
    code, doc, stderr = run_init(node)  # ours again: nothing to report
    assert code == 0 and "details" not in phase(doc, "addon/coredns"), stderr


def test_dry_run_lists_the_addon_objects_it_would_write(cluster: tuple[Node, dict[str, Any]]) -> None:
    node, _ = cluster
    apps = AppsV1Api(admin_client(node.rootfs))
    apps.delete_namespaced_daemon_set("kube-proxy", "kube-system")
    code, doc, stderr = run_init(node, "--dry-run")
    assert code == 0, stderr
    messages = phase(doc, "addon/kube-proxy")["messages"]
    assert "[dryrun] Would create DaemonSet kube-system/kube-proxy" in messages
    assert "[dryrun] ConfigMap kube-system/kube-proxy is up to date" in messages
    assert [o.metadata.name for o in apps.list_namespaced_daemon_set("kube-system").items] == []


def test_skip_phases_and_disabled_addons_install_nothing(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    customise(node, "dns:\n  disabled: true\n", "")
    with kubelet_once_configured(node.rootfs):
        code, doc, stderr = run_init(node, "--skip-phases", "addon/kube-proxy")
        assert code == 0, stderr
        api = admin_client(node.rootfs)
        daemonsets = AppsV1Api(api).list_namespaced_daemon_set("kube-system").items
        deployments = AppsV1Api(api).list_namespaced_deployment("kube-system").items
        services = CoreV1Api(api).list_namespaced_service("kube-system").items
    assert (daemonsets, deployments, services) == ([], [], [])
    reasons = {p["path"]: p.get("skipReason") for p in doc["phases"] if p["status"] == "skipped"}
    assert reasons["addon/coredns"] == "disabled in the config (dns.disabled)"
    assert reasons["addon/kube-proxy"] == "skipped by --skip-phases addon/kube-proxy"
    images = subprocess.run(
        [tool("bootstrap"), "config", "images", "list", "--config", str(node.config)],
        capture_output=True,
        text=True,
    )
    assert "coredns" not in images.stdout and "kube-proxy" in images.stdout, images.stderr
