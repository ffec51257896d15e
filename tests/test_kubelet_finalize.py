"""kubelet-finalize: kubelet.conf moves from its embedded certificate to the kubelet's rotating one,
once the kubelet has written it; and the stand-in kubelet writes that file as the real one does."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml
from cryptography import x509

from bootstrap.phases.kubelet_finalize import CURRENT_CLIENT_PEM
from tests.conftest import CliRunner
from tests.standin.tls_bootstrap import resolve_in_rootfs, store_embedded_credentials

KUBELET_CONF = "etc/kubernetes/kubelet.conf"


def prepare(cli: CliRunner, node_args: list[str]) -> None:
    assert cli("phase", "certs", "ca", *node_args).code == 0
    result = cli("phase", "kubeconfig", "kubelet", *node_args)
    assert result.code == 0, result.stderr


def user(rootfs: Path) -> dict[str, str]:
    return dict(yaml.safe_load((rootfs / KUBELET_CONF).read_text())["users"][0]["user"])


def test_the_stand_in_kubelet_stores_its_embedded_credentials_once(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    prepare(cli, node_args)
    embedded = user(rootfs)
    assert store_embedded_credentials(rootfs) is True
    pem = resolve_in_rootfs(rootfs, CURRENT_CLIENT_PEM)
    assert os.readlink(rootfs / CURRENT_CLIENT_PEM.lstrip("/")).startswith(
        "/var/lib/kubelet/pki/kubelet-client-"
    )
    assert pem.stat().st_mode & 0o777 == 0o600
    data = pem.read_bytes()
    assert base64.b64decode(embedded["client-certificate-data"]).strip() in data
    assert base64.b64decode(embedded["client-key-data"]).strip() in data
    assert store_embedded_credentials(rootfs) is False  # there already: the kubelet keeps its own


def test_kubelet_finalize_points_kubelet_conf_at_the_rotating_file(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    prepare(cli, node_args)
    store_embedded_credentials(rootfs)
    result = cli("phase", "kubelet-finalize", *node_args, "-o", "json")
    assert result.code == 0, result.stderr
    report = result.json()["phases"][0]
    assert (report["path"], report["changed"]) == ("kubelet-finalize/enable-client-cert-rotation", True)
    assert user(rootfs) == {"client-certificate": CURRENT_CLIENT_PEM, "client-key": CURRENT_CLIENT_PEM}
    assert (rootfs / KUBELET_CONF).stat().st_mode & 0o777 == 0o600
    before = (rootfs / KUBELET_CONF).read_bytes()
    again = cli("phase", "kubelet-finalize", *node_args, "-o", "json")
    assert again.code == 0 and again.json()["phases"][0]["changed"] is False
    assert (rootfs / KUBELET_CONF).read_bytes() == before
    # kubeconfig/kubelet accepts the result: the certificate it references is still the CA's.
    reuse = cli("phase", "kubeconfig", "kubelet", *node_args, "-o", "json")
    assert reuse.code == 0, reuse.stderr
    assert reuse.json()["phases"][0]["changed"] is False


def test_without_the_kubelets_file_kubelet_conf_is_left_alone_with_a_warning(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    prepare(cli, node_args)
    before = (rootfs / KUBELET_CONF).read_bytes()
    result = cli("phase", "kubelet-finalize", *node_args, "-o", "json")
    assert result.code == 0, result.stderr
    assert result.json()["phases"][0]["changed"] is False
    assert any("not written by the kubelet yet" in w for w in result.json()["warnings"])
    assert (rootfs / KUBELET_CONF).read_bytes() == before


def test_a_dry_run_changes_nothing(cli: CliRunner, node_args: list[str], rootfs: Path) -> None:
    prepare(cli, node_args)
    store_embedded_credentials(rootfs)
    before = (rootfs / KUBELET_CONF).read_bytes()
    result = cli("phase", "kubelet-finalize", *node_args, "--dry-run", "-o", "json")
    assert result.code == 0, result.stderr
    assert result.json()["phases"][0]["changed"] is True  # what the real run would do
    assert (rootfs / KUBELET_CONF).read_bytes() == before


def test_reset_removes_the_kubelets_client_files_with_kubelet_conf(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    prepare(cli, node_args)
    store_embedded_credentials(rootfs)
    pem = resolve_in_rootfs(rootfs, CURRENT_CLIENT_PEM)
    x509.load_pem_x509_certificate(pem.read_bytes())
    assert cli("phase", "kubelet-finalize", *node_args).code == 0
    result = cli("reset", "--rootfs", str(rootfs), "--force", "-o", "json")
    assert result.code == 0, result.stderr
    assert CURRENT_CLIENT_PEM in result.json()["removed"]
    assert not (rootfs / "var/lib/kubelet/pki").exists()
