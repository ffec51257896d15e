"""Bad configurations: each raises ConfigError naming the field path (and quoting the bad value)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.config import HostFacts, load_config
from bootstrap.errors import EXIT_INVALID_CONFIG, ConfigError

HOST = HostFacts(hostname=lambda: "cp1", default_ipv4=lambda: "192.0.2.10")
INIT = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
CLUSTER = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
KUBELET = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
KUBE_PROXY = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"

# (id, file text, expected fragments of the error message)
BAD_FILES: list[tuple[str, str, list[str]]] = [
    (
        "bad advertise IP",
        INIT + "localAPIEndpoint:\n  advertiseAddress: 10.0.0.300\n",
        ["localAPIEndpoint.advertiseAddress:", '"10.0.0.300"'],
    ),
    (
        "bad service CIDR",
        CLUSTER + "networking:\n  serviceSubnet: 10.96.0.0/33\n",
        ["networking.serviceSubnet:", '"10.96.0.0/33"'],
    ),
    (
        "service CIDR without prefix",
        CLUSTER + "networking:\n  serviceSubnet: 10.96.0.0\n",
        ["networking.serviceSubnet:", '"10.96.0.0"', "not a CIDR"],
    ),
    (
        "service subnet too large",
        CLUSTER + "networking:\n  serviceSubnet: 10.96.0.0/8\n",
        ['networking.serviceSubnet: "10.96.0.0/8" is too large (at most /12 for IPv4)'],
    ),
    (
        "IPv6 service subnet too large",
        CLUSTER + "networking:\n  serviceSubnet: fd00::/64\n",
        ["networking.serviceSubnet:", '"fd00::/64"', "at most /108 for IPv6"],
    ),
    (
        "two IPv4 service CIDRs",
        CLUSTER + "networking:\n  serviceSubnet: 10.96.0.0/16,10.97.0.0/16\n",
        ["networking.serviceSubnet:", '"10.96.0.0/16,10.97.0.0/16"', "dual-stack"],
    ),
    (
        "service and pod subnets overlap",
        CLUSTER + "networking:\n  serviceSubnet: 10.96.0.0/12\n  podSubnet: 10.100.0.0/16\n",
        ["networking.podSubnet:", '"10.100.0.0/16"', "overlaps", '"10.96.0.0/12"'],
    ),
    (
        "pod subnet smaller than node mask",
        CLUSTER + "networking:\n  podSubnet: 10.244.0.0/26\n",
        ["networking.podSubnet:", '"10.244.0.0/26"'],
    ),
    (
        "bad bind port",
        INIT + "localAPIEndpoint:\n  bindPort: 70000\n",
        ["localAPIEndpoint.bindPort:", "70000"],
    ),
    (
        "unknown field",
        CLUSTER + "networking:\n  serviceSubnet: 10.96.0.0/12\n  podCidr: 10.244.0.0/16\n",
        ["networking.podCidr:", "unknown field"],
    ),
    (
        "unknown top-level field",
        INIT + "nodeName: cp1\n",
        ["nodeName:", "unknown field"],
    ),
    (
        "wrong type",
        INIT + "localAPIEndpoint:\n  bindPort: '6443'\n",
        ["localAPIEndpoint.bindPort:", "expected an integer", '"6443"'],
    ),
    (
        "wrong type in a list item",
        CLUSTER + "apiServer:\n  extraArgs:\n  - name: 5\n    value: x\n",
        ["apiServer.extraArgs[0].name:", "expected a string"],
    ),
    (
        "v1beta3 map-form extraArgs",
        CLUSTER + "apiServer:\n  extraArgs:\n    audit-log-path: /var/log/a\n",
        ["apiServer.extraArgs:", "expected a list"],
    ),
    (
        "empty extraArg name",
        CLUSTER + "scheduler:\n  extraArgs:\n  - name: ''\n    value: x\n",
        ["scheduler.extraArgs[0].name:", "must not be empty"],
    ),
    (
        "bad DNS domain",
        CLUSTER + "networking:\n  dnsDomain: Cluster_Local\n",
        ["networking.dnsDomain:", '"Cluster_Local"'],
    ),
    (
        "bad node name",
        INIT + "nodeRegistration:\n  name: CP_1\n",
        ["nodeRegistration.name:", '"CP_1"'],
    ),
    (
        "bad SAN",
        CLUSTER + "apiServer:\n  certSANs: [ok.example.com, 'bad name!']\n",
        ["apiServer.certSANs[1]:", '"bad name!"'],
    ),
    (
        "bad etcd peer SAN",
        CLUSTER + "etcd:\n  local:\n    peerCertSANs: ['-bad-']\n",
        ["etcd.local.peerCertSANs[0]:", '"-bad-"'],
    ),
    (
        "bad duration",
        INIT + "timeouts:\n  kubeletHealthCheck: 4 minutes\n",
        ["timeouts.kubeletHealthCheck:", '"4 minutes"'],
    ),
    (
        "duration given as a number",
        CLUSTER + "certificateValidityPeriod: 8760\n",
        ["certificateValidityPeriod:", "8760"],
    ),
    (
        "zero timeout",
        INIT + "timeouts:\n  controlPlaneComponentHealthCheck: 0s\n",
        ["timeouts.controlPlaneComponentHealthCheck:", "positive"],
    ),
    (
        "unknown encryptionAlgorithm",
        CLUSTER + "encryptionAlgorithm: RSA-1024\n",
        ["encryptionAlgorithm:", '"RSA-1024"'],
    ),
    (
        "relative certificatesDir",
        CLUSTER + "certificatesDir: etc/kubernetes/pki\n",
        ["certificatesDir:", '"etc/kubernetes/pki"', "absolute"],
    ),
    (
        "relative etcd dataDir",
        CLUSTER + "etcd:\n  local:\n    dataDir: var/lib/etcd\n",
        ["etcd.local.dataDir:", '"var/lib/etcd"'],
    ),
    (
        "both local and external etcd",
        CLUSTER + "etcd:\n  local: {}\n  external:\n    endpoints: [https://10.0.0.5:2379]\n",
        ["etcd:", "mutually exclusive"],
    ),
    (
        "external etcd cert without key",
        CLUSTER
        + "etcd:\n  external:\n    endpoints: [https://10.0.0.5:2379]\n"
        + "    caFile: /etc/etcd/ca.crt\n    certFile: /etc/etcd/client.crt\n",
        ["etcd.external.keyFile:", "certFile"],
    ),
    (
        "external etcd http endpoint with TLS",
        CLUSTER + "etcd:\n  external:\n    endpoints: [http://10.0.0.5:2379]\n    caFile: /etc/etcd/ca.crt\n",
        ["etcd.external.endpoints[0]:", '"http://10.0.0.5:2379"', "https"],
    ),
    (
        "external etcd endpoint without scheme",
        CLUSTER + "etcd:\n  external:\n    endpoints: [10.0.0.5:2379]\n",
        ["etcd.external.endpoints[0]:", '"10.0.0.5:2379"'],
    ),
    (
        "external etcd relative caFile",
        CLUSTER + "etcd:\n  external:\n    endpoints: [https://e:2379]\n    caFile: ca.crt\n",
        ["etcd.external.caFile:", '"ca.crt"'],
    ),
    (
        "bad YAML",
        INIT + "localAPIEndpoint:\n  advertiseAddress: [10.0.0.1\n  bindPort: 6443\n",
        ["kubeadm.yaml:5:11: invalid YAML"],
    ),
    (
        "wrong apiVersion",
        "apiVersion: kubeadm.k8s.io/v1\nkind: InitConfiguration\n",
        ["document 1", '"kubeadm.k8s.io/v1"', '"InitConfiguration"'],
    ),
    (
        "wrong kind",
        INIT + "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfig\n",
        ["document 2", '"InitConfig"'],
    ),
    (
        "v1beta3 is not accepted",
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n",
        ["document 1", "kubeadm.k8s.io/v1beta3 ClusterConfiguration", "kubeadm config migrate"],
    ),
    (
        "two InitConfigurations",
        INIT + "---\n" + INIT,
        ["document 2", "at most one"],
    ),
    (
        "two KubeletConfigurations",
        INIT + "---\n" + KUBELET + "---\n" + KUBELET,
        ["document 3 (kubelet.config.k8s.io/v1beta1 KubeletConfiguration): a second", "at most one"],
    ),
    (
        "two KubeProxyConfigurations",
        INIT + "---\n" + KUBE_PROXY + "---\n" + KUBE_PROXY,
        ["document 3 (kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration): a second", "at most one"],
    ),
    (
        "document that is not a mapping",
        "- a\n- b\n",
        ["document 1", "expected a mapping"],
    ),
    (
        "bad kubernetesVersion",
        CLUSTER + "kubernetesVersion: banana\n",
        ["kubernetesVersion:", '"banana"'],
    ),
    (
        "unsupported kubernetesVersion",
        CLUSTER + "kubernetesVersion: v1.29.0\n",
        ["kubernetesVersion:", '"v1.29.0"', "v1.31 to v1.35"],
    ),
    (
        "bad bootstrap token",
        INIT + "bootstrapTokens:\n- token: ABCDEF.0123456789abcdef\n",
        ["bootstrapTokens[0].token:", '"ABCDEF.<redacted>"'],
    ),
    (
        "token ttl and expires together",
        INIT + "bootstrapTokens:\n- ttl: 1h\n  expires: '2030-01-01T00:00:00Z'\n",
        ["bootstrapTokens[0]:", "mutually exclusive"],
    ),
    (
        "bad controlPlaneEndpoint port",
        CLUSTER + "controlPlaneEndpoint: lb.example.com:99999\n",
        ["controlPlaneEndpoint:", '"lb.example.com:99999"'],
    ),
    (
        "bad imageRepository",
        CLUSTER + "imageRepository: 'Registry Example/k8s'\n",
        ["imageRepository:", '"Registry Example/k8s"'],
    ),
    (
        "criSocket not a unix URL",
        INIT + "nodeRegistration:\n  criSocket: tcp://10.0.0.1:1234\n",
        ["nodeRegistration.criSocket:", '"tcp://10.0.0.1:1234"'],
    ),
    (
        "bad imagePullPolicy",
        INIT + "nodeRegistration:\n  imagePullPolicy: Sometimes\n",
        ["nodeRegistration.imagePullPolicy:", '"Sometimes"'],
    ),
    (
        "unknown feature gate",
        CLUSTER + "featureGates:\n  MakeItFast: true\n",
        ["featureGates.MakeItFast:", '"MakeItFast"'],
    ),
    (
        "bad certificateKey",
        INIT + "certificateKey: xyz\n",
        ["certificateKey:", "hex"],
    ),
]


@pytest.mark.parametrize(("text", "fragments"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_config_raises_config_error_naming_the_field(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, {}, host=HOST)
    message = "\n".join(excinfo.value.problems)
    for fragment in fragments:
        assert fragment in message
    assert excinfo.value.exit_code == EXIT_INVALID_CONFIG


def test_pydantic_default_text_never_leaks(tmp_path: Path) -> None:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(INIT + "dryRun: 'yes'\nlocalAPIEndpoint:\n  bindPort: [1]\nbogus: 1\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, {}, host=HOST)
    message = excinfo.value.format_message()
    assert "pydantic" not in message and "Input should be" not in message and "Extra inputs" not in message
    assert {p.split(":")[0] for p in excinfo.value.problems} == {
        "dryRun",
        "localAPIEndpoint.bindPort",
        "bogus",
    }


def test_a_file_with_three_problems_reports_all_three(tmp_path: Path) -> None:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(
        INIT
        + "localAPIEndpoint:\n  advertiseAddress: not-an-ip\n  bindPort: 0\n"
        + "---\n"
        + CLUSTER
        + "networking:\n  serviceSubnet: 10.96.0.0/8\n"
        + "encryptionAlgorithm: DSA\n"
    )
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, {}, host=HOST)
    paths = [p.split(":")[0] for p in excinfo.value.problems]
    # bindPort 0 is Go's "unset" and defaults to 6443, as in kubeadm: three problems, not four
    assert paths == ["localAPIEndpoint.advertiseAddress", "networking.serviceSubnet", "encryptionAlgorithm"]
    assert "3 problems" in excinfo.value.format_message()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"service-cidr": "10.96.0.0/8"},
            '--service-cidr (networking.serviceSubnet): "10.96.0.0/8" is too large (at most /12 for IPv4)',
        ),
        ({"advertise-address": "nope"}, '--advertise-address (localAPIEndpoint.advertiseAddress): "nope"'),
        ({"apiserver-bind-port": 65536}, "--apiserver-bind-port (localAPIEndpoint.bindPort): 65536"),
        (
            {"apiserver-bind-port": "http"},
            "--apiserver-bind-port (localAPIEndpoint.bindPort): expected an integer",
        ),
        (
            {"apiserver-cert-extra-sans": ["ok", "b@d"]},
            '--apiserver-cert-extra-sans (apiServer.certSANs[1]): "b@d"',
        ),
        ({"kubernetes-version": "v1.20.0"}, '--kubernetes-version (kubernetesVersion): "v1.20.0"'),
        (
            {"pod-network-cidr": "10.96.0.0/16"},
            '--pod-network-cidr (networking.podSubnet): "10.96.0.0/16" overlaps',
        ),
        ({"cert-dir": "pki"}, '--cert-dir (certificatesDir): "pki" is not an absolute path'),
    ],
)
def test_bad_flag_errors_name_the_flag_and_the_field(overrides: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(None, overrides, host=HOST)
    assert any(p.startswith(expected) for p in excinfo.value.problems), excinfo.value.problems


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(tmp_path / "absent.yaml", {}, host=HOST)
    assert "absent.yaml" in excinfo.value.problems[0]


def test_unknown_override_key_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown override"):
        load_config(None, {"no-such-flag": "x"}, host=HOST)


def test_type_errors_in_one_document_do_not_hide_rule_violations_in_the_other(tmp_path: Path) -> None:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(INIT + "dryRun: 'yes'\n---\n" + CLUSTER + "networking:\n  dnsDomain: Bad_Domain\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, {}, host=HOST)
    assert [p.split(":")[0] for p in excinfo.value.problems] == ["dryRun", "networking.dnsDomain"]


def test_a_malformed_bootstrap_token_is_not_echoed_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(INIT + "bootstrapTokens:\n- token: abcdef.0123456789ABCDEF\n")
    with pytest.raises(ConfigError) as failed:
        load_config(path, {}, host=HOST)
    assert "0123456789ABCDEF" not in failed.value.format_message()
    assert "abcdef.<redacted>" in failed.value.format_message()
