"""Crash injection: ``init`` SIGKILLed just before each file mutation, then simply run again.

A counting run lists every file mutation of ``init``'s pre-cluster phases (preflight, certs,
kubeconfig, manifests; see ``tests/crash_runner.py``). Then, for each point, a fresh run is killed
just before that mutation and ``init`` is run again as a user would, without touching any process.
The second run must succeed and leave a complete, verifying PKI with the right modes; nothing of
the killed run may remain (dot-temp files, processes of its process group, key material under
``$TMPDIR``); a third run must change nothing.

Every run is a new process forked from ``crash_runner.py --serve``, which has imported the modules
once: a short run spends most of its time importing, and there are three runs per point.

CI runs a deterministic sample (every kind of mutation, spread over the whole run, a few points with
RSA keys, whose generation runs in worker processes); ``CRASH_ALL_POINTS=1`` runs every point.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import CLUSTER_PHASES, HOST_CHECKS, files_under
from tests.standin.harness import allocate_ports, init_config
from tests.tools import live_processes, memory_scratch_root, tool

RUNNER = Path(__file__).with_name("crash_runner.py")
ALL_POINTS = os.environ.get("CRASH_ALL_POINTS") == "1"
SAMPLE = 40
RSA_SAMPLE = 4
PKI = "etc/kubernetes/pki"
TEMP_NAME = re.compile(r"\..+\.tmp")


@dataclass
class Case:
    """One key algorithm and the mutations and files of a complete run with it."""

    algorithm: str
    points: list[tuple[str, str]]
    files: list[str]


def write_config(path: Path, algorithm: str) -> Path:
    """A config on free loopback ports of its own (points run in parallel; preflight binds them)."""
    text = init_config(allocate_ports()) + "failSwapOn: false\n"
    path.write_text(text.replace("encryptionAlgorithm: ECDSA-P256", f"encryptionAlgorithm: {algorithm}"))
    return path


def init_args(rootfs: Path, config: Path) -> list[str]:
    return [
        "init",
        "--config",
        str(config),
        "--rootfs",
        str(rootfs),
        "--skip-phases",
        f"kubelet-start,{CLUSTER_PHASES}",
        "--ignore-preflight-errors",
        HOST_CHECKS,
        "-o",
        "json",
    ]


def run_env(tmpdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRASH_")}
    return {**env, "TMPDIR": str(tmpdir), "PYTHONDONTWRITEBYTECODE": "1", **extra}


class ForkServer:
    """Runs ``init`` through ``crash_runner.py --serve``; safe to use from several threads at once."""

    def __init__(self, tmpdir: Path) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(RUNNER), "--serve"],
            env=run_env(tmpdir),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._ids = itertools.count()
        self._write = threading.Lock()
        self._answers: dict[int, queue.Queue[dict[str, int]]] = {}
        threading.Thread(target=self._read_answers, daemon=True).start()

    def _read_answers(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            answer = json.loads(line)
            self._answers[answer["id"]].put(answer)
        for waiting in list(self._answers.values()):  # the server is gone: no one waits for ever
            waiting.put({})

    def run(self, args: list[str], tmpdir: Path, out: Path, **request: object) -> Ran:
        """Run ``bootstrap <args>`` with ``TMPDIR=tmpdir``, its output in ``out``.{stdout,stderr}."""
        ident = next(self._ids)
        answers: queue.Queue[dict[str, int]] = queue.Queue()
        self._answers[ident] = answers
        stdout, stderr = out.with_suffix(".stdout"), out.with_suffix(".stderr")
        line = {
            "id": ident,
            "argv": args,
            "tmpdir": str(tmpdir),
            "stdout": str(stdout),
            "stderr": str(stderr),
        }
        with self._write:
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps({**line, **request}) + "\n")
            self._proc.stdin.flush()
        pid = answers.get(timeout=60).get("pid")
        assert pid is not None, "the fork server died"
        try:
            status = answers.get(timeout=120).get("status")
        except queue.Empty:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"bootstrap {' '.join(args)} ran past 120 s") from None
        assert status is not None, "the fork server died"
        return Ran(pid, status, stdout.read_text(), stderr.read_text())

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        assert self._proc.returncode == 0, f"fork server exit {self._proc.returncode}"


@dataclass
class Ran:
    """One finished run: its pid (also its process group), exit code and output."""

    pid: int
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the runs write: tmpfs when the machine has one (each run fsyncs every file it writes)."""
    root = memory_scratch_root()
    if root is None:
        yield tmp_path_factory.mktemp("crash")
        return
    made = Path(tempfile.mkdtemp(prefix="kb-crash-", dir=root))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


@pytest.fixture(scope="module")
def server(scratch: Path) -> Iterator[ForkServer]:
    (scratch / "server").mkdir()
    started = ForkServer(scratch / "server")
    yield started
    started.close()


def make_case(server: ForkServer, base: Path, algorithm: str) -> Case:
    base.mkdir()
    config = write_config(base / "kubeadm.yaml", algorithm)
    rootfs, record, tmpdir = base / "rootfs", base / "record.json", base / "tmp"
    rootfs.mkdir()
    tmpdir.mkdir()
    ran = server.run(init_args(rootfs, config), tmpdir, base / "count", record=str(record))
    assert ran.returncode == 0, ran.stderr
    return Case(algorithm, [(k, p) for k, p in json.loads(record.read_text())], files_under(rootfs))


@pytest.fixture(scope="module")
def ecdsa(server: ForkServer, scratch: Path) -> Case:
    return make_case(server, scratch / "count-ecdsa", "ECDSA-P256")


@pytest.fixture(scope="module")
def rsa(server: ForkServer, scratch: Path) -> Case:
    return make_case(server, scratch / "count-rsa", "RSA-2048")


def sample(points: list[tuple[str, str]], size: int) -> list[int]:
    """``size`` indices spread over the run: the first, middle and last point of every kind, then evenly."""
    chosen: set[int] = set()
    for kind in sorted({k for k, _ in points}):
        of_kind = [i for i, (k, _) in enumerate(points) if k == kind]
        chosen.update({of_kind[0], of_kind[len(of_kind) // 2], of_kind[-1]})
    # Then evenly spaced points over the whole run, then a finer grid to make up for collisions.
    spread = max(1, size - len(chosen))
    grids = [n * len(points) // spread for n in range(spread)]
    grids += [n * len(points) // (2 * size) for n in range(2 * size)] + list(range(len(points)))
    for index in grids:
        if len(chosen) >= size:
            break
        chosen.add(index)
    return sorted(chosen)


# ---------------------------------------------------------------- checks


def _ca_of(name: str) -> str:
    if name.startswith("etcd/") or name == "apiserver-etcd-client":
        return "etcd/ca"
    return "front-proxy-ca" if name.startswith("front-proxy") else "ca"


def verify_pki(rootfs: Path, scratch: Path) -> list[str]:
    """Problems with the PKI and kubeconfigs under ``rootfs`` (empty when all verify)."""
    problems: list[str] = []
    pki = rootfs / PKI
    chains: dict[str, list[str]] = {}
    for cert_path in sorted(pki.rglob("*.crt")):
        name = str(cert_path.relative_to(pki))[: -len(".crt")]
        chains.setdefault(name if name.endswith("ca") else _ca_of(name), []).append(str(cert_path))
        key_path = cert_path.with_suffix(".key")
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if cert.public_key() != key.public_key():
            problems.append(f"{key_path.name} does not match {cert_path.name}")
        for path, mode in ((cert_path, 0o644), (key_path, 0o600)):
            if path.stat().st_mode & 0o777 != mode:
                problems.append(f"{path}: mode {path.stat().st_mode & 0o777:o}, expected {mode:o}")
    sa_key = serialization.load_pem_private_key((pki / "sa.key").read_bytes(), password=None)
    if serialization.load_pem_public_key((pki / "sa.pub").read_bytes()) != sa_key.public_key():
        problems.append("sa.pub does not match sa.key")
    for conf in sorted((rootfs / "etc/kubernetes").glob("*.conf")):
        user = yaml.safe_load(conf.read_text())["users"][0]["user"]
        extracted = scratch / f"{conf.stem}.crt"
        extracted.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key = serialization.load_pem_private_key(base64.b64decode(user["client-key-data"]), password=None)
        if x509.load_pem_x509_certificate(extracted.read_bytes()).public_key() != key.public_key():
            problems.append(f"{conf.name}: the client key does not match the client certificate")
        chains["ca"].append(str(extracted))
        if conf.stat().st_mode & 0o777 != 0o600:
            problems.append(f"{conf}: mode {conf.stat().st_mode & 0o777:o}, expected 600")
    for manifest in sorted((rootfs / "etc/kubernetes/manifests").iterdir()):
        if manifest.stat().st_mode & 0o777 != 0o600:
            problems.append(f"{manifest}: mode {manifest.stat().st_mode & 0o777:o}, expected 600")
    for ca, certs in chains.items():
        proc = subprocess.run(
            [tool("openssl"), "verify", "-CAfile", str(pki / f"{ca}.crt"), *certs],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            problems.append(f"openssl verify against {ca}.crt: {proc.stdout.strip()} {proc.stderr.strip()}")
    return problems


def processes_in_group(group: int) -> list[int]:
    """Live processes of process group ``group`` (a run and what it forked or spawned)."""
    return live_processes(lambda _, stat: int(stat[2]) == group)


def key_material(directory: Path) -> list[str]:
    return [
        str(p)
        for p in directory.rglob("*")
        if p.is_file() and not p.is_symlink() and b"PRIVATE KEY" in p.read_bytes()
    ]


@pytest.fixture
def reap() -> Iterator[list[int]]:
    """Processes a failed check found alive: killed by pid afterwards, so no test leaves any behind."""
    leftovers: list[int] = []
    yield leftovers
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def crash_and_recover(server: ForkServer, case: Case, point: int, base: Path, reap: list[int]) -> list[str]:
    """Kill a fresh run just before mutation ``point``, run again, and list what is wrong."""
    base.mkdir()
    rootfs, tmpdir = base / "rootfs", base / "tmp"
    rootfs.mkdir()
    tmpdir.mkdir()
    config = write_config(base / "kubeadm.yaml", case.algorithm)
    killed = server.run(init_args(rootfs, config), tmpdir, base / "killed", kill_at=point)
    if killed.returncode != -9:
        return [f"the run was not killed at point {point} (exit {killed.returncode})"]
    runs = itertools.count(2)

    def rerun() -> Ran:
        return server.run(init_args(rootfs, config), tmpdir, base / f"run{next(runs)}")

    again = rerun()
    if again.returncode != 0:
        return [f"re-run exit {again.returncode}: {again.stderr.strip().splitlines()[-1:]}"]
    problems = []
    if files_under(rootfs) != case.files:
        missing = sorted(set(case.files) - set(files_under(rootfs)))
        extra = sorted(set(files_under(rootfs)) - set(case.files))
        problems.append(f"files differ: missing {missing}, extra {extra}")
    else:
        scratch = base / "scratch"
        scratch.mkdir()
        problems += verify_pki(rootfs, scratch)
    temps = [str(p) for p in rootfs.rglob("*") if TEMP_NAME.fullmatch(p.name)]
    if temps:
        problems.append(f"dot-temp files left: {temps}")
    deadline = time.monotonic() + 5
    while (alive := processes_in_group(killed.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive:
        reap.extend(alive)
        problems.append(f"processes of the killed run still alive: {alive}")
    third = rerun()
    changed = json.loads(third.stdout).get("changed") if third.stdout.strip() else None
    if third.returncode != 0 or changed is not False:
        problems.append(f"third run: exit {third.returncode}, changed {changed}")
    leaked = key_material(tmpdir)
    if leaked:
        problems.append(f"key material under TMPDIR: {leaked}")
    return problems


def run_points(server: ForkServer, case: Case, points: list[int], base: Path, reap: list[int]) -> None:
    base.mkdir()

    def one(point: int) -> tuple[int, list[str]]:
        problems = crash_and_recover(server, case, point, base / f"p{point}", reap)
        print(f"crash point {point} {case.points[point][0]}: {problems or 'converged'}", flush=True)
        return point, problems

    failures = {}
    # Each point is a few short runs of a single-threaded program: run points side by side.
    with ThreadPoolExecutor(max(2, os.cpu_count() or 1)) as pool:
        for point, problems in pool.map(one, points):
            if problems:
                kind, path = case.points[point]
                failures[f"{point} ({kind} {Path(path).name})"] = problems
    converged = len(points) - len(failures)
    print(f"crash points converged: {converged}/{len(points)} of {len(case.points)} mutations")
    assert not failures, failures


def test_the_sample_covers_every_kind_of_mutation(ecdsa: Case) -> None:
    kinds = {k for k, _ in ecdsa.points}
    assert {"mkdir", "open-creat", "fsync", "replace"} <= kinds
    chosen = sample(ecdsa.points, SAMPLE)
    assert len(chosen) >= SAMPLE and {ecdsa.points[i][0] for i in chosen} == kinds


def test_init_killed_before_any_file_mutation_converges_on_a_plain_rerun(
    server: ForkServer, ecdsa: Case, scratch: Path, reap: list[int]
) -> None:
    points = list(range(len(ecdsa.points))) if ALL_POINTS else sample(ecdsa.points, SAMPLE)
    run_points(server, ecdsa, points, scratch / "points-ecdsa", reap)


def test_init_with_rsa_keys_killed_while_workers_generate_keys_converges(
    server: ForkServer, rsa: Case, scratch: Path, reap: list[int]
) -> None:
    # RSA keys come from worker processes: kill the run while they work (the certs phase).
    certs = [i for i, (_, path) in enumerate(rsa.points) if f"/{PKI}/" in path]
    if ALL_POINTS:
        points = list(range(len(rsa.points)))
    else:
        points = [certs[len(certs) * n // RSA_SAMPLE] for n in range(RSA_SAMPLE)]
    run_points(server, rsa, points, scratch / "points-rsa", reap)
