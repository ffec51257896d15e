"""What the run data wires together, each tested alone: the dry-run directory and its wait
announcement, the lock-and-ledger session, and the look at a mirror pod before a manifest is replaced."""

from __future__ import annotations

import io
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from bootstrap.errors import UsageError
from bootstrap.host.fs import Rootfs, write_atomic
from bootstrap.host.ledger import LOCK, Ledger, LockHeld, recorded_run, refuse_if_locked, run_lock
from bootstrap.output import Reporter
from bootstrap.wait.health import Endpoint
from bootstrap.wait.observe import mirror_pod_hash
from bootstrap.wait.waiter import WaitPlan
from bootstrap.workflow.dryrun import DRYRUN_DIR_ENV, announce_wait, prepare_directory


def reporter(verbose: bool = False) -> tuple[Reporter, io.StringIO]:
    err = io.StringIO()
    return Reporter("text", err=err, verbose=verbose), err


@pytest.fixture
def host(tmp_path: Path) -> Rootfs:
    """A host with a PKI (a private key, a world-readable cert) reached through a link, as some are."""
    root = tmp_path / "host"
    pki = root / "srv/pki"
    pki.mkdir(parents=True)
    (pki / "ca.key").write_text("KEY")
    (pki / "ca.key").chmod(0o600)
    (pki / "ca.crt").write_text("CERT")
    (pki / "ca.crt").chmod(0o644)
    (root / "etc/kubernetes").mkdir(parents=True)
    (root / "etc/kubernetes/pki").symlink_to(pki)
    (root / "var/lib/kubelet").mkdir(parents=True)
    (root / "var/lib/kubelet/config.yaml").write_text("kind: KubeletConfiguration\n")
    return Rootfs(root)


SEEDED = ("/etc/kubernetes", "/var/lib/kubelet/config.yaml", "/var/lib/kubelet/kubeadm-flags.env")


def test_the_dry_run_directory_holds_private_copies_of_what_exists(
    host: Rootfs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DRYRUN_DIR_ENV, str(tmp_path / "dry"))
    rep, err = reporter()
    root, owned = prepare_directory(host, SEEDED, rep)
    assert root == tmp_path / "dry" and not owned  # the user's directory: kept at exit
    assert root.stat().st_mode & 0o777 == 0o700
    copied = root / "etc/kubernetes/pki"
    assert not copied.is_symlink()  # a write must never go through to the real PKI
    assert (copied / "ca.key").read_text() == "KEY" and (copied / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (copied / "ca.crt").stat().st_mode & 0o777 == 0o644
    assert (root / "var/lib/kubelet/config.yaml").read_text() == "kind: KubeletConfiguration\n"
    assert not (root / "var/lib/kubelet/kubeadm-flags.env").exists()  # absent on the host: absent here
    assert f"[dryrun] Writing files to {root} instead of the real paths" in err.getvalue()


def test_a_temporary_dry_run_directory_is_the_runs_to_remove(
    host: Rootfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DRYRUN_DIR_ENV, raising=False)
    rep, err = reporter(verbose=True)
    root, owned = prepare_directory(host, SEEDED, rep, quiet=True)
    try:
        assert owned and root.name.startswith("bootstrap-init-dryrun-")
        assert (root / "etc/kubernetes/pki/ca.crt").read_text() == "CERT"
        assert err.getvalue() == f"[debug] dry run: working in {root}\n"  # --diff: only with -v
    finally:
        shutil.rmtree(root)


def test_a_dry_run_directory_with_files_in_it_is_refused(
    host: Rootfs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "left-over").write_text("")
    monkeypatch.setenv(DRYRUN_DIR_ENV, str(used))
    with pytest.raises(UsageError, match=f"{DRYRUN_DIR_ENV}=.*must be empty or absent"):
        prepare_directory(host, SEEDED, reporter()[0])
    assert sorted(p.name for p in used.iterdir()) == ["left-over"]


def test_the_dry_run_says_what_it_would_wait_for(tmp_path: Path) -> None:
    plan = WaitPlan(
        node_name="cp1",
        endpoints={"kube-apiserver": Endpoint("kube-apiserver", "https", "10.0.0.1", 6443, "/livez", True)},
        freshness={},
        settle=5.0,
        timeout=60.0,
        kubelet_healthz=Endpoint("kubelet", "http", "127.0.0.1", 10248, "/healthz", False),
        admin_conf=tmp_path / "admin.conf",
        manifest_dir="/etc/kubernetes/manifests",
        kubelet_watches=None,
    )
    rep, err = reporter()
    announce_wait(rep, plan)
    assert err.getvalue().splitlines() == [
        "[wait-control-plane] Would wait for the kubelet at http://127.0.0.1:10248/healthz",
        "[wait-control-plane] Would wait for mirror pod kube-system/kube-apiserver-cp1 and "
        "https://10.0.0.1:6443/livez",
    ]


def test_a_recorded_run_holds_the_lock_and_records_what_it_creates(tmp_path: Path) -> None:
    fs = Rootfs(tmp_path)
    with recorded_run(fs, fs):
        with pytest.raises(LockHeld):
            refuse_if_locked(fs)
        write_atomic(fs.path("/etc/kubernetes/admin.conf"), b"x", 0o600)
    refuse_if_locked(fs)  # released
    assert {"path": "/etc/kubernetes/admin.conf", "kind": "file"} in Ledger(fs).entries()


def test_a_recorded_run_without_a_lock_records_in_its_own_filesystem(tmp_path: Path) -> None:
    real, scratch = Rootfs(tmp_path / "real"), Rootfs(tmp_path / "scratch")
    with run_lock(real), recorded_run(None, scratch):  # it takes no lock, so it cannot collide
        write_atomic(scratch.path("/etc/kubernetes/admin.conf"), b"x", 0o600)
    assert {"path": "/etc/kubernetes/admin.conf", "kind": "file"} in Ledger(scratch).entries()
    assert not any(e["path"].startswith("/etc") for e in Ledger(real).entries())
    assert not scratch.path(LOCK).exists()


def test_no_admin_conf_means_no_mirror_pod_was_seen(tmp_path: Path) -> None:
    heard: list[str] = []
    assert mirror_pod_hash(tmp_path / "admin.conf", "etcd", "cp1", heard.append) is None
    assert heard == []


def test_a_mirror_pod_is_not_asked_for_where_nothing_listens(tmp_path: Path) -> None:
    with socket.socket() as held:  # bound, not listening: a connect is refused
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        admin = tmp_path / "admin.conf"
        admin.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "k", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                    "contexts": [{"name": "k", "context": {"cluster": "k", "user": "admin"}}],
                    "current-context": "k",
                    "users": [{"name": "admin", "user": {}}],
                }
            )
        )
        heard: list[str] = []
        assert mirror_pod_hash(admin, "etcd", "cp1", heard.append) is None
    assert heard == [f"mirror pod of etcd not observed: nothing listens at 127.0.0.1:{port}"]


def test_a_temporary_dry_run_directory_is_removed_when_seeding_fails(
    host: Rootfs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DRYRUN_DIR_ENV, raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    host.path("/etc/kubernetes/dangling").symlink_to("/nonexistent")  # links are followed: this one fails
    with pytest.raises(OSError, match="dangling"):
        prepare_directory(host, SEEDED, reporter()[0])
    assert not list(tmp_path.glob("bootstrap-init-dryrun-*"))
