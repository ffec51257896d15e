"""`bootstrap certs check-expiration` and `bootstrap certs renew` through the entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import CliRunner
from tests.tools import run, tool


@pytest.fixture
def initialized(cli: CliRunner, node_args: list[str], rootfs: Path) -> Path:
    assert cli("phase", "certs", *node_args).code == 0
    assert cli("phase", "kubeconfig", *node_args).code == 0
    return rootfs


def test_check_expiration_lists_kubeadm_rows_in_every_format(cli: CliRunner, initialized: Path) -> None:
    text = cli("certs", "check-expiration", "--rootfs", str(initialized))
    assert text.code == 0, text.stderr
    assert text.stdout.splitlines()[0].split()[:2] == ["CERTIFICATE", "EXPIRES"]
    as_json = cli("certs", "check-expiration", "--rootfs", str(initialized), "-o", "json").json()
    as_yaml = yaml.safe_load(
        cli("certs", "check-expiration", "--rootfs", str(initialized), "-o", "yaml").stdout
    )
    assert as_json == as_yaml
    names = sorted(row["name"] for row in as_json["certificates"])
    assert names == sorted(
        [
            "admin.conf",
            "apiserver",
            "apiserver-etcd-client",
            "apiserver-kubelet-client",
            "controller-manager.conf",
            "etcd-healthcheck-client",
            "etcd-peer",
            "etcd-server",
            "front-proxy-client",
            "scheduler.conf",
            "super-admin.conf",
        ]
    )
    assert sorted(row["name"] for row in as_json["certificateAuthorities"]) == [
        "ca",
        "etcd-ca",
        "front-proxy-ca",
    ]
    assert "PRIVATE KEY" not in text.stdout + as_json.__repr__()


def test_renew_replaces_cert_and_key_keeping_the_chain(cli: CliRunner, initialized: Path) -> None:
    pki = initialized / "etc/kubernetes/pki"
    old_cert, old_key = (pki / "apiserver.crt").read_bytes(), (pki / "apiserver.key").read_bytes()
    result = cli("certs", "renew", "apiserver", "--rootfs", str(initialized), "-o", "json")
    assert result.code == 0, result.stderr
    assert result.json()["changed"] is True
    assert (pki / "apiserver.crt").read_bytes() != old_cert
    assert (pki / "apiserver.key").read_bytes() != old_key
    verify = run(tool("openssl"), "verify", "-CAfile", str(pki / "ca.crt"), str(pki / "apiserver.crt"))
    assert verify.stdout.strip().endswith("OK")


def test_renew_if_expiring_within_leaves_fresh_certs_alone(cli: CliRunner, initialized: Path) -> None:
    before = (initialized / "etc/kubernetes/pki/apiserver.crt").read_bytes()
    result = cli(
        "certs", "renew", "all", "--rootfs", str(initialized), "--if-expiring-within", "720h", "-o", "json"
    )
    assert result.code == 0, result.stderr
    assert result.json()["changed"] is False
    assert (initialized / "etc/kubernetes/pki/apiserver.crt").read_bytes() == before


def test_renewing_a_ca_is_refused_as_a_usage_error(cli: CliRunner, initialized: Path) -> None:
    result = cli("certs", "renew", "ca", "--rootfs", str(initialized))
    assert result.code == 2 and "never renewed" in result.stderr


def test_bad_renew_window_is_a_usage_error(cli: CliRunner, initialized: Path) -> None:
    result = cli("certs", "renew", "all", "--rootfs", str(initialized), "--if-expiring-within", "soon")
    assert result.code == 2 and "--if-expiring-within" in result.stderr
