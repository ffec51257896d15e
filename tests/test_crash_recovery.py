"""A killed or failed run never blocks the next one and leaves nothing behind (issue 10, item 4).

Regressions for what crash injection found: key workers that outlived a killed run and kept the
run lock, a lock whose holder is gone, dot-temp files (possibly holding a key) never removed,
``phase certs`` failing mid-way and leaving a new CA behind, and admin.conf's credentials copied
into ``$TMPDIR`` by the Kubernetes client library.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.cluster.client import KubeApi
from bootstrap.host.fs import Rootfs
from bootstrap.host.ledger import LOCK, run_lock
from tests.conftest import NODE
from tests.test_crash_injection import key_material
from tests.tools import live_processes, tool

PKI = "etc/kubernetes/pki"
NODE_ARGS = ["--node-name", NODE, "--advertise-address", "127.0.0.1"]


def processes_marked(mark: str) -> list[int]:
    """Live processes whose environment carries ``mark``."""
    return live_processes(lambda proc, _: mark.encode() in (proc / "environ").read_bytes())


def bootstrap(
    rootfs: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("bootstrap"), *args, "--rootfs", str(rootfs), *NODE_ARGS, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; any still running at the end is killed by its pid."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def our_pid_namespace() -> str:
    return os.readlink("/proc/self/ns/pid")


def stale_record(pid: int) -> str:
    return json.dumps({"pid": pid, "start": "1", "pidns": our_pid_namespace(), "command": "bootstrap init"})


def test_a_killed_runs_key_workers_die_with_it_and_the_next_run_takes_the_lock(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    mark = uuid.uuid4().hex
    env = {**os.environ, "CRASH_MARK": mark}
    # No config: RSA-2048 keys, generated ahead of time in worker processes.
    proc = subprocess.Popen(
        [tool("bootstrap"), "phase", "certs", "--rootfs", str(tmp_path), *NODE_ARGS],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started.append(proc)
    deadline = time.monotonic() + 60
    while not (tmp_path / PKI / "ca.key").exists() or len(processes_marked(mark)) < 2:
        assert proc.poll() is None, "the run ended before it could be killed with its workers running"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    workers = [pid for pid in processes_marked(mark) if pid != proc.pid]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 2
    while (alive := processes_marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in alive:  # a failure must not leave them running
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert workers and alive == []
    result = bootstrap(tmp_path, "phase", "certs")
    assert result.returncode == 0, result.stderr
    assert f"the previous run (pid {proc.pid}: bootstrap phase certs" in result.stderr
    assert any(f"pid {proc.pid}" in w for w in json.loads(result.stdout)["warnings"])


def test_a_lock_naming_a_dead_run_is_taken_over_with_a_warning(tmp_path: Path) -> None:
    lock = tmp_path / LOCK.lstrip("/")
    lock.parent.mkdir(parents=True)
    pid = dead_pid()
    lock.write_text(stale_record(pid))
    result = bootstrap(tmp_path, "phase", "certs", "ca")
    assert result.returncode == 0, result.stderr
    assert (
        f"the previous run (pid {pid}: bootstrap init) ended without releasing the run lock" in result.stderr
    )
    assert (tmp_path / PKI / "ca.crt").exists()
    assert lock.read_text() == ""  # released: it names no one


def test_a_lock_held_by_processes_a_dead_run_left_is_taken_over_with_a_warning(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    # What older versions left: a forked worker keeping the lock after its run was killed.
    lock = tmp_path / LOCK.lstrip("/")
    lock.parent.mkdir(parents=True)
    pid = dead_pid()
    lock.write_text(stale_record(pid))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
    )
    started.append(holder)
    assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
    result = bootstrap(tmp_path, "phase", "certs", "ca")
    assert result.returncode == 0, result.stderr
    assert f"held by processes left behind by pid {pid}, which has ended" in result.stderr


def test_a_lock_held_by_a_live_run_is_still_refused(tmp_path: Path) -> None:
    fs = Rootfs(tmp_path)
    with run_lock(fs):
        result = bootstrap(tmp_path, "phase", "certs", "ca")
    assert result.returncode == 1
    assert f"another bootstrap run is working on this host (pid {os.getpid()}" in result.stderr
    assert not (tmp_path / PKI).exists()


def test_a_forked_child_does_not_keep_the_lock(tmp_path: Path) -> None:
    fs = Rootfs(tmp_path)
    with run_lock(fs):
        child = os.fork()
        if child == 0:  # pragma: no cover - the child outlives the lock, as a key worker could
            time.sleep(30)
            os._exit(0)
    try:
        fd = os.open(fs.path(LOCK), os.O_RDWR)
        try:
            # The child lets go in its at-fork handler, once it is first scheduled: on a loaded machine
            # that can come after the parent is done. A child that kept the lock holds it for 30 s.
            deadline = time.monotonic() + 5
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            os.close(fd)
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_stale_dot_temps_of_ours_are_removed_and_others_kept(tmp_path: Path) -> None:
    assert bootstrap(tmp_path, "phase", "certs", "ca").returncode == 0
    pki = tmp_path / PKI
    leftover = pki / ".ca.key.0123abcd.tmp"
    leftover.write_bytes(b"-----BEGIN EC PRIVATE KEY-----\nMHc...\n-----END EC PRIVATE KEY-----\n")
    leftover.chmod(0o600)
    foreign = [pki / ".ca.key.tmp", pki / ".notes.0123ABCD.tmp", pki / "ca.key.0123abcd.tmp"]
    for path in foreign:
        path.write_text("not ours")
    linked = pki / ".sa.key.89abcdef.tmp"
    linked.symlink_to(pki / "ca.crt")
    result = bootstrap(tmp_path, "phase", "certs", "ca")
    assert result.returncode == 0, result.stderr
    assert not leftover.exists()
    assert all(path.exists() for path in foreign)
    assert linked.is_symlink()  # only regular files are ours to remove
    assert f"removed 1 half-written file(s) an interrupted run left behind: {leftover}" in result.stderr
    assert "PRIVATE KEY" not in result.stderr + result.stdout


def test_phase_certs_failing_midway_leaves_no_new_ca(tmp_path: Path) -> None:
    # An apiserver certificate restored without its CA: the phase creates a CA, then the apiserver
    # step fails (signed by another CA). The new CA must not stay.
    other = tmp_path / "other"
    other.mkdir()
    for step in ("ca", "apiserver"):
        assert bootstrap(other, "phase", "certs", step).returncode == 0
    node = tmp_path / "node"
    (node / PKI).mkdir(parents=True)
    for name in ("apiserver.crt", "apiserver.key"):
        (node / PKI / name).write_bytes((other / PKI / name).read_bytes())
    result = bootstrap(node, "phase", "certs")
    assert result.returncode == 1
    assert "signed by another CA" in result.stderr
    assert sorted(p.name for p in (node / PKI).iterdir()) == ["apiserver.crt", "apiserver.key"]
    assert "phase certs failed: removed the 2 path(s) it had created" in result.stderr


def test_phase_certs_failing_removes_directories_it_created(tmp_path: Path) -> None:
    # sa.pub present without sa.key is replaced; sa.pub not matching an existing sa.key fails:
    # everything the phase created before, etcd/ included, goes.
    other = tmp_path / "other"
    other.mkdir()
    assert bootstrap(other, "phase", "certs", "sa").returncode == 0
    node = tmp_path / "node"
    (node / PKI).mkdir(parents=True)
    (node / PKI / "sa.key").write_bytes((other / PKI / "sa.key").read_bytes())
    (node / PKI / "sa.key").chmod(0o600)
    assert bootstrap(tmp_path / "third", "phase", "certs", "sa").returncode == 0
    (node / PKI / "sa.pub").write_bytes((tmp_path / "third" / PKI / "sa.pub").read_bytes())
    result = bootstrap(node, "phase", "certs")
    assert result.returncode == 1, result.stderr
    assert "sa.pub: does not match" in result.stderr
    assert sorted(p.name for p in (node / PKI).iterdir()) == ["sa.key", "sa.pub"]


def test_the_api_client_keeps_admin_credentials_out_of_tmpdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    for step in ("certs", "kubeconfig"):
        assert bootstrap(rootfs, "phase", step).returncode == 0
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # let tempfile see the new TMPDIR
    api = KubeApi(rootfs / "etc/kubernetes/admin.conf")
    configuration = api._client.configuration
    try:
        for path in (configuration.cert_file, configuration.key_file, configuration.ssl_ca_cert):
            assert path.startswith("/proc/self/fd/")
        assert b"PRIVATE KEY" in Path(configuration.key_file).read_bytes()
        assert key_material(tmpdir) == [] and list(tmpdir.iterdir()) == []
    finally:
        api.close()
