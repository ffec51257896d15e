"""The five kubeconfigs, read back by the real kubectl, with the user identity checked by openssl."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
import yaml

from tests.conftest import ADDRESS, NODE, CliRunner
from tests.tools import openssl_subject, run, tool

EXPECTED = {
    # file: (user/CN, O, server)
    "admin.conf": ("kubernetes-admin", "kubeadm:cluster-admins", "https://cp.example.com:6443"),
    "super-admin.conf": ("kubernetes-super-admin", "system:masters", "https://cp.example.com:6443"),
    "kubelet.conf": (f"system:node:{NODE}", "system:nodes", f"https://{ADDRESS}:6443"),
    "controller-manager.conf": ("system:kube-controller-manager", None, f"https://{ADDRESS}:6443"),
    "scheduler.conf": ("system:kube-scheduler", None, f"https://{ADDRESS}:6443"),
}


@pytest.fixture
def kubeconfigs(cli: CliRunner, node_args: list[str], rootfs: Path) -> Path:
    args = [*node_args, "--control-plane-endpoint", "cp.example.com"]
    assert cli("phase", "certs", *args).code == 0
    result = cli("phase", "kubeconfig", *args)
    assert result.code == 0, result.stderr
    return rootfs / "etc/kubernetes"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_kubectl_reads_kubeconfig_with_expected_identity_and_server(kubeconfigs: Path, name: str) -> None:
    path = kubeconfigs / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    view = json.loads(
        run(tool("kubectl"), "config", "view", "--raw", "-o", "json", "--kubeconfig", str(path)).stdout
    )
    user, org, server = EXPECTED[name]
    assert view["current-context"] == f"{user}@kubernetes"
    assert view["clusters"][0]["cluster"]["server"] == server
    assert view["users"][0]["name"] == user
    ca = base64.b64decode(view["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca == (kubeconfigs / "pki/ca.crt").read_bytes()
    cert = base64.b64decode(view["users"][0]["user"]["client-certificate-data"])
    expected_subject = f"CN={user}" if org is None else f"CN={user},O={org}"
    assert openssl_subject(cert) == expected_subject
    # The embedded client cert chains to the cluster CA.
    cert_file = kubeconfigs.parent.parent / f"{name}.crt"
    cert_file.write_bytes(cert)
    verify = run(tool("openssl"), "verify", "-CAfile", str(kubeconfigs / "pki/ca.crt"), str(cert_file))
    assert verify.stdout.strip().endswith(": OK")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_kubeconfig_text_is_what_the_pure_python_emitter_writes(kubeconfigs: Path, name: str) -> None:
    # Written with libyaml's emitter for speed: the bytes must not depend on which emitter wrote them.
    text = (kubeconfigs / name).read_text()
    assert text == yaml.safe_dump(yaml.safe_load(text), sort_keys=False, default_flow_style=False)
    assert text.startswith("apiVersion: v1\n")


def test_kubeconfig_rerun_reuses_files(cli: CliRunner, kubeconfigs: Path, node_args: list[str]) -> None:
    before = {p.name: p.read_bytes() for p in kubeconfigs.glob("*.conf")}
    result = cli(
        "phase", "kubeconfig", *node_args, "--control-plane-endpoint", "cp.example.com", "-o", "json"
    )
    assert result.code == 0, result.stderr
    assert result.json()["changed"] is False
    assert {p.name: p.read_bytes() for p in kubeconfigs.glob("*.conf")} == before


def test_kubeconfig_with_foreign_ca_is_an_error_naming_the_file(
    cli: CliRunner, kubeconfigs: Path, node_args: list[str], tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    assert (
        cli(
            "phase",
            "certs",
            "ca",
            "--rootfs",
            str(other),
            "--node-name",
            NODE,
            "--advertise-address",
            ADDRESS,
        ).code
        == 0
    )
    (kubeconfigs / "pki/ca.crt").write_bytes((other / "etc/kubernetes/pki/ca.crt").read_bytes())
    (kubeconfigs / "pki/ca.key").write_bytes((other / "etc/kubernetes/pki/ca.key").read_bytes())
    before = (kubeconfigs / "admin.conf").read_bytes()
    result = cli("phase", "kubeconfig", "admin", *node_args, "--control-plane-endpoint", "cp.example.com")
    assert result.code == 1
    assert "admin.conf" in result.stderr and "CA" in result.stderr
    assert (kubeconfigs / "admin.conf").read_bytes() == before
