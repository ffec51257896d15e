"""Preflight: every check named kubeadm-style, all failures at once, ignorable, never fatal in a dry run.

What the checks read from this machine (CPU count, memory, swap, euid) is replaced by an autouse
fixture, so a CLI run here sees a healthy 4-CPU root machine without swap; the kubelet binary and
the CRI socket are faked in the rootfs; the ports are free ones, from the stand-in harness.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from bootstrap.components import spec
from bootstrap.host import preflight_checks
from tests.conftest import NODE, CliRunner
from tests.standin.harness import (
    allocate_ports,
    free_ports,
    init_config,
    prepare_rootfs,
    running_control_plane,
)
from tests.tools import unprivileged_runtime, wait_for

SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
SWAP_ON = SWAPS_HEADER + "/swapfile                               file\t\t4194300\t\t0\t\t-2\n"
APISERVER_FILE_CHECK = "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml"


@pytest.fixture(autouse=True)
def healthy_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight_checks, "effective_uid", lambda: 0)
    monkeypatch.setattr(preflight_checks, "cpu_count", lambda: 4)
    monkeypatch.setattr(preflight_checks, "read_meminfo", lambda: "MemTotal:       16384000 kB\n")
    monkeypatch.setattr(preflight_checks, "read_swaps", lambda: SWAPS_HEADER)


def fake_node(rootfs: Path) -> None:
    """An executable kubelet and a real containerd socket inside ``rootfs``."""
    kubelet = rootfs / "usr/bin/kubelet"
    kubelet.parent.mkdir(parents=True, exist_ok=True)
    kubelet.write_text("#!/bin/sh\nexit 0\n")
    kubelet.chmod(0o755)
    sock_dir = rootfs / "var/run/containerd"
    sock_dir.mkdir(parents=True, exist_ok=True)
    # Bound by a relative name: a unix socket path is limited to 108 bytes, pytest's paths are long.
    with contextlib.chdir(sock_dir), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind("containerd.sock")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config with every control-plane port (and the kubelet's) moved to a free one."""
    ports = allocate_ports()
    (kubelet_port,) = free_ports(1)
    path = tmp_path / "kubeadm.yaml"
    path.write_text(init_config(ports) + f"port: {kubelet_port}\n")
    return path


@pytest.fixture
def args(config: Path, rootfs: Path) -> list[str]:
    fake_node(rootfs)
    return ["--config", str(config), "--rootfs", str(rootfs)]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port this test holds (listening on 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def errors_in(stderr: str) -> list[str]:
    return [line.split("]")[0].removeprefix("[ERROR ") for line in stderr.splitlines() if "[ERROR " in line]


# --- through the CLI ---------------------------------------------------------------------------


def test_clean_node_passes(cli: CliRunner, args: list[str]) -> None:
    result = cli("phase", "preflight", *args)
    assert result.code == 0, result.stderr
    assert "[preflight] Running pre-flight checks: passed" in result.stderr
    assert "[warning]" not in result.stderr


def test_occupied_port_fails_and_is_ignorable_by_name(
    cli: CliRunner, args: list[str], listening: int
) -> None:
    result = cli("phase", "preflight", *args, "--apiserver-bind-port", str(listening))
    assert result.code == 4, result.stderr
    assert errors_in(result.stderr) == [f"Port-{listening}"]
    assert f"[ERROR Port-{listening}]: Port {listening} is in use" in result.stderr

    # Names are case-insensitive.
    ignored = cli(
        "phase", "preflight", *args, "--apiserver-bind-port", str(listening),
        "--ignore-preflight-errors", f"port-{listening}",
    )  # fmt: skip
    assert ignored.code == 0, ignored.stderr
    assert f"[WARNING Port-{listening}]: Port {listening} is in use" in ignored.stderr


def test_ignore_preflight_errors_from_the_config_file(
    cli: CliRunner, args: list[str], config: Path, listening: int
) -> None:
    text = config.read_text().replace(
        f"  name: {NODE}\n", f"  name: {NODE}\n  ignorePreflightErrors: [Port-{listening}]\n"
    )
    config.write_text(text)
    result = cli("phase", "preflight", *args, "--apiserver-bind-port", str(listening))
    assert result.code == 0, result.stderr
    assert f"[WARNING Port-{listening}]" in result.stderr


def test_foreign_manifest_fails_our_own_passes(cli: CliRunner, args: list[str], rootfs: Path) -> None:
    manifest = rootfs / "etc/kubernetes/manifests/kube-apiserver.yaml"
    manifest.parent.mkdir(parents=True)
    # A Pod with our name but not our labels is still someone else's.
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n")
    result = cli("phase", "preflight", *args)
    assert result.code == 4
    assert errors_in(result.stderr) == [APISERVER_FILE_CHECK]
    assert "is not our kube-apiserver manifest" in result.stderr

    manifest.unlink()
    assert cli("phase", "manifests", *args).code == 0
    assert manifest.exists()
    result = cli("phase", "preflight", *args)
    assert result.code == 0, result.stderr


def test_non_empty_etcd_data_dir_is_ours_only_with_our_manifest(
    cli: CliRunner, args: list[str], rootfs: Path
) -> None:
    member = rootfs / "var/lib/etcd/member"
    member.mkdir(parents=True)
    (member / "x").write_text("data")
    result = cli("phase", "preflight", *args)
    assert result.code == 4
    assert errors_in(result.stderr) == ["DirAvailable--var-lib-etcd"]
    assert "var/lib/etcd is not empty" in result.stderr

    assert cli("phase", "manifests", "etcd", *args).code == 0
    assert "--data-dir=/var/lib/etcd" in (rootfs / "etc/kubernetes/manifests/etcd.yaml").read_text()
    result = cli("phase", "preflight", *args)
    assert result.code == 0, result.stderr


def test_etcd_manifest_with_another_data_dir_does_not_own_it(
    cli: CliRunner, args: list[str], rootfs: Path
) -> None:
    assert cli("phase", "manifests", "etcd", *args).code == 0
    etcd = rootfs / "etc/kubernetes/manifests/etcd.yaml"
    etcd.write_text(etcd.read_text().replace("--data-dir=/var/lib/etcd", "--data-dir=/srv/etcd"))
    (rootfs / "var/lib/etcd").mkdir(parents=True)
    (rootfs / "var/lib/etcd/member").write_text("x")
    result = cli("phase", "preflight", *args)
    assert result.code == 4
    assert errors_in(result.stderr) == ["DirAvailable--var-lib-etcd"]


def test_every_failure_is_reported_at_once(
    cli: CliRunner, config: Path, rootfs: Path, listening: int
) -> None:
    # No kubelet binary, no CRI socket, a taken port, a foreign manifest: one run names them all.
    manifest = rootfs / "etc/kubernetes/manifests/kube-apiserver.yaml"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("not: ours\n")
    result = cli(
        "phase", "preflight", "--config", str(config), "--rootfs", str(rootfs),
        "--apiserver-bind-port", str(listening),
    )  # fmt: skip
    assert result.code == 4
    assert errors_in(result.stderr) == [
        "FileExisting-kubelet",
        "CRI",
        f"Port-{listening}",
        APISERVER_FILE_CHECK,
    ]
    assert str(rootfs / "usr/bin/kubelet") in result.stderr
    assert str(rootfs / "var/run/containerd/containerd.sock") in result.stderr
    assert "--ignore-preflight-errors" in result.stderr


def test_ignore_all_and_all_mixed_with_names(cli: CliRunner, node_args: list[str]) -> None:
    result = cli("phase", "preflight", *node_args, "--ignore-preflight-errors", "all")
    assert result.code == 0, result.stderr
    assert "[WARNING FileExisting-kubelet]" in result.stderr and "[WARNING CRI]" in result.stderr
    mixed = cli("phase", "preflight", *node_args, "--ignore-preflight-errors", "all,Port-1")
    assert mixed.code == 2
    assert "'all' cannot be combined" in mixed.stderr


def test_swap_on_fails_unless_the_kubelet_allows_it(
    cli: CliRunner, args: list[str], config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preflight_checks, "read_swaps", lambda: SWAP_ON)
    result = cli("phase", "preflight", *args)
    assert result.code == 4
    assert errors_in(result.stderr) == ["Swap"]
    assert "/swapfile" in result.stderr

    config.write_text(config.read_text() + "failSwapOn: false\n")
    result = cli("phase", "preflight", *args)
    assert result.code == 0, result.stderr


def test_machine_checks_through_the_cli(
    cli: CliRunner, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preflight_checks, "effective_uid", lambda: 1000)
    monkeypatch.setattr(preflight_checks, "cpu_count", lambda: 1)
    monkeypatch.setattr(preflight_checks, "read_meminfo", lambda: "MemTotal:        1024000 kB\n")
    result = cli("phase", "preflight", *args)
    assert result.code == 4
    assert errors_in(result.stderr) == ["IsPrivilegedUser", "NumCPU", "Mem"]


def test_rerun_next_to_our_running_control_plane_passes(cli: CliRunner, tmp_path: Path) -> None:
    rootfs = tmp_path / "node"
    ports = prepare_rootfs(rootfs)
    fake_node(rootfs)
    config = rootfs.parent / f"{rootfs.name}-kubeadm.yaml"
    held = (ports.apiserver, ports.controller_manager, ports.scheduler)
    with running_control_plane(rootfs):
        for port in held:
            wait_for(partial(_in_use, port), what=f"the stand-ins to bind {port}")
        result = cli("phase", "preflight", "--config", str(config), "--rootfs", str(rootfs))
        assert result.code == 0, result.stderr
        assert "[warning]" not in result.stderr

        # The same ports without our manifests are someone else's.
        other = tmp_path / "other"
        fake_node(other)
        result = cli("phase", "preflight", "--config", str(config), "--rootfs", str(other))
        assert result.code == 4
        assert errors_in(result.stderr) == [f"Port-{p}" for p in held]


def _in_use(port: int) -> bool:
    failed = preflight_checks.try_bind("0.0.0.0", port)
    return failed is not None and failed.errno == errno.EADDRINUSE


def test_dry_run_reports_would_be_failures_and_exits_zero(cli: CliRunner, node_args: list[str]) -> None:
    result = cli("phase", "preflight", "--dry-run", *node_args)
    assert result.code == 0, result.stderr
    assert "[warning] [dryrun] would fail: [ERROR FileExisting-kubelet]" in result.stderr
    assert "[warning] [dryrun] would fail: [ERROR CRI]" in result.stderr
    # An error the user ignores is a warning, as in a real run, not a would-fail.
    result = cli("phase", "preflight", "--dry-run", *node_args, "--ignore-preflight-errors", "cri")
    assert result.code == 0, result.stderr
    assert "[warning] [WARNING CRI]" in result.stderr
    # Ignoring is still validated.
    assert (
        cli("phase", "preflight", "--dry-run", *node_args, "--ignore-preflight-errors", "all,CRI").code == 2
    )


def test_dry_run_plan_says_which_checks_would_stop_a_real_run(
    cli: CliRunner, config: Path, rootfs: Path
) -> None:
    # A bare rootfs: no kubelet binary, no CRI socket; everything else is healthy (ports are free).
    args = ["--config", str(config), "--rootfs", str(rootfs), "--dry-run"]
    result = cli("init", *args, "-o", "json")
    assert result.code == 0, result.stderr  # the quick start's dry run works on any machine
    step = next(p for p in result.json()["phases"] if p["path"] == "preflight")
    assert step["status"] == "would-fail"
    assert step["details"]["failedChecks"] == ["FileExisting-kubelet", "CRI"]
    plan = result.json()["dryRunPlan"]["plan"][0]
    assert (plan["phase"], plan["status"]) == ("preflight", "would-fail")
    text = cli("init", *args)
    assert text.code == 0, text.stderr
    assert "preflight: 2 checks would fail (FileExisting-kubelet, CRI) — a real run stops here" in text.stdout
    assert re.search(r"^  preflight +would fail$", text.stdout, re.M)
    assert not list(rootfs.iterdir())


def test_dry_run_plan_of_a_ready_node_says_nothing_would_fail(cli: CliRunner, args: list[str]) -> None:
    result = cli("init", *args, "--dry-run", "-o", "json")
    assert result.code == 0, result.stderr
    step = next(p for p in result.json()["phases"] if p["path"] == "preflight")
    assert step["status"] == "ran" and "details" not in step
    assert "a real run stops here" not in cli("init", *args, "--dry-run").stdout


def _nobody() -> pwd.struct_passwd:
    # Debian (and CI) always has it; a machine without it cannot run this test and must say so.
    return pwd.getpwnam("nobody")


def _as_user(user: pwd.struct_passwd) -> None:
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)


def test_dry_run_as_an_unprivileged_user_exits_zero() -> None:
    assert os.geteuid() == 0, "the suite runs as root (CI does) to switch to the user nobody"
    nobody = _nobody()
    # pytest's tmp_path lives under a 0700 directory: nobody needs one it can reach.
    base = Path(tempfile.mkdtemp(prefix="preflight-nobody-"))
    try:
        base.chmod(0o777)
        rootfs = base / "rootfs"
        rootfs.mkdir()
        rootfs.chmod(0o755)
        # This run's interpreter may live where only root can read (/root/.pyenv): a copy nobody can run.
        command = unprivileged_runtime(base / "runtime")
        env = {
            **os.environ,
            "HOME": str(base),
            "TMPDIR": str(base),
            "BOOTSTRAP_DRYRUN_DIR": str(base / "dry"),
        }
        proc = subprocess.run(
            [*command, "phase", "preflight", "--dry-run", "--rootfs", str(rootfs),
             "--node-name", NODE, "--advertise-address", "10.0.0.1"],
            preexec_fn=lambda: _as_user(nobody),
            env=env,
            cwd=str(base),
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "[dryrun] would fail: [ERROR IsPrivilegedUser]: user is not running as root" in proc.stderr
        assert "[dryrun] would fail: [ERROR FileExisting-kubelet]" in proc.stderr
        assert not any(rootfs.iterdir())
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- the check functions -----------------------------------------------------------------------


def test_swap_check_reads_the_injected_swaps() -> None:
    assert preflight_checks.active_swaps(SWAP_ON) == ["/swapfile"]
    assert preflight_checks.swap(True, lambda: SWAPS_HEADER) is None
    assert preflight_checks.swap(True, lambda: "") is None
    problem = preflight_checks.swap(True, lambda: SWAP_ON)
    assert problem is not None and "/swapfile" in problem and "failSwapOn: false" in problem
    assert preflight_checks.swap(False, lambda: SWAP_ON) is None


def test_fail_swap_on_defaults_to_true() -> None:
    assert preflight_checks.fails_on_swap(None) is True
    assert preflight_checks.fails_on_swap({}) is True
    assert preflight_checks.fails_on_swap({"failSwapOn": True}) is True
    assert preflight_checks.fails_on_swap({"failSwapOn": False}) is False


def test_cpu_and_memory_checks() -> None:
    assert preflight_checks.num_cpu(lambda: 2) is None
    assert "CPUs 1 is less than the required 2" in (preflight_checks.num_cpu(lambda: 1) or "")
    assert preflight_checks.memory(lambda: "MemTotal: 1740800 kB\n") is None  # 1700 MB
    assert "(1699 MB)" in (preflight_checks.memory(lambda: "MemTotal: 1739776 kB\n") or "")
    assert preflight_checks.memory(lambda: "garbage") is None
    assert preflight_checks.privileged_user(lambda: 0) is None
    assert preflight_checks.privileged_user(lambda: 65534) == "user is not running as root"


def test_port_available(listening: int) -> None:
    (free,) = free_ports(1)
    assert preflight_checks.port_available(free, ["0.0.0.0"], lambda: False) is None
    assert (
        preflight_checks.port_available(listening, ["0.0.0.0"], lambda: False)
        == f"Port {listening} is in use"
    )
    assert preflight_checks.port_available(listening, ["127.0.0.1"], lambda: True) is None
    # An address this machine does not have is checked on every interface instead.
    assert preflight_checks.port_available(free, ["192.0.2.1"], lambda: False) is None
    assert (
        preflight_checks.port_available(listening, ["192.0.2.1"], lambda: False)
        == f"Port {listening} is in use"
    )


def test_port_available_asks_ownership_only_when_taken(listening: int) -> None:
    asked: list[bool] = []

    def held() -> bool:
        asked.append(True)
        return False

    (free,) = free_ports(1)
    preflight_checks.port_available(free, ["127.0.0.1"], held)
    assert asked == []
    preflight_checks.port_available(listening, ["127.0.0.1"], held)
    assert asked == [True]


def test_listeners_from_flags_with_component_defaults() -> None:
    def pod(*flags: str) -> dict[str, object]:
        return {"spec": {"containers": [{"command": ["binary", *flags]}]}}

    etcd = pod(
        "--listen-client-urls=https://127.0.0.1:2379,https://10.0.0.1:2379",
        "--listen-peer-urls=https://[fd00::1]:2380",
    )
    assert preflight_checks.listeners("etcd", etcd) == {2379: ["127.0.0.1", "10.0.0.1"], 2380: ["fd00::1"]}
    assert preflight_checks.listeners("etcd", pod()) == {2379: ["127.0.0.1"], 2380: ["127.0.0.1"]}
    assert preflight_checks.listeners("kube-apiserver", pod("--secure-port=7443")) == {7443: ["0.0.0.0"]}
    assert preflight_checks.listeners("kube-scheduler", pod("--bind-address=127.0.0.1")) == {
        10259: ["127.0.0.1"]
    }
    assert preflight_checks.listeners("kube-controller-manager", pod()) == {10257: ["0.0.0.0"]}


def test_our_pod_needs_name_and_both_labels() -> None:
    def pod(name: str, **labels: str) -> dict[str, object]:
        return {"kind": "Pod", "metadata": {"name": name, "labels": labels}}

    assert spec.is_our_pod("etcd", pod("etcd", component="etcd", tier="control-plane"))
    assert not spec.is_our_pod("etcd", pod("etcd", component="etcd"))
    assert not spec.is_our_pod("etcd", pod("etcd-x", component="etcd", tier="control-plane"))
    assert not spec.is_our_pod("etcd", pod("etcd", component="kube-apiserver", tier="control-plane"))
    assert not spec.is_our_pod("etcd", None)


def test_cri_socket_check(tmp_path: Path) -> None:
    def resolve(host: str) -> Path:
        return tmp_path / host.lstrip("/")

    endpoint = "unix:///run/cri.sock"
    assert "does not exist" in (preflight_checks.cri_socket(endpoint, resolve) or "")
    (tmp_path / "run").mkdir()
    (tmp_path / "run/cri.sock").write_text("")
    assert "is not a socket" in (preflight_checks.cri_socket(endpoint, resolve) or "")
    (tmp_path / "run/cri.sock").unlink()
    with contextlib.chdir(tmp_path / "run"), socket.socket(socket.AF_UNIX) as sock:
        sock.bind("cri.sock")
    assert preflight_checks.cri_socket(endpoint, resolve) is None
    assert preflight_checks.cri_socket("/run/cri.sock", resolve) is None
    assert "only unix://" in (preflight_checks.cri_socket("npipe:////./pipe/containerd", resolve) or "")


def test_kubelet_binary_check(tmp_path: Path) -> None:
    binary = tmp_path / "kubelet"
    assert "no executable kubelet" in (preflight_checks.kubelet_binary([binary]) or "")
    binary.write_text("")
    binary.chmod(0o644)
    assert "no executable kubelet" in (preflight_checks.kubelet_binary([binary]) or "")
    binary.chmod(0o755)
    assert preflight_checks.kubelet_binary([binary]) is None
    assert preflight_checks.kubelet_binary([tmp_path / "none"], lambda: "/opt/bin/kubelet") is None
    assert "or on the PATH" in (preflight_checks.kubelet_binary([tmp_path / "none"], lambda: None) or "")


def test_check_names_follow_the_host_path() -> None:
    assert preflight_checks.path_check_name("DirAvailable", "/var/lib/etcd/") == "DirAvailable--var-lib-etcd"
    assert (
        preflight_checks.path_check_name("FileAvailable", "/etc/kubernetes/manifests/kube-apiserver.yaml")
        == APISERVER_FILE_CHECK
    )


def test_every_failure_is_reported_at_once_and_ignores_are_honoured() -> None:
    checks = [
        preflight_checks.Check("A", lambda: "a failed"),
        preflight_checks.Check("B", lambda: None),
        preflight_checks.Check("C", lambda: "c failed"),
    ]
    failures = preflight_checks.evaluate(checks, set())
    assert [(f.name, f.ignored) for f in failures] == [("A", False), ("C", False)]
    assert "[ERROR A]: a failed\n[ERROR C]: c failed" in preflight_checks.failed(failures).message
    assert [f.line("WARNING") for f in preflight_checks.evaluate(checks, {"a", "c"})] == [
        "[WARNING A]: a failed",
        "[WARNING C]: c failed",
    ]
    assert [(f.name, f.ignored) for f in preflight_checks.evaluate(checks, {"a"})] == [
        ("A", True),
        ("C", False),
    ]
    assert [f.ignored for f in preflight_checks.evaluate(checks, {"all"})] == [True, True]
