"""A worker join SIGKILLed at any phase is completed by simply running it again (issue 12, item 5).

A counting run of ``bootstrap join`` on a fresh node B (against node A of tests/test_join_worker_e2e.py)
lists its file mutations (tests/crash_runner.py) and which phase each belongs to. Then, for the first
mutation of every phase that mutates, a half-written (unsynced) temp file and the very last mutation, a fresh
node B's join is killed just before that mutation; the same join run again as a user would must
register the node, leave no dot-temp file, and a third run must change nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import CoreV1Api

from tests import test_join_worker_e2e as worker
from tests.standin.harness import admin_client, kubelet_once_configured
from tests.test_crash_injection import RUNNER, TEMP_NAME, run_env
from tests.test_init_e2e import Node, plant_host_tools
from tests.tools import wait_for

cluster = worker.cluster  # node A, initialized once for this module
STATE = "var/lib/kube-bootstrap"
# What kubelet-start writes; kubelet-wait-bootstrap then records kubelet.conf and removes the first.
KUBELET_START_FILES = (
    "etc/kubernetes/bootstrap-kubelet.conf",
    "etc/kubernetes/pki/ca.crt",
    "var/lib/kubelet/config.yaml",
    "var/lib/kubelet/kubeadm-flags.env",
)

Cluster = tuple[Node, dict[str, Any], Any]


def fresh_node(base: Path, name: str) -> tuple[Path, Path, Path]:
    """Node B's empty rootfs (host tools planted), its join config and its own TMPDIR."""
    base.mkdir()
    rootfs, tmpdir = base / "rootfs", base / "tmp"
    rootfs.mkdir()
    tmpdir.mkdir()
    plant_host_tools(rootfs)
    return rootfs, worker.join_config(base, name), tmpdir


def crash_args(args: list[str]) -> list[str]:
    """The same join under the crash runner instead of the installed CLI."""
    return [sys.executable, str(RUNNER), *args[1:]]


def phases_of(points: list[tuple[str, str]], rootfs: Path) -> list[str]:
    """The phase of each mutation, from the paths it touches (the record names no phase).

    Before kubelet-start's first write the run only sets up its ledger and lock (preflight writes
    nothing else); kubelet-start ends with the last write of one of its files or their directories.
    """
    relative = [
        str(Path(path).relative_to(rootfs)) if path.startswith(str(rootfs)) else path for _, path in points
    ]
    state_dirs = {STATE, *(str(parent) for parent in Path(STATE).parents)}
    start = next(
        i for i, path in enumerate(relative) if not path.startswith(STATE) and path not in state_dirs
    )
    kubelet_paths = set(KUBELET_START_FILES) | {str(Path(f).parent) for f in KUBELET_START_FILES}
    end = max(
        i
        for i, (kind, path) in enumerate(points)
        if kind != "unlink"
        and (relative[i] in kubelet_paths or Path(relative[i]).parent.as_posix() in kubelet_paths)
    )
    return (
        ["preflight"] * start
        + ["kubelet-start"] * (end + 1 - start)
        + ["kubelet-wait-bootstrap"] * (len(points) - end - 1)
    )


@pytest.fixture(scope="module")
def recorded(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[tuple[str, str]], list[str]]:
    """The mutations of a complete worker join of a fresh node, and the phase of each."""
    base = tmp_path_factory.mktemp("join-count")
    rootfs, cfg, tmpdir = fresh_node(base / "count", "count-b")
    record = base / "record.json"
    with kubelet_once_configured(rootfs):
        proc = subprocess.run(
            crash_args(worker.join_args(cluster, rootfs, cfg)),
            env=run_env(tmpdir, CRASH_RECORD=str(record)),
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert proc.returncode == 0, proc.stderr
    points = [(kind, path) for kind, path in json.loads(record.read_text())]
    return points, phases_of(points, rootfs)


def kill_points(points: list[tuple[str, str]], phases: list[str]) -> list[int]:
    """The first mutation of every phase, the first fsync of a temp file (half written), and the last."""
    chosen = {phases.index(phase) for phase in dict.fromkeys(phases)}
    temp = next(
        i for i, (kind, path) in enumerate(points) if kind == "fsync" and TEMP_NAME.fullmatch(Path(path).name)
    )
    return sorted(chosen | {temp, len(phases) - 1})


def crash_and_rejoin(cluster: Cluster, point: int, base: Path) -> list[str]:
    """Kill a fresh node's join just before mutation ``point``, join again, and list what is wrong."""
    node, _, api = cluster
    name = f"crash-{point}"
    rootfs, cfg, tmpdir = fresh_node(base, name)
    args = worker.join_args(cluster, rootfs, cfg)
    problems: list[str] = []
    with kubelet_once_configured(rootfs):
        killed = subprocess.run(
            crash_args(args), env=run_env(tmpdir, CRASH_KILL_AT=str(point)), capture_output=True, timeout=180
        )
        if killed.returncode != -9:
            return [f"the join was not killed at point {point} (exit {killed.returncode})"]
        code, _, stderr = worker.run(args)
        if code != 0:
            return [f"re-run exit {code}: {stderr.strip().splitlines()[-1:]}"]
        admin = CoreV1Api(admin_client(node.rootfs))
        wait_for(lambda: admin.read_node(name), timeout=60, what=f"Node {name}")
        # kubelet.conf is the node: the API server saw B's own request as system:node:<name>.
        seen = CoreV1Api(worker.node_client(rootfs)).read_node(name).metadata
        if seen is None or seen.name != name:
            problems.append("kubelet.conf read another Node")
        if ("GET", f"/api/v1/nodes/{name}", f"system:node:{name}") not in api.request_log:
            problems.append(f"kubelet.conf does not authenticate as system:node:{name}")
        temps = [str(p) for p in rootfs.rglob("*") if TEMP_NAME.fullmatch(p.name)]
        if temps:
            problems.append(f"dot-temp files left: {temps}")
        if (rootfs / "etc/kubernetes/bootstrap-kubelet.conf").exists():
            problems.append("bootstrap-kubelet.conf left after the TLS bootstrap")
        code, third, stderr = worker.run(args)
        if code != 0 or third.get("changed") is not False:
            problems.append(f"third run: exit {code}, changed {third.get('changed')}: {stderr[-300:]}")
    return problems


def test_the_kill_points_cover_every_phase_of_a_worker_join(
    recorded: tuple[list[tuple[str, str]], list[str]],
) -> None:
    points, phases = recorded
    assert list(dict.fromkeys(phases)) == ["preflight", "kubelet-start", "kubelet-wait-bootstrap"]
    # The classification holds: kubelet-wait-bootstrap's last act is removing the bootstrap kubeconfig.
    assert points[-1][0] == "unlink" and points[-1][1].endswith("/etc/kubernetes/bootstrap-kubelet.conf")
    assert all(kind != "unlink" for kind, _ in points[:-1])
    chosen = kill_points(points, phases)
    assert {phases[i] for i in chosen} == set(phases) and len(points) - 1 in chosen


def test_a_worker_join_killed_at_any_phase_completes_on_a_plain_rerun(
    cluster: Cluster, recorded: tuple[list[tuple[str, str]], list[str]], tmp_path: Path
) -> None:
    points, phases = recorded
    chosen = kill_points(points, phases)

    def one(point: int) -> tuple[int, list[str]]:
        problems = crash_and_rejoin(cluster, point, tmp_path / f"p{point}")
        kind, path = points[point]
        print(
            f"join killed at {point} ({phases[point]}: {kind} {Path(path).name}): {problems or 'converged'}"
        )
        return point, problems

    with ThreadPoolExecutor(2) as pool:
        failures = {point: problems for point, problems in pool.map(one, chosen) if problems}
    print(
        f"join kill points converged: {len(chosen) - len(failures)}/{len(chosen)} of {len(points)} mutations"
    )
    assert not failures, failures
