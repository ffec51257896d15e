"""Behaviour of the config package on valid input: defaults, full files, flags, round trip, detection."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bootstrap.config import (
    ACTED_FIELDS,
    Config,
    HostFacts,
    default_config,
    dump_config,
    format_go_duration,
    load_config,
    parse_go_duration,
)
from bootstrap.config.netdefaults import default_route_interface, detect_default_ipv4

FAKE_HOST = HostFacts(hostname=lambda: "CP-Node1", default_ipv4=lambda: "192.0.2.10")
INIT_HEAD = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
CLUSTER_HEAD = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
NO_ROUTE_HOST = HostFacts(hostname=lambda: "cp1", default_ipv4=lambda: None)

FULL_V1BETA4 = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: abcdef.0123456789abcdef
  description: first node token
  ttl: 2h
  usages: [signing, authentication]
  groups: [system:bootstrappers:kubeadm:default-node-token]
dryRun: false
nodeRegistration:
  name: cp-1
  criSocket: unix:///run/containerd/containerd.sock
  taints:
  - key: node-role.kubernetes.io/control-plane
    effect: NoSchedule
  kubeletExtraArgs:
  - name: node-ip
    value: 10.0.0.11
  ignorePreflightErrors: [Swap]
  imagePullPolicy: Always
  imagePullSerial: false
localAPIEndpoint:
  advertiseAddress: 10.0.0.11
  bindPort: 8443
certificateKey: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
skipPhases: [addon/kube-proxy]
patches:
  directory: /etc/kubernetes/patches
timeouts:
  controlPlaneComponentHealthCheck: 10m
  kubeletHealthCheck: 4m0s
  kubernetesAPICall: 90s
  etcdAPICall: 2m
  tlsBootstrap: 5m
  discovery: 5m
  upgradeManifests: 5m
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: 1.33.4
clusterName: lab
controlPlaneEndpoint: cp.lab.example.com:6443
networking:
  serviceSubnet: 10.96.0.0/16
  podSubnet: 10.244.0.0/16
  dnsDomain: lab.local
certificatesDir: /etc/kubernetes/pki
imageRepository: registry.example.com:5000/k8s
apiServer:
  certSANs: [cp.lab.example.com, 10.0.0.100, "*.lab.example.com"]
  extraArgs:
  - name: audit-log-path
    value: /var/log/kubernetes/audit.log
  - name: feature-gates
    value: A=true
  - name: feature-gates
    value: B=false
  extraVolumes:
  - name: audit
    hostPath: /var/log/kubernetes
    mountPath: /var/log/kubernetes
    readOnly: false
    pathType: DirectoryOrCreate
  extraEnvs:
  - name: HTTPS_PROXY
    value: http://proxy:3128
  - name: POD_IP
    valueFrom:
      fieldRef: {fieldPath: status.podIP}
controllerManager:
  extraArgs:
  - name: node-cidr-mask-size
    value: "24"
scheduler: {}
etcd:
  local:
    dataDir: /var/lib/etcd
    imageRepository: registry.example.com:5000/k8s
    imageTag: 3.5.21-0
    extraArgs:
    - name: quota-backend-bytes
      value: "8589934592"
    serverCertSANs: [etcd.lab.example.com]
    peerCertSANs: [10.0.0.11]
dns:
  imageTag: v1.12.0
proxy:
  disabled: true
featureGates:
  NodeLocalCRISocket: true
encryptionAlgorithm: ECDSA-P256
certificateValidityPeriod: 2160h
caCertificateValidityPeriod: 87600h
"""

KUBELET_DOC = """\
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
maxPods: 250
"""


# kubeadm refuses a file without an InitConfiguration or ClusterConfiguration: tests of other kinds add it.
INIT_ONLY = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"


def write(tmp_path: Path, text: str, name: str = "kubeadm.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_no_file_gives_documented_defaults() -> None:
    cfg = load_config(None, {}, host=FAKE_HOST)
    c, i = cfg.cluster, cfg.init
    assert cfg.kubernetes_version == "v1.34.2"
    assert c.cluster_name == "kubernetes"
    assert c.networking.service_subnet == "10.96.0.0/12"
    assert c.networking.dns_domain == "cluster.local"
    assert c.networking.pod_subnet == ""
    assert cfg.cert_dir == "/etc/kubernetes/pki"
    assert c.image_repository == "registry.k8s.io"
    assert c.etcd.local is not None and c.etcd.local.data_dir == "/var/lib/etcd"
    assert not cfg.external_etcd
    assert c.encryption_algorithm == "RSA-2048"
    assert c.certificate_validity_period == timedelta(hours=8760)
    assert c.ca_certificate_validity_period == timedelta(hours=87600)
    assert cfg.bind_port == 6443
    assert cfg.node_name == "cp-node1"  # hostname lower-cased
    assert cfg.advertise_address == "192.0.2.10"
    assert i.node_registration.cri_socket == "unix:///var/run/containerd/containerd.sock"
    assert i.node_registration.image_pull_policy == "IfNotPresent"
    assert i.node_registration.taints is None  # None = default control-plane taint
    t = i.timeouts
    assert (t.control_plane_component_health_check, t.kubelet_health_check) == (timedelta(minutes=4),) * 2
    assert t.kubernetes_api_call == timedelta(minutes=1)
    assert t.etcd_api_call == timedelta(minutes=2)
    assert t.tls_bootstrap == t.discovery == t.upgrade_manifests == timedelta(minutes=5)
    assert len(i.bootstrap_tokens) == 1 and i.bootstrap_tokens[0].ttl == timedelta(hours=24)
    assert cfg.kubelet is None and cfg.kube_proxy is None
    assert cfg.warnings == []


def test_no_default_route_falls_back_to_loopback_with_a_warning() -> None:
    cfg = load_config(None, {}, host=NO_ROUTE_HOST)
    assert cfg.advertise_address == "127.0.0.1"
    assert any(w.startswith("localAPIEndpoint.advertiseAddress:") for w in cfg.warnings)


def test_full_realistic_v1beta4_file_is_accepted(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, FULL_V1BETA4), {}, host=FAKE_HOST)
    assert cfg.kubernetes_version == "v1.33.4"  # "1.33.4" normalised
    assert cfg.node_name == "cp-1"
    assert cfg.advertise_address == "10.0.0.11"
    assert cfg.bind_port == 8443
    assert cfg.cluster.api_server.cert_sans == ["cp.lab.example.com", "10.0.0.100", "*.lab.example.com"]
    assert [a.name for a in cfg.cluster.api_server.extra_args].count("feature-gates") == 2
    assert cfg.cluster.api_server.extra_envs[1].value_from == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert cfg.cluster.api_server.extra_volumes[0].path_type == "DirectoryOrCreate"
    assert cfg.init.timeouts.kubernetes_api_call == timedelta(seconds=90)
    assert cfg.init.bootstrap_tokens[0].token == "abcdef.0123456789abcdef"
    assert cfg.init.node_registration.taints is not None and len(cfg.init.node_registration.taints) == 1
    etcd = cfg.cluster.etcd.local
    assert etcd is not None and etcd.image_tag == "3.5.21-0" and etcd.peer_cert_sans == ["10.0.0.11"]


def test_fields_not_acted_on_are_warned_about_by_path(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, FULL_V1BETA4), {}, host=FAKE_HOST)
    warned = {w.split(":", 1)[0] for w in cfg.warnings}
    assert {
        "nodeRegistration.imagePullSerial",
        "featureGates.NodeLocalCRISocket",
        "patches.directory",
    } <= warned
    # nothing we act on is warned about (the addons use dns and proxy)
    assert not {"dns.imageTag", "proxy.disabled"} & warned
    assert "networking.podSubnet" not in warned and "timeouts" not in warned
    assert "certificateKey" not in warned  # upload-certs uses it


def test_acted_fields_list_names_the_core_fields() -> None:
    assert "ClusterConfiguration.networking.*" in ACTED_FIELDS
    assert "InitConfiguration.localAPIEndpoint.advertiseAddress" in ACTED_FIELDS


def test_kubelet_configuration_document_is_kept_as_a_dict(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, FULL_V1BETA4 + KUBELET_DOC), {}, host=FAKE_HOST)
    assert cfg.kubelet is not None
    assert cfg.kubelet["cgroupDriver"] == "systemd" and cfg.kubelet["maxPods"] == 250


def test_kube_proxy_configuration_is_kept_and_acted_on(tmp_path: Path) -> None:
    text = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n"
    cfg = load_config(write(tmp_path, text + "---\n" + INIT_ONLY), {}, host=FAKE_HOST)
    assert cfg.kube_proxy == {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "ipvs",
    }
    assert not any("KubeProxyConfiguration" in w for w in cfg.warnings)


def test_join_configuration_is_ignored_with_a_warning(tmp_path: Path) -> None:
    text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery: {}\n"
    cfg = load_config(write(tmp_path, text + "---\n" + INIT_ONLY), {}, host=FAKE_HOST)
    assert any("document 1" in w and "JoinConfiguration" in w for w in cfg.warnings)


def test_cluster_only_file_gets_init_defaults(tmp_path: Path) -> None:
    text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nclusterName: solo\n"
    cfg = load_config(write(tmp_path, text), {}, host=FAKE_HOST)
    assert cfg.cluster.cluster_name == "solo" and cfg.bind_port == 6443


def test_flags_override_the_file(tmp_path: Path) -> None:
    overrides: dict[str, object] = {
        "advertise-address": "10.0.0.99",
        "apiserver-bind-port": 7443,
        "node-name": "flag-node",
        "control-plane-endpoint": "lb.example.com",
        "service-cidr": "10.100.0.0/16",
        "pod-network-cidr": "192.168.0.0/16",
        "service-dns-domain": "flag.local",
        "cert-dir": "/srv/pki",
        "kubernetes-version": "v1.35.0",
        "apiserver-cert-extra-sans": ["extra.example.com", "10.1.1.1"],
    }
    cfg = load_config(write(tmp_path, FULL_V1BETA4), overrides, host=FAKE_HOST)
    assert (cfg.advertise_address, cfg.bind_port, cfg.node_name) == ("10.0.0.99", 7443, "flag-node")
    assert cfg.cluster.control_plane_endpoint == "lb.example.com"
    n = cfg.cluster.networking
    assert (n.service_subnet, n.pod_subnet, n.dns_domain) == ("10.100.0.0/16", "192.168.0.0/16", "flag.local")
    assert cfg.cert_dir == "/srv/pki"
    assert cfg.kubernetes_version == "v1.35.0"
    assert cfg.cluster.api_server.cert_sans == ["extra.example.com", "10.1.1.1"]


def test_none_flag_values_leave_the_file_value() -> None:
    cfg = load_config(None, {"node-name": None, "service-cidr": None}, host=FAKE_HOST)
    assert cfg.node_name == "cp-node1" and cfg.cluster.networking.service_subnet == "10.96.0.0/12"


@pytest.mark.parametrize(
    ("label", "version"),
    [("stable", "v1.35.0"), ("stable-1", "v1.35.0"), ("latest", "v1.35.0"), ("stable-1.34", "v1.34.2")],
)
def test_version_labels_resolve_offline_with_a_warning_naming_the_version(label: str, version: str) -> None:
    cfg = load_config(None, {"kubernetes-version": label}, host=FAKE_HOST)
    assert cfg.kubernetes_version == version
    assert any(label in w and version in w for w in cfg.warnings), cfg.warnings


def test_dump_then_load_reproduces_the_same_config(tmp_path: Path) -> None:
    original = load_config(write(tmp_path, FULL_V1BETA4 + KUBELET_DOC), {}, host=FAKE_HOST)
    dumped = dump_config(original)
    again = load_config(write(tmp_path, dumped, "dumped.yaml"), {}, host=NO_ROUTE_HOST)
    assert again.init == original.init
    assert again.cluster == original.cluster
    assert again.kubelet == original.kubelet
    assert dump_config(again) == dumped


def test_dump_uses_go_durations_and_list_form_extra_args() -> None:
    dumped = dump_config(load_config(None, {}, host=FAKE_HOST))
    assert "certificateValidityPeriod: 8760h0m0s" in dumped
    assert "caCertificateValidityPeriod: 87600h0m0s" in dumped
    assert "controlPlaneComponentHealthCheck: 4m0s" in dumped
    assert dumped.index("kind: InitConfiguration") < dumped.index("kind: ClusterConfiguration")
    assert "extraArgs" not in dumped  # empty lists are omitted


def test_dump_writes_extra_args_as_name_value_list(tmp_path: Path) -> None:
    dumped = dump_config(load_config(write(tmp_path, FULL_V1BETA4), {}, host=FAKE_HOST))
    assert "  - name: feature-gates\n    value: A=true\n" in dumped


def test_default_config_is_fully_defaulted_and_overridable() -> None:
    cfg = default_config(node_name="node", advertise_address="1.2.3.4", host=NO_ROUTE_HOST)
    assert isinstance(cfg, Config)
    assert (cfg.node_name, cfg.advertise_address) == ("node", "1.2.3.4")
    assert cfg.warnings == []  # nothing had to be guessed


def test_loading_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_V1BETA4)
    load_config(path, {}, host=FAKE_HOST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kubeadm.yaml"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8760h", timedelta(hours=8760)),
        ("4m0s", timedelta(minutes=4)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("1.5s", timedelta(seconds=1.5)),
        ("90s", timedelta(seconds=90)),
        ("0", timedelta(0)),
        ("-2m", timedelta(minutes=-2)),
        ("250us", timedelta(microseconds=250)),
    ],
)
def test_go_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize("text", ["", "4", "4 m", "m", "1d", "1h-2m", "h1", "4m0s ", "1.2.3s"])
def test_invalid_go_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(hours=8760), "8760h0m0s"),
        (timedelta(minutes=4), "4m0s"),
        (timedelta(hours=1, minutes=30), "1h30m0s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(0), "0s"),
        (timedelta(seconds=-90), "-1m30s"),
        (timedelta(microseconds=250), "250µs"),
    ],
)
def test_go_durations_print_like_go(value: timedelta, expected: str) -> None:
    assert format_go_duration(value) == expected


ROUTE_TABLE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth1\t00000000\t0102A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0
eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


def test_default_route_interface_is_the_lowest_metric_default_route() -> None:
    assert default_route_interface(ROUTE_TABLE) == "eth0"


def test_default_route_ignores_routes_that_are_down_or_not_default() -> None:
    down = ROUTE_TABLE.splitlines()[0] + "\neth9\t00000000\t0100000A\t0002\t0\t0\t0\t00000000\t0\t0\t0\n"
    assert default_route_interface(down) is None
    assert default_route_interface(ROUTE_TABLE.splitlines()[0] + "\n" + ROUTE_TABLE.splitlines()[3]) is None


def test_default_ipv4_reads_the_route_file_and_asks_the_interface(tmp_path: Path) -> None:
    route = write(tmp_path, ROUTE_TABLE, "route")
    asked: list[str] = []

    def address_of(iface: str) -> str | None:
        asked.append(iface)
        return "10.0.0.5"

    assert detect_default_ipv4(route, address_of) == "10.0.0.5"
    assert asked == ["eth0"]


def test_default_ipv4_is_none_without_a_route_file(tmp_path: Path) -> None:
    assert detect_default_ipv4(tmp_path / "missing", lambda _: "10.0.0.5") is None


def test_certificate_validity_longer_than_ca_validity_only_warns(tmp_path: Path) -> None:
    text = (
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
        "certificateValidityPeriod: 100000h\ncaCertificateValidityPeriod: 87600h\n"
    )
    cfg = load_config(write(tmp_path, text), {}, host=FAKE_HOST)
    assert any(w.startswith("certificateValidityPeriod:") for w in cfg.warnings)


def test_v1beta3_timeout_for_control_plane_is_accepted_with_a_warning(tmp_path: Path) -> None:
    text = CLUSTER_HEAD + "apiServer:\n  timeoutForControlPlane: 8m\n"
    cfg = load_config(write(tmp_path, text), {}, host=FAKE_HOST)
    assert any(
        w.startswith("apiServer.timeoutForControlPlane:") and "controlPlaneComponentHealthCheck" in w
        for w in cfg.warnings
    )


def test_cri_socket_without_scheme_gets_unix_scheme_with_a_warning(tmp_path: Path) -> None:
    text = INIT_HEAD + "nodeRegistration:\n  criSocket: /run/crio/crio.sock\n"
    cfg = load_config(write(tmp_path, text), {}, host=FAKE_HOST)
    assert cfg.init.node_registration.cri_socket == "unix:///run/crio/crio.sock"
    assert any(w.startswith("nodeRegistration.criSocket:") for w in cfg.warnings)


def test_dual_stack_subnets_are_accepted() -> None:
    cfg = load_config(
        None,
        {
            "service-cidr": "10.96.0.0/16,fd00:10:96::/112",
            "pod-network-cidr": "10.244.0.0/16,fd00:10:244::/56",
        },
        host=FAKE_HOST,
    )
    assert cfg.cluster.networking.pod_subnet == "10.244.0.0/16,fd00:10:244::/56"
