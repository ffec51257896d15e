"""Refused input writes nothing: an invalid config, a usage error or a failed preflight leaves the
rootfs exactly as it was (no run lock, no ledger, no ``var/lib``)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from bootstrap.host.fs import Rootfs
from bootstrap.host.ledger import LOCK, run_lock
from tests.conftest import ADDRESS, NODE, CliRunner

INVALID_CONFIG = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bogusField: 1
"""


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every path below ``root`` (directories too) with its mode and size: a directory created
    and left empty shows up here."""
    return {
        str(p.relative_to(root)): (p.lstat().st_mode, p.lstat().st_size if p.is_file() else 0)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def invalid_config(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(INVALID_CONFIG)
    return path


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        # The certs phase alone never asked for the config before taking the lock.
        (["phase", "certs", "--config", "{config}"], 3, "bogusField"),
        (["init", "--config", "{config}"], 3, "bogusField"),
        (["init", "--ignore-preflight-errors", "all,CRI"], 2, "--ignore-preflight-errors"),
        (["phase", "kubeconfig", "--ignore-preflight-errors", "all,CRI"], 2, "--ignore-preflight-errors"),
        # A bare rootfs has no kubelet binary and no CRI socket: preflight fails (exit 4).
        (["init"], 4, "FileExisting-kubelet"),
        (["phase", "preflight"], 4, "FileExisting-kubelet"),
    ],
    ids=["config-phase", "config-init", "usage-init", "usage-phase", "preflight-init", "preflight-phase"],
)
def test_refused_input_leaves_the_rootfs_as_it_was(
    cli: CliRunner, rootfs: Path, invalid_config: Path, args: list[str], code: int, says: str
) -> None:
    (rootfs / "etc").mkdir()  # something there already, which must stay exactly as it is
    (rootfs / "etc/hostname").write_text("cp1\n")
    before = listing(rootfs)
    argv = [a.replace("{config}", str(invalid_config)) for a in args]
    result = cli(*argv, "--rootfs", str(rootfs), "--node-name", NODE, "--advertise-address", ADDRESS)
    assert result.code == code, result.stderr
    assert says in result.stderr
    assert listing(rootfs) == before
    assert not (rootfs / "var").exists()


def test_reset_usage_error_leaves_no_lock(cli: CliRunner, rootfs: Path) -> None:
    result = cli("reset", "--force", "--rootfs", str(rootfs), "--timeout", "soon")
    assert result.code == 2 and "--timeout" in result.stderr
    assert list(rootfs.iterdir()) == []


def test_refused_input_still_prints_its_result_document(cli: CliRunner, rootfs: Path) -> None:
    result = cli("init", "--rootfs", str(rootfs), "--node-name", NODE, "-o", "json")
    assert result.code == 4
    doc = result.json()
    assert doc["ok"] is False and doc["error"]["exitCode"] == 4
    assert {p["path"]: p["status"] for p in doc["phases"]}["preflight"] == "failed"
    assert list(rootfs.iterdir()) == []


def test_a_held_lock_is_refused_before_preflight_and_nothing_is_created(cli: CliRunner, rootfs: Path) -> None:
    # Preflight runs before the lock is taken; a busy host must still say it is busy, not that its
    # ports are taken by the run in progress.
    with run_lock(Rootfs(rootfs)):
        before = listing(rootfs)
        result = cli("init", "--rootfs", str(rootfs), "--node-name", NODE, "--advertise-address", ADDRESS)
        after = listing(rootfs)  # while held: releasing the lock empties its file
    assert result.code == 1
    assert "another bootstrap run" in result.stderr and "[ERROR" not in result.stderr
    assert after == before


def test_the_lock_probe_leaves_a_free_lock_free(rootfs: Path) -> None:
    from bootstrap.host.ledger import refuse_if_locked

    with run_lock(Rootfs(rootfs)):
        pass
    refuse_if_locked(Rootfs(rootfs))
    fd = os.open(rootfs / LOCK.lstrip("/"), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if the probe kept it
    finally:
        os.close(fd)


def test_a_successful_run_after_a_refused_one_creates_its_state(cli: CliRunner, rootfs: Path) -> None:
    args = ["--rootfs", str(rootfs), "--node-name", NODE, "--advertise-address", ADDRESS]
    assert cli("init", *args).code == 4
    assert cli("phase", "certs/ca", *args).code == 0
    assert (rootfs / "var/lib/kube-bootstrap/ledger.jsonl").is_file()
    assert (rootfs / "etc/kubernetes/pki/ca.key").is_file()
