"""Config errors through the CLI: exit code 3, a message naming the field, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CliRunner, files_under

HEAD = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
INIT = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp1\n"

BAD_CONFIGS = {
    "bad advertise IP": (
        INIT + "localAPIEndpoint:\n  advertiseAddress: 10.0.0.300\n",
        "localAPIEndpoint.advertiseAddress",
    ),
    "bad CIDR": (HEAD + "networking:\n  serviceSubnet: 10.96.0.0/33\n", "networking.serviceSubnet"),
    "service subnet too large": (
        HEAD + "networking:\n  serviceSubnet: 10.96.0.0/8\n",
        "networking.serviceSubnet",
    ),
    "overlapping subnets": (
        HEAD + "networking:\n  serviceSubnet: 10.96.0.0/12\n  podSubnet: 10.100.0.0/16\n",
        "networking.podSubnet",
    ),
    "bad port": (INIT + "localAPIEndpoint:\n  bindPort: 70000\n", "localAPIEndpoint.bindPort"),
    "unknown field": (HEAD + "networkin:\n  dnsDomain: x\n", "networkin"),
    "wrong type": (INIT + "localAPIEndpoint:\n  bindPort: [6443]\n", "localAPIEndpoint.bindPort"),
    "bad DNS domain": (HEAD + "networking:\n  dnsDomain: Not_A_Domain\n", "networking.dnsDomain"),
    "bad SAN": (HEAD + "apiServer:\n  certSANs: ['bad san!']\n", "apiServer.certSANs"),
    "bad duration": (HEAD + "certificateValidityPeriod: 1year\n", "certificateValidityPeriod"),
    "unknown encryption algorithm": (HEAD + "encryptionAlgorithm: DSA-1024\n", "encryptionAlgorithm"),
    "relative certificatesDir": (HEAD + "certificatesDir: etc/pki\n", "certificatesDir"),
    "local and external etcd": (
        HEAD + "etcd:\n  local:\n    dataDir: /var/lib/etcd\n  external:\n    endpoints: [https://e:2379]\n"
        "    caFile: /e/ca.crt\n    certFile: /e/c.crt\n    keyFile: /e/c.key\n",
        "etcd",
    ),
    "bad YAML": (HEAD + "networking: [unclosed\n", "kubeadm.yaml:4:1: invalid YAML"),
    "wrong apiVersion": ("apiVersion: kubeadm.k8s.io/v1\nkind: ClusterConfiguration\n", "apiVersion"),
    "wrong kind": ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfig\n", "kind"),
    "extraArgs without name": (
        HEAD + "apiServer:\n  extraArgs:\n  - value: x\n",
        "apiServer.extraArgs[0].name",
    ),
    "bad kubernetesVersion": (HEAD + "kubernetesVersion: v1.12.0\n", "kubernetesVersion"),
    "bad controlPlaneEndpoint": (
        HEAD + "controlPlaneEndpoint: 'cp.example.com:99999'\n",
        "controlPlaneEndpoint",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_exits_3_naming_the_field_and_writes_nothing(
    cli: CliRunner, rootfs: Path, tmp_path: Path, case: str
) -> None:
    text, field = BAD_CONFIGS[case]
    config = tmp_path / "kubeadm.yaml"
    config.write_text(text)
    result = cli("init", "--config", str(config), "--rootfs", str(rootfs))
    assert result.code == 3, (result.stdout, result.stderr)
    assert field in result.stderr
    assert "Traceback" not in result.stderr
    assert files_under(rootfs) == []


def test_bad_flag_value_is_a_config_error_naming_flag_and_field(cli: CliRunner, rootfs: Path) -> None:
    result = cli(
        "init",
        "--rootfs",
        str(rootfs),
        "--service-cidr",
        "10.96.0.0/8",
        "--node-name",
        "cp1",
        "--advertise-address",
        "10.0.0.1",
    )
    assert result.code == 3
    assert "--service-cidr" in result.stderr and "networking.serviceSubnet" in result.stderr
    assert files_under(rootfs) == []


def test_missing_config_file_is_named(cli: CliRunner, rootfs: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = cli("init", "--config", str(missing), "--rootfs", str(rootfs))
    assert result.code == 3 and str(missing) in result.stderr
    assert files_under(rootfs) == []


def test_every_problem_of_a_file_is_reported_at_once(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "kubeadm.yaml"
    config.write_text(
        HEAD + "networking:\n  serviceSubnet: 10.96.0.0/8\n  dnsDomain: x_y\nencryptionAlgorithm: DSA\n"
    )
    result = cli("config", "validate", "--config", str(config))
    assert result.code == 3
    for field in ("networking.serviceSubnet", "networking.dnsDomain", "encryptionAlgorithm"):
        assert field in result.stderr


def test_printed_defaults_are_a_valid_config(cli: CliRunner, tmp_path: Path) -> None:
    result = cli("config", "print", "init-defaults", "--node-name", "cp1", "--advertise-address", "10.0.0.1")
    assert result.code == 0, result.stderr
    assert "kind: InitConfiguration" in result.stdout and "kind: ClusterConfiguration" in result.stdout
    assert "serviceSubnet: 10.96.0.0/12" in result.stdout
    config = tmp_path / "defaults.yaml"
    config.write_text(result.stdout)
    validated = cli("config", "validate", "--config", str(config))
    assert validated.code == 0, validated.stderr
    printed_again = cli(
        "config", "print", "init-defaults", "--node-name", "cp1", "--advertise-address", "10.0.0.1"
    )
    assert printed_again.stdout == result.stdout


def test_kubeadm_file_with_fields_we_do_not_act_on_warns_naming_them(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "kubeadm.yaml"
    config.write_text(HEAD + "featureGates:\n  NodeLocalCRISocket: true\ndns:\n  disabled: true\n")
    result = cli("config", "validate", "--config", str(config))
    assert result.code == 0, result.stderr
    assert "featureGates" in result.stderr
    assert "dns" not in result.stderr  # acted on: addon/coredns is skipped


JOIN_FILE = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
nodeRegistration:
  name: {name}
controlPlane:
  localAPIEndpoint:
    advertiseAddress: 10.0.0.2
"""


def test_a_join_configuration_without_discovery_is_valid_as_join_reads_it(
    cli: CliRunner, tmp_path: Path
) -> None:
    # The Ansible role keeps such a file per joining host; the endpoint and token come as join's flags.
    config = tmp_path / "join.yaml"
    config.write_text(JOIN_FILE.format(name="w1"))
    result = cli("config", "validate", "--config", str(config), "-o", "json")
    assert result.code == 0, result.stderr
    assert result.json()["ok"] is True and "valid (JoinConfiguration)" in result.stderr


def test_a_join_configuration_with_a_bad_field_is_refused_naming_it(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "join.yaml"
    config.write_text(JOIN_FILE.format(name="W_1"))
    result = cli("config", "validate", "--config", str(config))
    assert result.code == 3
    assert "nodeRegistration.name" in result.stderr and "discovery" not in result.stderr
