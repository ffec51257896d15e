"""Preflight checks: each has a kubeadm-style name, all run, all failures are reported at once.

``--ignore-preflight-errors`` (case-insensitive names, or ``all``) turns named errors into warnings.

The checks are plain functions of what they look at; whatever they read from this machine (the
CPU count, ``/proc/meminfo``, ``/proc/swaps``, a bind on a port) is a parameter with the real thing
as default, so tests decide what the machine looks like. The phase adapter
(``bootstrap.phases.preflight``) turns the config and the rootfs into these arguments.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import socket
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bootstrap.components.flags import Flag, is_ipv6, wildcard_for
from bootstrap.components.podfile import our_manifest, pod_flags
from bootstrap.components.spec import CONTROL_PLANE_TIER, SPECS
from bootstrap.errors import PreflightError, UsageError

MIN_CPUS = 2
MIN_MEMORY_MB = 1700
KUBELET_PORT = 10250
KUBELET_BINARIES = ("/usr/bin/kubelet", "/usr/local/bin/kubelet")


@dataclass(frozen=True)
class Check:
    """A named check: returns a problem description, or None when it passes."""

    name: str
    run: Callable[[], str | None]


# --- the machine -------------------------------------------------------------------------------
# What the checks read from this machine; module attributes, so a test can replace them.


def effective_uid() -> int:
    return os.geteuid()


def cpu_count() -> int | None:
    return os.cpu_count()


def _read_text(path: str) -> str:
    with open(path) as file:
        return file.read()


def read_meminfo() -> str:
    return _read_text("/proc/meminfo")


def read_swaps() -> str:
    return _read_text("/proc/swaps")


def privileged_user(euid: Callable[[], int] | None = None) -> str | None:
    return None if (euid or effective_uid)() == 0 else "user is not running as root"


def num_cpu(count: Callable[[], int | None] | None = None) -> str | None:
    cpus = (count or cpu_count)() or 1
    return (
        None
        if cpus >= MIN_CPUS
        else f"the number of available CPUs {cpus} is less than the required {MIN_CPUS}"
    )


def memory(meminfo: Callable[[], str] | None = None) -> str | None:
    try:
        text = (meminfo or read_meminfo)()
        total_kb = next(int(line.split()[1]) for line in text.splitlines() if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None  # cannot tell: not this check's business to fail on
    total_mb = total_kb // 1024
    if total_mb < MIN_MEMORY_MB:
        return f"the system RAM ({total_mb} MB) is less than the minimum {MIN_MEMORY_MB} MB"
    return None


def active_swaps(swaps_text: str) -> list[str]:
    """The swap devices/files listed in ``/proc/swaps`` (its first line is a header)."""
    return [line.split()[0] for line in swaps_text.splitlines()[1:] if line.strip()]


def fails_on_swap(kubelet_config: Mapping[str, Any] | None) -> bool:
    """Whether the kubelet refuses to start with swap on (its ``failSwapOn``, true by default)."""
    return not (kubelet_config is not None and kubelet_config.get("failSwapOn") is False)


def swap(fail_swap_on: bool, swaps: Callable[[], str] | None = None) -> str | None:
    if not fail_swap_on:
        return None
    try:
        devices = active_swaps((swaps or read_swaps)())
    except OSError:
        return None
    if not devices:
        return None
    return (
        f"swap is on ({', '.join(devices)}) and the kubelet would refuse to start: turn swap off "
        "(swapoff -a) or set failSwapOn: false in the KubeletConfiguration"
    )


# --- programs and sockets ----------------------------------------------------------------------


def executable_file(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def kubelet_binary(candidates: Sequence[Path], which: Callable[[], str | None] | None = None) -> str | None:
    """A kubelet binary at one of ``candidates`` (or, when ``which`` is given, on the PATH)."""
    if any(executable_file(p) for p in candidates):
        return None
    if which is not None and which() is not None:
        return None
    where = ", ".join(str(p) for p in candidates) + (" or on the PATH" if which is not None else "")
    return f"no executable kubelet found at {where}"


def host_kubelet_on_path() -> str | None:
    return shutil.which("kubelet")


def cri_socket_path(endpoint: str) -> str:
    """The host path of a unix CRI endpoint (``unix:///run/x.sock`` or a bare absolute path)."""
    if "://" not in endpoint:
        return endpoint
    parts = urlsplit(endpoint)
    if parts.scheme != "unix":
        raise ValueError(f"unsupported CRI endpoint {endpoint}: only unix:// sockets are supported")
    return parts.netloc + parts.path if parts.netloc else parts.path


def cri_socket(endpoint: str, resolve: Callable[[str], Path]) -> str | None:
    """The container runtime's socket exists and is a socket (``resolve`` maps a host path)."""
    try:
        host_path = cri_socket_path(endpoint)
    except ValueError as exc:
        return str(exc)
    path = resolve(host_path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return (
            f"container runtime socket {path} does not exist (criSocket {endpoint}): "
            "is the container runtime installed and running?"
        )
    if not stat.S_ISSOCK(mode):
        return f"container runtime endpoint {path} (criSocket {endpoint}) is not a socket"
    return None


# --- our static pods ---------------------------------------------------------------------------


def listeners(component: str, pod: Mapping[str, Any]) -> dict[int, list[str]]:
    """port -> addresses the component of a pod on disk binds (component defaults for absent flags)."""
    return SPECS[component].listeners(dict(pod_flags(pod)))


def planned_listeners(
    flags_by_component: Mapping[str, Sequence[Flag]],
) -> dict[int, tuple[list[str], list[str]]]:
    """port -> (the addresses it will be bound on, the components binding it), for the control
    plane these flags describe."""
    planned: dict[int, tuple[list[str], list[str]]] = {}
    for component, flags in flags_by_component.items():
        for port, bound in SPECS[component].listeners(dict(flags)).items():
            addresses, owners = planned.setdefault(port, ([], []))
            addresses.extend(bound)
            owners.append(component)
    return planned


def held_by_our_pod(components: Iterable[str], port: int, manifest: Callable[[str], Path]) -> bool:
    """Our manifest of one of ``components`` (``manifest`` locates it) is in place and binds ``port``:
    a re-run next to our own running control plane."""
    for component in components:
        pod = our_manifest(component, manifest(component))
        if pod is not None and port in listeners(component, pod):
            return True
    return False


def kubelet_listener(kubelet_config: Mapping[str, Any] | None) -> tuple[int, str]:
    """The port and address the kubelet serves on, from its configuration (its defaults otherwise)."""
    kubelet = kubelet_config or {}
    port, address = kubelet.get("port"), kubelet.get("address")
    return (
        port if isinstance(port, int) else KUBELET_PORT,
        address if isinstance(address, str) else "0.0.0.0",
    )


def port_checks(
    flags_by_component: Mapping[str, Sequence[Flag]],
    manifest: Callable[[str], Path],
    kubelet_config: Mapping[str, Any] | None,
    kubelet_configured: Callable[[], bool],
) -> list[Check]:
    """One ``Port-N`` check per port the control plane and the kubelet will bind. A port our own
    manifest binds, or the kubelet's once we configured it, is expected to be taken on a re-run."""
    checks = [
        Check(
            f"Port-{port}",
            partial(port_available, port, addresses, partial(held_by_our_pod, owners, port, manifest)),
        )
        for port, (addresses, owners) in planned_listeners(flags_by_component).items()
    ]
    port, address = kubelet_listener(kubelet_config)
    checks.append(Check(f"Port-{port}", partial(port_available, port, [address], kubelet_configured)))
    return checks


def etcd_owns_data_dir(manifest: Path, data_dir: str) -> bool:
    """Our etcd manifest is at ``manifest`` and keeps its data in ``data_dir``."""
    pod = our_manifest("etcd", manifest)
    if pod is None:
        return False
    declared = dict(pod_flags(pod)).get("data-dir")
    return declared is not None and posixpath.normpath(declared) == posixpath.normpath(data_dir)


# --- ports -------------------------------------------------------------------------------------


def try_bind(address: str, port: int) -> OSError | None:
    """Bind ``address:port`` as a server would (SO_REUSEADDR, so TIME_WAIT leftovers do not count)."""
    family = socket.AF_INET6 if is_ipv6(address) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            return exc
    return None


def port_available(
    port: int,
    addresses: Iterable[str],
    held_by_us: Callable[[], bool],
    bind: Callable[[str, int], OSError | None] = try_bind,
) -> str | None:
    """``port`` can be bound on every address the control plane binds it on, or is already ours.

    An address that is not on this machine (a rootfs prepared for another host) is checked as the
    wildcard address instead: the port must be free on every interface.
    """
    problems = []
    for address in dict.fromkeys(addresses):
        failed = bind(address, port)
        if failed is not None and failed.errno == errno.EADDRNOTAVAIL:
            address = wildcard_for(address)
            failed = bind(address, port)
        if failed is None:
            continue
        if failed.errno == errno.EADDRINUSE:
            if held_by_us():
                return None
            return f"Port {port} is in use"
        problems.append(f"cannot bind {address}:{port}: {failed.strerror or failed}")
    return "; ".join(problems) or None


# --- files and directories ---------------------------------------------------------------------


def path_check_name(kind: str, host_path: str) -> str:
    """kubeadm's naming: ``FileAvailable--etc-kubernetes-manifests-etcd.yaml``."""
    return f"{kind}-{posixpath.normpath(host_path).replace('/', '-')}"


def file_available(component: str, path: Path) -> str | None:
    """The manifest we are about to write is absent, or a manifest of ours."""
    if not path.exists() and not path.is_symlink():
        return None
    if our_manifest(component, path) is not None:
        return None
    return (
        f"{path} already exists and is not our {component} manifest "
        f"(a Pod named {component} labelled component={component}, tier={CONTROL_PLANE_TIER})"
    )


def dir_available(path: Path, ours: Callable[[], bool]) -> str | None:
    """``path`` is absent or empty, or ours (``ours`` decides, asked only when it is not empty)."""
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_dir():
        return f"{path} exists and is not a directory"
    if not any(path.iterdir()) or ours():
        return None
    return f"{path} is not empty"


# --- the runner --------------------------------------------------------------------------------


def normalize_ignored(names: Iterable[str]) -> set[str]:
    ignored = {n.strip().lower() for n in names if n.strip()}
    if "all" in ignored and len(ignored) > 1:
        raise UsageError("--ignore-preflight-errors: 'all' cannot be combined with other names")
    return ignored


@dataclass(frozen=True)
class Failure:
    """A check that found a problem; ``ignored`` when ``--ignore-preflight-errors`` names it."""

    name: str
    problem: str
    ignored: bool

    def line(self, severity: str) -> str:
        return f"[{severity} {self.name}]: {self.problem}"


def evaluate(checks: Sequence[Check], ignored: set[str]) -> list[Failure]:
    """Run every check; the failures, each marked ignored or not."""
    failures = []
    for check in checks:
        try:
            problem = check.run()
        except OSError as exc:
            problem = f"the check could not run: {exc}"
        if problem is not None:
            failures.append(Failure(check.name, problem, "all" in ignored or check.name.lower() in ignored))
    return failures


def failed(errors: Sequence[Failure]) -> PreflightError:
    """The error a real run stops with: every failure at once, and how to ignore one."""
    return PreflightError(
        "preflight checks failed:\n"
        + "\n".join(f.line("ERROR") for f in errors)
        + "\nTo ignore a check, use --ignore-preflight-errors=<Name>,..."
    )
