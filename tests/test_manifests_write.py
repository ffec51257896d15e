"""Writing the static pod manifests through the CLI: modes, idempotence, atomicity, --diff, paths, strays,
and the cross-check of every file a manifest references against a real PKI."""

from __future__ import annotations

import errno
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import bootstrap.host.fs
from bootstrap.cli.main import main
from bootstrap.components.references import check_references, referenced_files
from bootstrap.components.strays import kubelet_visible_files
from tests.conftest import ADDRESS, NODE, CliRunner

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
FILES = sorted(f"{c}.yaml" for c in COMPONENTS)
MANIFEST_DIR = "etc/kubernetes/manifests"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def manifests(cli: CliRunner, node_args: list[str], *extra: str) -> Any:
    result = cli("phase", "manifests", *node_args, *extra)
    assert result.code == 0, result.stderr
    return result


def command_of(path: Path) -> list[str]:
    pod = yaml.safe_load(path.read_text())
    command: list[str] = pod["spec"]["containers"][0]["command"]
    return command


# ---- modes and idempotence ----


def test_manifests_are_0600_in_a_0700_directory(cli: CliRunner, node_args: list[str], rootfs: Path) -> None:
    manifests(cli, node_args)
    directory = rootfs / MANIFEST_DIR
    assert mode(directory) == 0o700
    assert sorted(p.name for p in directory.iterdir()) == FILES
    for name in FILES:
        assert mode(directory / name) == 0o600, name
        assert (directory / name).read_text().startswith("apiVersion: v1\nkind: Pod\n")


def test_rerun_is_byte_identical_keeps_mtimes_and_reports_no_change(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    first = manifests(cli, node_args, "-o", "json").json()
    assert first["changed"] is True
    directory = rootfs / MANIFEST_DIR
    before = snapshot(directory)
    second = manifests(cli, node_args, "-o", "json").json()
    assert second["changed"] is False
    assert {p["path"]: p["changed"] for p in second["phases"]} == {
        f"manifests/{c}": False for c in COMPONENTS
    }
    assert snapshot(directory) == before


def test_rerun_with_a_changed_config_rewrites_only_the_changed_manifest(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    manifests(cli, node_args)
    directory = rootfs / MANIFEST_DIR
    before = snapshot(directory)
    doc = manifests(cli, node_args, "--service-cidr", "10.100.0.0/16", "-o", "json").json()
    changed = {p["path"]: p["changed"] for p in doc["phases"]}
    assert changed["manifests/kube-apiserver"] is True
    assert changed["manifests/etcd"] is False
    after = snapshot(directory)
    assert after["etcd.yaml"] == before["etcd.yaml"]
    assert after["kube-scheduler.yaml"] == before["kube-scheduler.yaml"]
    assert "--service-cluster-ip-range=10.100.0.0/16" in command_of(directory / "kube-apiserver.yaml")
    assert mode(directory / "kube-apiserver.yaml") == 0o600


# ---- atomicity ----


def fail_rename(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "simulated crash between the temporary file and the rename")

    monkeypatch.setattr(bootstrap.host.fs.os, "replace", crash)


def test_interrupted_write_keeps_the_old_manifest_and_leaves_only_dot_files(
    cli: CliRunner, node_args: list[str], rootfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests(cli, node_args)
    directory = rootfs / MANIFEST_DIR
    old = snapshot(directory)
    fail_rename(monkeypatch)
    # As a kill between write and rename would: the temporary file is not cleaned up either.
    monkeypatch.setattr(bootstrap.host.fs.Path, "unlink", lambda self, missing_ok=False: None)
    result = cli("phase", "manifests", *node_args, "--service-cidr", "10.100.0.0/16")
    monkeypatch.undo()
    assert result.code != 0
    assert "simulated crash" in result.stderr
    # The kubelet sees exactly the old manifests, untouched.
    assert [p.name for p in kubelet_visible_files(directory)] == FILES
    assert {n: v for n, v in snapshot(directory).items() if not n.startswith(".")} == old
    leftovers = [p for p in directory.iterdir() if p.name not in FILES]
    assert len(leftovers) == 1
    assert leftovers[0].name.startswith(".kube-apiserver.yaml.")
    assert "10.100.0.0/16" in leftovers[0].read_text()
    assert mode(leftovers[0]) == 0o600

    # A normal re-run converges; the dot-file leftover is no stray (the kubelet ignores it).
    manifests(cli, node_args, "--service-cidr", "10.100.0.0/16")
    assert [p.name for p in kubelet_visible_files(directory)] == FILES
    assert "--service-cluster-ip-range=10.100.0.0/16" in command_of(directory / "kube-apiserver.yaml")
    assert mode(directory / "kube-apiserver.yaml") == 0o600
    assert all(p.name in FILES or p.name.startswith(".") for p in directory.iterdir())


def test_failed_rename_removes_its_temporary_file(
    cli: CliRunner, node_args: list[str], rootfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests(cli, node_args)
    directory = rootfs / MANIFEST_DIR
    old = snapshot(directory)
    fail_rename(monkeypatch)
    result = cli("phase", "manifests", *node_args, "--service-cidr", "10.100.0.0/16")
    monkeypatch.undo()
    assert result.code != 0
    assert snapshot(directory) == old  # nothing besides the old manifests, not even a dot-file

    manifests(cli, node_args, "--service-cidr", "10.100.0.0/16")
    assert sorted(p.name for p in directory.iterdir()) == FILES
    assert "--service-cluster-ip-range=10.100.0.0/16" in command_of(directory / "kube-apiserver.yaml")


# ---- --diff ----


def test_diff_prints_a_unified_diff_and_writes_nothing(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    manifests(cli, node_args)
    directory = rootfs / MANIFEST_DIR
    before = snapshot(directory)
    result = manifests(cli, node_args, "--service-cidr", "10.100.0.0/16", "--diff")
    path = "/etc/kubernetes/manifests/kube-apiserver.yaml"  # the host path, as the kubelet sees it
    assert f"--- {path}\n+++ {path}\n" in result.stdout
    assert "\n-    - --service-cluster-ip-range=10.96.0.0/12\n" in result.stdout
    assert "\n+    - --service-cluster-ip-range=10.100.0.0/16\n" in result.stdout
    assert "@@ " in result.stdout
    # Only the apiserver changes; the others show no diff.
    assert result.stdout.count("+++ ") == 1
    assert snapshot(directory) == before


def test_diff_against_an_empty_directory_creates_nothing(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    result = manifests(cli, node_args, "--diff")
    assert result.stdout.count("--- /dev/null") == 4
    assert not (rootfs / MANIFEST_DIR).exists()


# ---- where the manifests go ----


def write_kubelet_config(path: Path, static_pod_path: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "apiVersion: kubelet.config.k8s.io/v1beta1\n"
        "kind: KubeletConfiguration\n"
        f"staticPodPath: {static_pod_path}\n"
    )


def test_static_pod_path_of_the_kubelet_config_is_honoured(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    write_kubelet_config(rootfs / "var/lib/kubelet/config.yaml", "/custom/pods")
    manifests(cli, node_args)
    assert sorted(p.name for p in (rootfs / "custom/pods").iterdir()) == FILES
    assert mode(rootfs / "custom/pods") == 0o700
    assert not (rootfs / MANIFEST_DIR).exists()


def test_kubelet_config_flag_points_at_another_kubelet_config(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    write_kubelet_config(rootfs / "var/lib/kubelet/config.yaml", "/custom/pods")
    write_kubelet_config(rootfs / "etc/kubelet/other.yaml", "/other/pods")
    manifests(cli, node_args, "--kubelet-config", "/etc/kubelet/other.yaml")
    assert sorted(p.name for p in (rootfs / "other/pods").iterdir()) == FILES
    assert not (rootfs / "custom/pods").exists()
    assert not (rootfs / MANIFEST_DIR).exists()


def test_output_dir_writes_there_instead(
    cli: CliRunner, node_args: list[str], rootfs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    manifests(cli, node_args, "--output-dir", str(out))
    assert sorted(p.name for p in out.iterdir()) == FILES
    assert all(mode(out / name) == 0o600 for name in FILES)
    assert not (rootfs / MANIFEST_DIR).exists()


# ---- stray files the kubelet would run ----


def test_backup_leftover_is_refused_naming_the_file(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    manifests(cli, node_args)
    directory = rootfs / MANIFEST_DIR
    (directory / "kube-apiserver.yaml.bak").write_bytes((directory / "kube-apiserver.yaml").read_bytes())
    before = snapshot(directory)
    result = cli("phase", "manifests", *node_args, "--service-cidr", "10.100.0.0/16")
    assert result.code == 1
    assert "kube-apiserver.yaml.bak" in result.stderr
    assert "kubelet would run" in result.stderr
    assert "--quarantine-strays" in result.stderr
    assert snapshot(directory) == before


def test_foreign_json_file_declaring_one_of_our_pods_is_refused(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    directory = rootfs / MANIFEST_DIR
    directory.mkdir(parents=True)
    (directory / "foo.json").write_text(
        '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kube-scheduler", '
        '"namespace": "kube-system"}, "spec": {"containers": []}}'
    )
    result = cli("phase", "manifests", *node_args)
    assert result.code == 1
    assert "foo.json" in result.stderr
    assert "kube-scheduler" in result.stderr
    assert sorted(p.name for p in directory.iterdir()) == ["foo.json"]


def test_unrelated_foreign_pod_is_left_alone(cli: CliRunner, node_args: list[str], rootfs: Path) -> None:
    directory = rootfs / MANIFEST_DIR
    directory.mkdir(parents=True)
    foreign = directory / "haproxy.yaml"
    foreign.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: haproxy\n  namespace: kube-system\n")
    before = foreign.read_bytes(), foreign.stat().st_mtime_ns
    result = manifests(cli, node_args, "-o", "json")
    assert result.json()["ok"] is True
    assert sorted(p.name for p in directory.iterdir()) == sorted([*FILES, "haproxy.yaml"])
    assert (foreign.read_bytes(), foreign.stat().st_mtime_ns) == before


def test_quarantine_strays_moves_them_out_reports_them_and_writes(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    directory = rootfs / MANIFEST_DIR
    directory.mkdir(parents=True)
    (directory / "kube-apiserver.yaml.bak").write_text("apiVersion: v1\nkind: Pod\n")
    (directory / "foo.json").write_text('{"kind": "Pod", "metadata": {"name": "kube-scheduler"}}')
    result = manifests(cli, node_args, "--quarantine-strays", "-o", "json")
    assert sorted(p.name for p in directory.iterdir()) == FILES
    quarantines = list((rootfs / "etc/kubernetes/tmp").glob("quarantine-*"))
    assert len(quarantines) == 1
    assert sorted(p.name for p in quarantines[0].iterdir()) == ["foo.json", "kube-apiserver.yaml.bak"]
    assert mode(quarantines[0]) == 0o700
    assert (quarantines[0] / "kube-apiserver.yaml.bak").read_text() == "apiVersion: v1\nkind: Pod\n"
    messages = "\n".join(m for p in result.json()["phases"] for m in p["messages"])
    assert "kube-apiserver.yaml.bak" in messages and "foo.json" in messages
    assert str(quarantines[0]) in messages


# ---- cross-check: what the manifests reference exists, with kubeadm's modes ----


EXPECTED_MODES = {".crt": 0o644, ".key": 0o600, ".pub": 0o600, ".conf": 0o600}


def run_main(*args: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    assert exited.value.code in (0, None), args


def bootstrap_phases(root: Path, *extra: str) -> None:
    node = ["--rootfs", str(root), "--node-name", NODE, "--advertise-address", ADDRESS, *extra]
    for phase in ("certs", "kubeconfig", "manifests"):
        run_main("phase", phase, *node)


EXTERNAL_ETCD = f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
etcd:
  external:
    endpoints:
    - https://10.0.0.20:2379
    caFile: /etc/etcd/pki/ca.crt
    certFile: /etc/etcd/pki/apiserver-etcd-client.crt
    keyFile: /etc/etcd/pki/apiserver-etcd-client.key
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  name: {NODE}
"""


@pytest.fixture(scope="module")
def stacked_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("stacked")
    bootstrap_phases(root)
    yield root


@pytest.fixture(scope="module")
def external_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("external")
    pki = root / "etc/etcd/pki"
    pki.mkdir(parents=True)
    for name, file_mode in (
        ("ca.crt", 0o644),
        ("apiserver-etcd-client.crt", 0o644),
        ("apiserver-etcd-client.key", 0o600),
    ):
        (pki / name).write_text(f"placeholder {name}\n")
        (pki / name).chmod(file_mode)
    config = root.parent / "external-etcd.yaml"
    config.write_text(EXTERNAL_ETCD)
    bootstrap_phases(root, "--config", str(config))
    yield root


def check_tree(root: Path, components: tuple[str, ...]) -> set[str]:
    directory = root / MANIFEST_DIR
    assert sorted(p.name for p in directory.iterdir()) == sorted(f"{c}.yaml" for c in components)
    seen: set[str] = set()
    for component in components:
        pod = yaml.safe_load((directory / f"{component}.yaml").read_text())
        assert check_references(pod, lambda p: root / p.lstrip("/"), lambda p: True) == ([], []), component
        files = list(referenced_files(pod))
        assert files, component
        for host_path in files:
            path = root / host_path.lstrip("/")
            assert path.is_file(), host_path
            assert mode(path) == EXPECTED_MODES[Path(host_path).suffix], host_path
        seen.update(files)
    return seen


def test_stacked_manifests_reference_only_existing_files_with_kubeadm_modes(stacked_root: Path) -> None:
    seen = check_tree(stacked_root, COMPONENTS)
    pki = "/etc/kubernetes/pki"
    assert {
        f"{pki}/ca.crt",
        f"{pki}/ca.key",
        f"{pki}/sa.key",
        f"{pki}/sa.pub",
        f"{pki}/apiserver.key",
        f"{pki}/apiserver-etcd-client.key",
        f"{pki}/front-proxy-ca.crt",
        f"{pki}/etcd/ca.crt",
        f"{pki}/etcd/server.key",
        f"{pki}/etcd/peer.key",
        "/etc/kubernetes/controller-manager.conf",
        "/etc/kubernetes/scheduler.conf",
    } <= seen


def test_external_etcd_manifests_reference_the_external_files(external_root: Path) -> None:
    seen = check_tree(external_root, ("kube-apiserver", "kube-controller-manager", "kube-scheduler"))
    assert {
        "/etc/etcd/pki/ca.crt",
        "/etc/etcd/pki/apiserver-etcd-client.crt",
        "/etc/etcd/pki/apiserver-etcd-client.key",
    } <= seen
    assert not any(p.startswith("/etc/kubernetes/pki/etcd/") for p in seen)
    assert not (external_root / "etc/kubernetes/pki/etcd").exists()


def test_manifests_phase_reports_no_reference_warnings_after_certs_and_kubeconfig(
    cli: CliRunner, stacked_root: Path
) -> None:
    node = ["--rootfs", str(stacked_root), "--node-name", NODE, "--advertise-address", ADDRESS]
    doc = cli("phase", "manifests", *node, "-o", "json").json()
    assert doc["ok"] is True and doc["changed"] is False
    assert doc["warnings"] == []


def test_cross_check_flags_a_missing_file_and_a_wrong_mode(tmp_path: Path, stacked_root: Path) -> None:
    pod = yaml.safe_load((stacked_root / MANIFEST_DIR / "kube-scheduler.yaml").read_text())
    root = tmp_path / "root"
    (root / "etc/kubernetes").mkdir(parents=True)
    assert check_references(pod, lambda p: root / p.lstrip("/"), lambda p: True) == (
        [],
        ["/etc/kubernetes/scheduler.conf"],
    )
    conf = root / "etc/kubernetes/scheduler.conf"
    conf.write_text("x")
    conf.chmod(0o644)
    assert check_references(pod, lambda p: root / p.lstrip("/"), lambda p: True) == (
        ["/etc/kubernetes/scheduler.conf has mode 0644, expected 0600"],
        [],
    )
