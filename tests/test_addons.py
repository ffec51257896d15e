"""The addon objects: valid API objects for every supported version, golden files, the Corefile, the
DNS Service address, the kube-proxy configuration, and the one image table behind them all."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bootstrap.addons.coredns import coredns_objects, corefile, corefile_drift, corefile_hash
from bootstrap.addons.kube_proxy import kube_proxy_objects, proxy_config
from bootstrap.components.images import cluster_images
from bootstrap.components.pods import HostView
from bootstrap.components.render import components_for, render
from bootstrap.components.versions import COREDNS_TAGS, ETCD_TAGS, PAUSE_TAGS
from bootstrap.config import Config, HostFacts, load_config
from bootstrap.config.dnsaddress import dns_service_ip
from bootstrap.config.model import SUPPORTED_MINORS
from bootstrap.errors import ConfigError
from tests.corefile_parser import CorefileError, parse
from tests.tools import tool

GOLDEN = Path(__file__).parent / "golden_addons"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
HOST = HostFacts(hostname=lambda: "cp1", default_ipv4=lambda: "10.0.0.1")

CUSTOMISED = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.0.0.1
nodeRegistration:
  name: cp1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.2
controlPlaneEndpoint: lb.corp.local:8443
imageRepository: registry.example.com/k8s
networking:
  dnsDomain: corp.local
  podSubnet: 10.244.0.0/16,fd00:10:244::/56
  serviceSubnet: 10.112.0.0/16,fd00:10:96::/112
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ipvs
ipvs:
  scheduler: rr
  strictARP: true
"""


def load(tmp_path: Path, text: str | None = None, **overrides: object) -> Config:
    path = None
    if text is not None:
        path = tmp_path / "kubeadm.yaml"
        path.write_text(text)
    flags = {"node-name": "cp1", "apiserver-advertise-address": "10.0.0.1", **overrides}
    return load_config(path, flags, host=HOST)


class _Readable(yaml.SafeDumper):
    """Multi-line strings (the Corefile, config.conf, kubeconfig.conf) as literal blocks, for review."""


_Readable.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
    ),
)


def addon_objects(cfg: Config) -> list[dict[str, Any]]:
    return coredns_objects(cfg) + kube_proxy_objects(cfg)


def by_kind(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


# ---- schema validity, every supported version -----------------------------------------------------


@pytest.mark.parametrize("minor", list(SUPPORTED_MINORS))
def test_every_addon_object_validates_strictly_for_its_version(tmp_path: Path, minor: int) -> None:
    for text in (None, CUSTOMISED.replace("v1.34.2", f"v1.{minor}.0")):
        cfg = load(tmp_path, text, **({"kubernetes-version": f"v1.{minor}.0"} if text is None else {}))
        objects = addon_objects(cfg)
        assert [o["kind"] for o in objects] == [
            "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Service",
            "ServiceAccount", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap", "DaemonSet",
        ]  # fmt: skip
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, f"1.{minor}.0", strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{obj['kind']} {obj['metadata']['name']} invalid for v1.{minor}: {exc}")


def test_the_schema_check_catches_a_wrong_field(tmp_path: Path) -> None:
    deployment = by_kind(addon_objects(load(tmp_path)), "Deployment", "coredns")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.34.0", strict=True)


# ---- golden files ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["default", "customised"])
def test_addon_objects_match_their_golden_file(tmp_path: Path, case: str) -> None:
    cfg = load(tmp_path, CUSTOMISED if case == "customised" else None)
    objects = addon_objects(cfg)
    text = yaml.dump_all(objects, Dumper=_Readable, sort_keys=False)
    assert list(yaml.safe_load_all(text)) == objects
    golden = GOLDEN / f"{case}.yaml"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), f"regenerate with UPDATE_GOLDEN=1 and review {golden}"


def test_customised_config_reaches_every_object(tmp_path: Path) -> None:
    objects = addon_objects(load(tmp_path, CUSTOMISED))
    service = by_kind(objects, "Service", "kube-dns")
    assert service["spec"]["clusterIP"] == "10.112.0.10"  # the primary (first) family
    coredns = by_kind(objects, "Deployment", "coredns")["spec"]["template"]["spec"]["containers"][0]
    assert coredns["image"] == "registry.example.com/k8s/coredns:v1.12.1"
    proxy_cm = by_kind(objects, "ConfigMap", "kube-proxy")
    config = yaml.safe_load(proxy_cm["data"]["config.conf"])
    assert config["mode"] == "ipvs" and config["ipvs"] == {"scheduler": "rr", "strictARP": True}
    assert config["clusterCIDR"] == "10.244.0.0/16,fd00:10:244::/56"
    assert config["clientConnection"]["kubeconfig"] == "/var/lib/kube-proxy/kubeconfig.conf"
    kubeconfig = yaml.safe_load(proxy_cm["data"]["kubeconfig.conf"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://lb.corp.local:8443"
    daemonset = by_kind(objects, "DaemonSet", "kube-proxy")["spec"]["template"]["spec"]
    assert daemonset["containers"][0]["image"] == "registry.example.com/k8s/kube-proxy:v1.34.2"
    assert daemonset["hostNetwork"] is True and daemonset["containers"][0]["securityContext"]["privileged"]
    assert daemonset["priorityClassName"] == "system-node-critical"
    assert daemonset["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert {v["name"] for v in daemonset["volumes"]} == {"kube-proxy", "xtables-lock", "lib-modules"}
    assert "corp.local" in by_kind(objects, "ConfigMap", "coredns")["data"]["Corefile"]


def test_coredns_deployment_carries_kubeadms_scheduling_facts(tmp_path: Path) -> None:
    deployment = by_kind(addon_objects(load(tmp_path)), "Deployment", "coredns")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 2 and spec["selector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in pod["tolerations"]
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    container = pod["containers"][0]
    assert container["securityContext"]["capabilities"] == {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["resources"]["limits"] == {"memory": "170Mi"}
    service = by_kind(addon_objects(load(tmp_path)), "Service", "kube-dns")
    assert [(p["port"], p["protocol"]) for p in service["spec"]["ports"]] == [
        (53, "UDP"),
        (53, "TCP"),
        (9153, "TCP"),
    ]


def test_kube_proxy_rbac_lets_bootstrappers_read_its_config_map(tmp_path: Path) -> None:
    objects = kube_proxy_objects(load(tmp_path))
    binding = by_kind(objects, "ClusterRoleBinding", "kubeadm:node-proxier")
    assert binding["roleRef"]["name"] == "system:node-proxier"
    role = by_kind(objects, "Role", "kube-proxy")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kube-proxy"], "verbs": ["get"]}
    ]
    subjects = by_kind(objects, "RoleBinding", "kube-proxy")["subjects"]
    assert subjects[0]["name"] == "system:bootstrappers:kubeadm:default-node-token"


# ---- the Corefile ------------------------------------------------------------------------------


@pytest.mark.parametrize("minor", list(SUPPORTED_MINORS))
def test_corefile_parses_and_holds_kubeadms_facts(tmp_path: Path, minor: int) -> None:
    cfg = load(tmp_path, None, **{"kubernetes-version": f"v1.{minor}.1", "service-dns-domain": "corp.local"})
    servers = parse(corefile(cfg))
    assert len(servers) == 1 and servers[0].keys == [".:53"]
    server = servers[0]
    kubernetes = server.plugin("kubernetes")
    assert kubernetes.args == ["corp.local", "in-addr.arpa", "ip6.arpa"]
    assert kubernetes.sub("pods")[0].args == ["insecure"]
    assert kubernetes.sub("fallthrough")[0].args == ["in-addr.arpa", "ip6.arpa"]
    assert server.plugin("forward").args == [".", "/etc/resolv.conf"]
    assert server.plugin("prometheus").args == [":9153"]
    assert server.plugin("health").sub("lameduck")[0].args == ["5s"]
    for name in ("errors", "ready", "loop", "reload", "loadbalance"):
        assert server.plugin(name).args == []
    cache = server.plugin("cache")
    assert cache.args == ["30"]
    skipped = {(d.name, *d.args) for d in cache.block}
    expected = {("disable", "success", "corp.local"), ("disable", "denial", "corp.local")}
    assert skipped == (expected if minor >= 32 else set())


@pytest.mark.parametrize(
    "text",
    [".:53 {\n    errors\n", ".:53 {\n    errros\n}\n", "errors\n", ".:53 {\n  cache 30 {\n}\n}\n}\n"],
)
def test_the_corefile_reader_refuses_broken_files(text: str) -> None:
    with pytest.raises(CorefileError):
        parse(text)


def test_corefile_drift_is_an_edit_since_our_last_write() -> None:
    ours = ".:53 {\n    errors\n}\n"
    mine = {"metadata": {"annotations": {"kube-bootstrap/corefile-sha256": corefile_hash(ours)}}}
    assert corefile_drift(None, "new") is None
    assert corefile_drift({**mine, "data": {"Corefile": "new"}}, "new") is None
    # Unedited but from an older rendering (say another dnsDomain): ours to replace.
    assert corefile_drift({**mine, "data": {"Corefile": ours}}, "new") is None
    edited = ours.replace("errors", "errors\n    log")
    assert corefile_drift({**mine, "data": {"Corefile": edited}}, "new") == edited
    # Written by someone else (no hash of ours) and different: kept.
    assert corefile_drift({"metadata": {}, "data": {"Corefile": ours}}, "new") == ours


# ---- the DNS Service address --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subnet", "address"),
    [
        ("10.96.0.0/12", "10.96.0.10"),
        ("10.112.0.0/28", "10.112.0.10"),
        ("172.16.5.64/26", "172.16.5.74"),
        ("fd00:10:96::/112", "fd00:10:96::a"),
        ("fd00:10:96::/124", "fd00:10:96::a"),
        ("10.96.0.0/16,fd00:10:96::/112", "10.96.0.10"),
        ("fd00:10:96::/112,10.96.0.0/16", "fd00:10:96::a"),
    ],
)
def test_dns_service_ip_is_the_tenth_address_of_the_primary_subnet(subnet: str, address: str) -> None:
    assert dns_service_ip(subnet) == address
    first = ipaddress.ip_network(subnet.split(",")[0])
    assert int(ipaddress.ip_address(address)) - int(first.network_address) == 10


@pytest.mark.parametrize("subnet", ["10.96.0.0/29", "10.96.0.8/30", "fd00::/125", "fd00::/125,10.96.0.0/16"])
def test_dns_service_ip_refuses_a_subnet_without_a_tenth_address(subnet: str) -> None:
    with pytest.raises(ValueError, match=r"networking\.serviceSubnet: .* at least 11"):
        dns_service_ip(subnet)


def test_the_kubelet_and_the_service_agree_on_the_dns_address(tmp_path: Path) -> None:
    from bootstrap.host.kubelet_config import kubelet_settings

    cfg = load(tmp_path, CUSTOMISED)
    kubelet = kubelet_settings(cfg, "/etc/kubernetes/manifests").document
    assert kubelet["clusterDNS"] == [
        by_kind(coredns_objects(cfg), "Service", "kube-dns")["spec"]["clusterIP"]
    ]
    assert kubelet["clusterDomain"] == "corp.local"


# ---- kube-proxy configuration ---------------------------------------------------------------------

PROXY_HEAD = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
INIT = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\n"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ("mdoe: ipvs\n", "KubeProxyConfiguration.mdoe", "unknown field"),
        ("ipvs:\n  schedular: rr\n", "KubeProxyConfiguration.ipvs.schedular", "unknown field"),
        ("mode: 3\n", "KubeProxyConfiguration.mode", "expected a string, got 3"),
        (
            "iptables:\n  masqueradeAll: yes please\n",
            "KubeProxyConfiguration.iptables.masqueradeAll",
            "true or false",
        ),
        ("conntrack:\n  maxPerCore: many\n", "KubeProxyConfiguration.conntrack.maxPerCore", "an integer"),
        ("configSyncPeriod: 15\n", "KubeProxyConfiguration.configSyncPeriod", "a duration"),
        ("ipvs: rr\n", "KubeProxyConfiguration.ipvs", "expected a mapping"),
        ("mode: userspace\n", "KubeProxyConfiguration.mode", "is not one of"),
        ("clusterCIDR: 10.244.0.0\n", "KubeProxyConfiguration.clusterCIDR", "not a CIDR"),
        ("bindAddress: everywhere\n", "KubeProxyConfiguration.bindAddress", "not an IP address"),
    ],
)
def test_a_bad_kube_proxy_configuration_is_refused_naming_the_field(
    tmp_path: Path, body: str, field: str, message: str
) -> None:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(INIT + PROXY_HEAD + body)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {}, host=HOST)
    assert any(p.startswith(f"{field}:") and message in p for p in caught.value.problems), (
        caught.value.problems
    )


def test_a_bad_kube_proxy_configuration_exits_3_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(INIT + PROXY_HEAD + "mode: ipvs\nipvs:\n  strictArp: true\n")
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    proc = subprocess.run(
        [tool("bootstrap"), "init", "--config", str(path), "--rootfs", str(rootfs), "--dry-run"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 3, proc.stderr
    assert "KubeProxyConfiguration.ipvs.strictArp: unknown field" in proc.stderr
    assert list(rootfs.iterdir()) == []


def test_users_kube_proxy_fields_win_and_a_differing_cluster_cidr_is_warned_about(tmp_path: Path) -> None:
    text = (
        INIT.replace("---\n", "")
        + "---\n"
        + "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
    )
    text += "networking:\n  podSubnet: 10.244.0.0/16\n---\n" + PROXY_HEAD
    text += "clusterCIDR: 10.200.0.0/16\nconntrack:\n  maxPerCore: 0\nclientConnection:\n  qps: 20\n"
    cfg = load(tmp_path, text)
    made = proxy_config(cfg)
    assert made.document["clusterCIDR"] == "10.200.0.0/16"
    assert made.document["conntrack"] == {"maxPerCore": 0}
    assert made.document["clientConnection"] == {
        "kubeconfig": "/var/lib/kube-proxy/kubeconfig.conf",
        "qps": 20,
    }
    assert any(w.startswith("KubeProxyConfiguration.clusterCIDR:") for w in made.warnings)


def test_an_ipv6_advertise_address_binds_kube_proxy_on_ipv6(tmp_path: Path) -> None:
    cfg = load(tmp_path, None, **{"apiserver-advertise-address": "fd00::1", "service-cidr": "fd00:96::/112"})
    assert proxy_config(cfg).document["bindAddress"] == "::"


# ---- the one image table ---------------------------------------------------------------------------


def test_the_version_table_covers_every_supported_minor_with_kubeadms_pins() -> None:
    assert set(ETCD_TAGS) == set(COREDNS_TAGS) == set(PAUSE_TAGS) == set(SUPPORTED_MINORS)
    # kubeadm's constants.go per release branch (see the versions.py docstring).
    assert COREDNS_TAGS == {31: "v1.11.3", 32: "v1.11.3", 33: "v1.12.0", 34: "v1.12.1", 35: "v1.13.1"}
    assert PAUSE_TAGS == {31: "3.10", 32: "3.10", 33: "3.10", 34: "3.10.1", 35: "3.10.1"}


@pytest.mark.parametrize("minor", list(SUPPORTED_MINORS))
def test_images_list_names_exactly_what_the_manifests_and_addons_run(tmp_path: Path, minor: int) -> None:
    cfg = load(tmp_path, None, **{"kubernetes-version": f"v1.{minor}.3"})
    host = HostView(dir_exists=lambda _: False, proxy_env={}, external_ca=False)
    running = {render(c, cfg, host).pod["spec"]["containers"][0]["image"] for c in components_for(cfg)}
    for obj in addon_objects(cfg):
        if obj["kind"] in ("Deployment", "DaemonSet"):
            running |= {c["image"] for c in obj["spec"]["template"]["spec"]["containers"]}
    listed = dict(cluster_images(cfg))
    assert listed.pop("pause") == f"registry.k8s.io/pause:{PAUSE_TAGS[minor]}"
    assert set(listed.values()) == running
    assert listed["coredns"] == f"registry.k8s.io/coredns/coredns:{COREDNS_TAGS[minor]}"
    assert listed["etcd"] == f"registry.k8s.io/etcd:{ETCD_TAGS[minor]}"


@pytest.mark.parametrize(
    ("cluster", "coredns"),
    [
        ("imageRepository: mirror.local/k8s\n", "mirror.local/k8s/coredns:v1.12.1"),
        ("dns:\n  imageRepository: dns.local/x\n  imageTag: v9.9.9\n", "dns.local/x/coredns:v9.9.9"),
        ("dns:\n  imageTag: v1.12.4\n", "registry.k8s.io/coredns/coredns:v1.12.4"),
    ],
)
def test_the_coredns_image_follows_kubeadms_repository_rules(
    tmp_path: Path, cluster: str, coredns: str
) -> None:
    cfg = load(tmp_path, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n" + cluster)
    assert dict(cluster_images(cfg))["coredns"] == coredns


def images_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("bootstrap"), "config", "images", "list", *args], capture_output=True, text=True
    )


def test_config_images_list_prints_every_image(tmp_path: Path) -> None:
    proc = images_cli("--kubernetes-version", "v1.33.2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "registry.k8s.io/kube-apiserver:v1.33.2",
        "registry.k8s.io/kube-controller-manager:v1.33.2",
        "registry.k8s.io/kube-scheduler:v1.33.2",
        "registry.k8s.io/kube-proxy:v1.33.2",
        f"registry.k8s.io/coredns/coredns:{COREDNS_TAGS[33]}",
        f"registry.k8s.io/pause:{PAUSE_TAGS[33]}",
        f"registry.k8s.io/etcd:{ETCD_TAGS[33]}",
    ]


def test_config_images_list_honours_the_config_and_prints_json(tmp_path: Path) -> None:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.35.0\n"
        "imageRepository: mirror.local/k8s\ndns:\n  disabled: true\nproxy:\n  disabled: true\n"
        "etcd:\n  external:\n    endpoints: [https://10.0.0.5:2379]\n    caFile: /e/ca.crt\n"
        "    certFile: /e/c.crt\n    keyFile: /e/c.key\n"
    )
    proc = images_cli("--config", str(path), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "ConfigImagesListResult" and doc["kubernetesVersion"] == "v1.35.0"
    assert doc["images"] == [
        "mirror.local/k8s/kube-apiserver:v1.35.0",
        "mirror.local/k8s/kube-controller-manager:v1.35.0",
        "mirror.local/k8s/kube-scheduler:v1.35.0",
        f"mirror.local/k8s/pause:{PAUSE_TAGS[35]}",
    ]


def test_config_images_list_refuses_an_unsupported_version() -> None:
    proc = images_cli("--kubernetes-version", "v1.29.0")
    assert proc.returncode == 3
    assert "kubernetesVersion" in proc.stderr and proc.stdout == ""


# ---- the applier's comparison of a defaulted spec -----------------------------------------------------


def test_a_spec_the_server_defaulted_still_covers_ours(tmp_path: Path) -> None:
    from bootstrap.cluster.apply import covers

    desired = by_kind(addon_objects(load(tmp_path)), "Service", "kube-dns")
    live = yaml.safe_load(yaml.safe_dump(desired))
    live["spec"].update({"type": "ClusterIP", "clusterIPs": ["10.96.0.10"], "sessionAffinity": "None"})
    live["metadata"]["resourceVersion"] = "7"
    assert covers(live, desired)
    live["spec"]["ports"][2]["port"] = 9154
    assert not covers(live, desired)
    live["spec"]["ports"] = live["spec"]["ports"][:2]
    assert not covers(live, desired)


def test_the_stand_in_api_server_allocates_service_addresses_like_the_real_one() -> None:
    from tests.standin.store import RESOURCES, ApiError, Store

    services = next(r for r in RESOURCES if r.name == "services")
    store = Store(service_cidrs=["10.96.0.0/12"])

    def service(name: str, address: str) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"clusterIP": address, "ports": [{"port": 53}]}}

    made = store.create(services, "kube-system", service("kube-dns", "10.96.0.10"))
    assert made["spec"]["clusterIPs"] == ["10.96.0.10"] and made["spec"]["ports"][0]["protocol"] == "TCP"
    for name, address, why in (
        ("taken", "10.96.0.10", "already allocated"),
        ("outside", "10.200.0.10", "not in the valid range"),
        ("garbage", "ten", "must be a valid IP address"),
    ):
        with pytest.raises(ApiError) as caught:
            store.create(services, "kube-system", service(name, address))
        assert caught.value.code == 422 and why in str(caught.value), name
    with pytest.raises(ApiError, match="immutable"):
        store.update(services, "kube-system", "kube-dns", service("kube-dns", "10.96.0.11"))


def test_init_help_lists_the_phases_in_kubeadms_order() -> None:
    help_text = subprocess.run([tool("bootstrap"), "init", "--help"], capture_output=True, text=True).stdout
    tree = help_text.split("Phases, in order", 1)[1]
    tops = [line.split()[0] for line in tree.splitlines()[1:] if line.startswith("  ") and line[2] != " "]
    # kubeadm init --help (v1.31-v1.35), its etcd and control-plane phases being our manifests.
    assert tops == [
        "preflight", "certs", "kubeconfig", "manifests", "kubelet-start", "wait-control-plane",
        "upload-config", "upload-certs", "mark-control-plane", "bootstrap-token", "kubelet-finalize",
        "addon", "show-join-command",
    ]  # fmt: skip
    assert "    /enable-client-cert-rotation" in tree and "    /coredns" in tree and "    /kube-proxy" in tree
