"""`bootstrap init` / `bootstrap phase` through the real entry point, in a temporary rootfs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.conftest import CLUSTER_PHASES, HOST_CHECKS, NO_WAIT, CliRunner, files_under

PKI_FILES = [
    "etc/kubernetes/pki/apiserver-etcd-client.crt",
    "etc/kubernetes/pki/apiserver-etcd-client.key",
    "etc/kubernetes/pki/apiserver-kubelet-client.crt",
    "etc/kubernetes/pki/apiserver-kubelet-client.key",
    "etc/kubernetes/pki/apiserver.crt",
    "etc/kubernetes/pki/apiserver.key",
    "etc/kubernetes/pki/ca.crt",
    "etc/kubernetes/pki/ca.key",
    "etc/kubernetes/pki/etcd/ca.crt",
    "etc/kubernetes/pki/etcd/ca.key",
    "etc/kubernetes/pki/etcd/healthcheck-client.crt",
    "etc/kubernetes/pki/etcd/healthcheck-client.key",
    "etc/kubernetes/pki/etcd/peer.crt",
    "etc/kubernetes/pki/etcd/peer.key",
    "etc/kubernetes/pki/etcd/server.crt",
    "etc/kubernetes/pki/etcd/server.key",
    "etc/kubernetes/pki/front-proxy-ca.crt",
    "etc/kubernetes/pki/front-proxy-ca.key",
    "etc/kubernetes/pki/front-proxy-client.crt",
    "etc/kubernetes/pki/front-proxy-client.key",
    "etc/kubernetes/pki/sa.key",
    "etc/kubernetes/pki/sa.pub",
]
MANIFESTS = [
    f"etc/kubernetes/manifests/{c}.yaml"
    for c in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
]
KUBELET_FILES = ["var/lib/kubelet/config.yaml", "var/lib/kubelet/kubeadm-flags.env"]
KUBECONFIGS = [
    f"etc/kubernetes/{n}.conf" for n in ("admin", "controller-manager", "kubelet", "scheduler", "super-admin")
]


ALL_FILES = sorted(PKI_FILES + KUBECONFIGS + MANIFESTS + KUBELET_FILES)


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        name: ((root / name).read_bytes(), (root / name).stat().st_mtime_ns, (root / name).stat().st_mode)
        for name in files_under(root)
    }


def test_init_writes_every_cert_and_kubeconfig_with_kubeadm_modes(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    result = cli("init", *node_args, *NO_WAIT, "-o", "json")
    assert result.code == 0, result.stderr
    assert files_under(rootfs) == ALL_FILES
    for name in files_under(rootfs):
        mode = stat.S_IMODE((rootfs / name).stat().st_mode)
        expected = 0o644 if name.endswith(".crt") or name.startswith("var/lib/kubelet/") else 0o600
        assert mode == expected, name
    doc = result.json()
    assert doc["ok"] is True and doc["changed"] is True and doc["command"] == "init"
    statuses = {p["path"]: p["status"] for p in doc["phases"]}
    assert statuses["certs/apiserver"] == "ran" and statuses["kubeconfig/admin"] == "ran"
    written = {f for p in doc["phases"] for f in p["files"]}
    # Host paths, as the files are named on the node; the rootfs is said once.
    assert "/etc/kubernetes/pki/apiserver.key" in written and doc["rootfs"] == str(rootfs)
    assert '[certs] Generating "apiserver" certificate and key' in result.stderr


def test_init_output_never_contains_key_material(cli: CliRunner, node_args: list[str], rootfs: Path) -> None:
    result = cli("init", *node_args, *NO_WAIT, "-o", "json")
    assert result.code == 0, result.stderr
    for text in (result.stdout, result.stderr):
        assert "PRIVATE KEY" not in text
        assert "client-key-data" not in text
    key_body = (rootfs / "etc/kubernetes/pki/ca.key").read_text().splitlines()[1]
    assert key_body not in result.stdout + result.stderr


def test_second_init_changes_nothing_byte_for_byte(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    assert cli("init", *node_args, *NO_WAIT).code == 0
    before = snapshot(rootfs)
    result = cli("init", *node_args, *NO_WAIT, "-o", "json")
    assert result.code == 0, result.stderr
    assert snapshot(rootfs) == before
    doc = result.json()
    assert doc["changed"] is False
    assert all(p["changed"] is False and p["files"] == [] for p in doc["phases"])
    assert '[certs] Using existing "ca" certificate authority' in result.stderr


def test_skip_phases_skips_a_child_and_a_whole_parent(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    result = cli(
        "init",
        *node_args,
        "--skip-phases",
        f"certs/sa,kubeconfig,{CLUSTER_PHASES}",
        "--ignore-preflight-errors",
        HOST_CHECKS,
        "-o",
        "json",
    )
    assert result.code == 0, result.stderr
    assert files_under(rootfs) == sorted(f for f in ALL_FILES if "/sa." not in f and f not in KUBECONFIGS)
    statuses = {p["path"]: p["status"] for p in result.json()["phases"]}
    assert statuses["certs/sa"] == "skipped" and statuses["kubeconfig/admin"] == "skipped"


def test_phase_child_runs_alone_in_both_spellings(cli: CliRunner, node_args: list[str], rootfs: Path) -> None:
    assert cli("phase", "certs", "ca", *node_args).code == 0
    assert files_under(rootfs) == ["etc/kubernetes/pki/ca.crt", "etc/kubernetes/pki/ca.key"]
    result = cli("phase", "certs/front-proxy-ca", *node_args, "-o", "json")
    assert result.code == 0, result.stderr
    assert [p["path"] for p in result.json()["phases"]] == ["certs/front-proxy-ca"]
    assert "etc/kubernetes/pki/front-proxy-ca.crt" in files_under(rootfs)


def test_phase_parent_runs_its_subtree(cli: CliRunner, node_args: list[str], rootfs: Path) -> None:
    result = cli("phase", "certs", *node_args, "-o", "json")
    assert result.code == 0, result.stderr
    assert files_under(rootfs) == sorted(PKI_FILES)
    assert len(result.json()["phases"]) == 11


def test_phase_with_skip_wins_over_the_filter(cli: CliRunner, node_args: list[str], rootfs: Path) -> None:
    result = cli("phase", "certs", *node_args, "--skip-phases", "certs/sa", "-o", "json")
    assert result.code == 0, result.stderr
    assert "etc/kubernetes/pki/sa.key" not in files_under(rootfs)


def test_unknown_phase_is_a_usage_error(cli: CliRunner, node_args: list[str], rootfs: Path) -> None:
    assert cli("phase", "certz", *node_args).code == 2
    assert cli("phase", "certs/nope", *node_args).code == 2
    result = cli("init", *node_args, "--skip-phases", "certs/nope")
    assert result.code == 2 and "certs/nope" in result.stderr
    assert files_under(rootfs) == []


def test_help_lists_the_same_phase_tree_for_init_and_phase(cli: CliRunner) -> None:
    init_help = cli("init", "--help").stdout
    phase_help = cli("phase", "--help").stdout
    for name in ("preflight", "/apiserver-etcd-client", "/sa", "/super-admin", "/scheduler"):
        assert name in init_help and name in phase_help
    certs_help = cli("phase", "certs", "--help").stdout
    assert "apiserver-kubelet-client" in certs_help and "all" in certs_help


def test_dry_run_writes_nothing_in_the_rootfs(
    cli: CliRunner, node_args: list[str], rootfs: Path, tmp_path: Path, monkeypatch: object
) -> None:
    dry = tmp_path / "dry"
    os.environ["BOOTSTRAP_DRYRUN_DIR"] = str(dry)
    try:
        result = cli("init", *node_args, "--dry-run", "-o", "json")
    finally:
        del os.environ["BOOTSTRAP_DRYRUN_DIR"]
    assert result.code == 0, result.stderr
    assert files_under(rootfs) == []
    doc = result.json()
    assert doc["dryRun"] is True and doc["dryRunDir"] == str(dry)
    assert (dry / "etc/kubernetes/pki/ca.crt").exists()


def test_dry_run_after_init_reports_no_file_would_change(
    cli: CliRunner, node_args: list[str], rootfs: Path, tmp_path: Path
) -> None:
    assert cli("init", *node_args, *NO_WAIT).code == 0
    before = snapshot(rootfs)
    result = cli("init", *node_args, "--dry-run", "-o", "json")
    assert result.code == 0, result.stderr
    phases = result.json()["phases"]
    file_phases = [
        p for p in phases if p["path"].split("/")[0] in ("certs", "kubeconfig", "manifests", "kubelet-start")
    ]
    assert file_phases and all(p["changed"] is False for p in file_phases)
    # No API server answers here, so the API actions are listed as what would be done.
    assert any(
        "[dryrun] Would create or update ConfigMap kube-system/kubeadm-config" in m
        for p in phases
        for m in p["messages"]
    )
    assert snapshot(rootfs) == before


def test_json_result_on_failure_carries_the_error_and_exit_code(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    assert cli("phase", "certs", *node_args).code == 0
    key = rootfs / "etc/kubernetes/pki/apiserver.key"
    other = rootfs / "etc/kubernetes/pki/apiserver-kubelet-client.key"
    key.write_bytes(other.read_bytes())
    result = cli("phase", "certs", *node_args, "-o", "json")
    assert result.code == 1
    assert "apiserver" in result.stderr and "Traceback" not in result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["error"]["exitCode"] == 1
    assert doc["error"]["message"].startswith("phase certs/apiserver:")
    assert {p["path"]: p["status"] for p in doc["phases"]}["certs/apiserver"] == "failed"
