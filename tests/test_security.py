"""Security properties: links and tampered state never make us write or delete outside our files,
and no error message carries key material."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bootstrap.wait.health import ClientTLS, Endpoint, check
from tests.conftest import NO_WAIT, CliRunner


def test_a_dry_run_never_writes_through_a_linked_pki_directory(
    cli: CliRunner, node_args: list[str], rootfs: Path, tmp_path: Path
) -> None:
    real_pki = tmp_path / "real-pki"
    real_pki.mkdir()
    (rootfs / "etc/kubernetes").mkdir(parents=True)
    (rootfs / "etc/kubernetes/pki").symlink_to(real_pki)
    os.environ["BOOTSTRAP_DRYRUN_DIR"] = str(tmp_path / "dry")
    try:
        result = cli("phase", "certs", *node_args, "--dry-run")
    finally:
        del os.environ["BOOTSTRAP_DRYRUN_DIR"]
    assert result.code == 0, result.stderr
    assert list(real_pki.iterdir()) == []
    assert (tmp_path / "dry/etc/kubernetes/pki/ca.key").stat().st_mode & 0o077 == 0


def test_reset_refuses_ledger_entries_that_lead_outside_the_rootfs(
    cli: CliRunner, node_args: list[str], rootfs: Path, tmp_path: Path
) -> None:
    assert cli("init", *node_args, *NO_WAIT).code == 0
    victim = tmp_path / "outside/victim.txt"
    victim.parent.mkdir()
    victim.write_text("not yours")
    ledger = rootfs / "var/lib/kube-bootstrap/ledger.jsonl"
    with ledger.open("a") as entries:
        entries.write(json.dumps({"path": "/../outside/victim.txt", "kind": "file"}) + "\n")
        entries.write(json.dumps({"path": "/../outside", "kind": "etcd-data"}) + "\n")
    result = cli("reset", "--rootfs", str(rootfs), "--force", "-o", "json")
    assert result.code == 0, result.stderr
    assert victim.read_text() == "not yours"
    assert "leads outside" in result.stderr


def test_reset_keeps_a_file_that_existed_before_bootstrap_changed_it(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    config = rootfs / "var/lib/kubelet/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 50\n")
    assert cli("init", *node_args, *NO_WAIT).code == 0
    assert "staticPodPath" in config.read_text()  # kubelet-start rewrote it
    result = cli("reset", "--rootfs", str(rootfs), "--force", "-o", "json")
    assert result.code == 0, result.stderr
    assert config.exists()
    assert "/var/lib/kubelet/config.yaml" in result.json()["kept"]


def test_the_run_lock_is_never_followed_through_a_link(
    cli: CliRunner, node_args: list[str], rootfs: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    state = rootfs / "var/lib/kube-bootstrap"
    state.mkdir(parents=True)
    (state / "lock").symlink_to(victim)
    result = cli("phase", "certs", "ca", *node_args)
    assert result.code == 1 and "cannot open the run lock" in result.stderr
    assert "internal error" not in result.stderr
    assert victim.read_text() == "precious"


def test_a_broken_kubeconfig_error_does_not_quote_its_content(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    assert cli("phase", "certs", "ca", *node_args).code == 0
    assert cli("phase", "kubeconfig", "admin", *node_args).code == 0
    admin = rootfs / "etc/kubernetes/admin.conf"
    text = admin.read_text()
    key_line = next(line for line in text.splitlines() if "client-key-data" in line)
    secret = key_line.split(":", 1)[1].strip()
    admin.write_text(text.replace(secret, secret[:40] + ": " + secret[40:]))  # now not valid YAML
    result = cli("certs", "check-expiration", "--rootfs", str(rootfs), "-o", "json")
    assert result.code == 1
    assert "admin.conf" in result.stderr
    assert secret[:40] not in result.stderr + result.stdout


def test_the_api_server_health_check_never_falls_back_to_unverified_tls() -> None:
    endpoint = Endpoint("kube-apiserver", "https", "127.0.0.1", 1, "/readyz", verify=True)
    assert (
        check(endpoint, ClientTLS(None)) == "cannot verify TLS: admin.conf (with the cluster CA) is missing"
    )


def test_rootfs_resolves_links_as_a_chroot_would(tmp_path: Path) -> None:
    from bootstrap.host.fs import Rootfs

    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "etc").symlink_to("/data")  # absolute: means <root>/data, never the host's /data
    (root / "var").mkdir()
    (root / "var/up").symlink_to("../../../../../outside")  # cannot climb above the root
    fs = Rootfs(root)
    assert fs.path("/etc/kubernetes/pki/ca.key") == root / "data/kubernetes/pki/ca.key"
    assert fs.path("/var/up/x") == root / "outside/x"
    assert fs.path("/../../x") == root / "x"
    assert fs.path("/var/lib/kubelet/config.yaml") == root / "var/lib/kubelet/config.yaml"


def test_a_link_to_a_host_directory_inside_the_rootfs_is_not_written_through(
    cli: CliRunner, node_args: list[str], rootfs: Path, tmp_path: Path
) -> None:
    host_dir = tmp_path / "host-etc"
    host_dir.mkdir()
    (rootfs / "etc").symlink_to(host_dir)  # an absolute link, as a chroot's /etc -> /something would be
    assert cli("phase", "certs", "ca", *node_args).code == 0
    assert list(host_dir.iterdir()) == []
    assert (rootfs / str(host_dir).lstrip("/") / "kubernetes/pki/ca.key").exists()
