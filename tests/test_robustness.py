"""Situations a user can cause (or a crash can leave) that must end in a clear message and a re-run
that converges, never a traceback or a lying result document."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bootstrap.config import HostFacts, load_config
from tests.conftest import NO_WAIT, CliRunner, files_under
from tests.tools import run, tool


def test_reset_after_a_crash_that_removed_the_manifests_still_removes_etcd_data(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    assert cli("init", *node_args, *NO_WAIT).code == 0
    data = rootfs / "var/lib/etcd/member/snap/db"
    data.parent.mkdir(parents=True)
    data.write_bytes(b"etcd")
    for manifest in (rootfs / "etc/kubernetes/manifests").iterdir():
        manifest.unlink()  # what a reset killed right after its first step leaves
    result = cli("reset", "--rootfs", str(rootfs), "--force", "-o", "json")
    assert result.code == 0, result.stderr
    assert "/var/lib/etcd" in result.json()["removed"]
    assert not (rootfs / "var/lib/etcd").exists()
    assert files_under(rootfs) == []


def test_an_unexpected_error_still_yields_a_failed_result_document(
    cli: CliRunner, node_args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import bootstrap.pki.kubeconfig_files

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(bootstrap.pki.kubeconfig_files, "ensure_kubeconfig", broken)
    assert cli("phase", "certs", "ca", *node_args).code == 0
    result = cli("phase", "kubeconfig", "admin", *node_args, "-o", "json")
    assert result.code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and "internal error: RuntimeError: simulated bug" in doc["error"]["message"]
    assert doc["phases"][0]["status"] == "failed"


def test_an_unexpected_error_is_one_line_naming_the_phase_and_the_input(
    cli: CliRunner, node_args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import bootstrap.pki.kubeconfig_files

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("simulated\nbug over\n  three lines")

    config = tmp_path / "kubeadm.yaml"
    config.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n")
    monkeypatch.setattr(bootstrap.pki.kubeconfig_files, "ensure_kubeconfig", broken)
    assert cli("phase", "certs", "ca", *node_args, "--config", config).code == 0
    result = cli("phase", "kubeconfig", "admin", *node_args, "--config", config)
    assert result.code == 1
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith("error: phase kubeconfig/admin: internal error: RuntimeError: simulated bug over")
    assert f"--config {config}" in line and "run with -v" in line
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "content",
    ["foo: [\n", "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Zm9vCg==\n"],
)
def test_a_broken_existing_kubeconfig_is_named_with_the_fix(
    cli: CliRunner, node_args: list[str], rootfs: Path, content: str
) -> None:
    assert cli("phase", "certs", "ca", *node_args).code == 0
    path = rootfs / "etc/kubernetes/scheduler.conf"
    path.write_text(content)
    result = cli("phase", "kubeconfig", "scheduler", *node_args)
    assert result.code == 1
    assert str(path) in result.stderr and "internal error" not in result.stderr
    assert 'delete scheduler.conf and re-run "bootstrap phase kubeconfig scheduler"' in result.stderr
    assert path.read_text() == content


@pytest.mark.parametrize("unspecified", ["0.0.0.0", "::"])
def test_an_unspecified_advertise_address_means_the_default_route_address(unspecified: str) -> None:
    host = HostFacts(hostname=lambda: "cp1", default_ipv4=lambda: "192.0.2.10")
    cfg = load_config(None, {"advertise-address": unspecified}, host=host)
    assert cfg.advertise_address == "192.0.2.10"


def test_a_reused_dry_run_directory_is_refused(cli: CliRunner, node_args: list[str], tmp_path: Path) -> None:
    reused = tmp_path / "dry"
    reused.mkdir()
    (reused / "left-over").write_text("from an earlier dry run")
    os.environ["BOOTSTRAP_DRYRUN_DIR"] = str(reused)
    try:
        result = cli("init", *node_args, "--dry-run")
    finally:
        del os.environ["BOOTSTRAP_DRYRUN_DIR"]
    assert result.code == 2 and "must be empty or absent" in result.stderr


def test_verbose_shows_the_traceback_of_a_user_error(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    assert cli("phase", "certs", *node_args).code == 0
    key = rootfs / "etc/kubernetes/pki/apiserver.key"
    key.write_bytes((rootfs / "etc/kubernetes/pki/front-proxy-client.key").read_bytes())
    quiet = cli("phase", "certs", "apiserver", *node_args)
    loud = cli("phase", "certs", "apiserver", *node_args, "-v")
    assert quiet.code == loud.code == 1
    assert "Traceback" not in quiet.stderr and "Traceback" in loud.stderr


def test_openssl_agrees_the_renewed_kubeconfig_user_is_the_same(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    assert cli("phase", "certs", "ca", *node_args).code == 0
    assert cli("phase", "kubeconfig", "admin", *node_args).code == 0
    view = json.loads(
        run(
            tool("kubectl"),
            "config",
            "view",
            "--raw",
            "-o",
            "json",
            "--kubeconfig",
            str(rootfs / "etc/kubernetes/admin.conf"),
        ).stdout
    )
    assert view["users"][0]["name"] == "kubernetes-admin"
