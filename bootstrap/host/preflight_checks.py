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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bootstrap.components.flags import flag_value, is_ipv6
from bootstrap.errors import PreflightError, UsageError

MIN_CPUS = 2
MIN_MEMORY_MB = 1700
KUBELET_PORT = 10250
KUBELET_BINARIES = ("/usr/bin/kubelet", "/usr/local/bin/kubelet")
CONTROL_PLANE_TIER = "control-plane"


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


def load_pod(path: Path) -> dict[str, Any] | None:
    """The document in ``path`` when it is a readable mapping (YAML or JSON), else None."""
    try:
        import yaml  # here, not at the top: the phase tree is imported at start-up

        document = yaml.safe_load(path.read_text(errors="replace"))
    except (OSError, yaml.YAMLError):
        return None
    return document if isinstance(document, dict) else None


def is_our_pod(component: str, pod: Mapping[str, Any] | None) -> bool:
    """A static pod we wrote: a Pod named after ``component``, labelled as our control-plane tier."""
    if pod is None or pod.get("kind") != "Pod":
        return False
    metadata = pod.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("name") != component:
        return False
    labels = metadata.get("labels")
    return (
        isinstance(labels, dict)
        and labels.get("component") == component
        and labels.get("tier") == CONTROL_PLANE_TIER
    )


def our_manifest(component: str, path: Path) -> dict[str, Any] | None:
    """The pod in ``path`` when the file exists and is ours, else None."""
    if not path.is_file():
        return None
    pod = load_pod(path)
    return pod if is_our_pod(component, pod) else None


def pod_flags(pod: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(name, value)`` of every ``--name=value`` of the pod's first container (command + args)."""
    try:
        container = pod["spec"]["containers"][0]
        words = [*(container.get("command") or [])[1:], *(container.get("args") or [])]
    except (KeyError, IndexError, TypeError, AttributeError):
        return []
    flags = []
    for word in words:
        text = str(word)
        if text.startswith("-"):
            name, _, value = text.lstrip("-").partition("=")
            flags.append((name, value))
    return flags


# component -> (port flag, its default) for the components that serve on one secure port
SECURE_PORTS = {
    "kube-apiserver": ("secure-port", 6443),
    "kube-controller-manager": ("secure-port", 10257),
    "kube-scheduler": ("secure-port", 10259),
}
# etcd's listeners and the component's own defaults
ETCD_LISTENERS = {"listen-client-urls": "http://localhost:2379", "listen-peer-urls": "http://localhost:2380"}


def _wildcard_for(address: str) -> str:
    return "::" if is_ipv6(address) else "0.0.0.0"


def _bind_host(host: str | None) -> str:
    """The address a listener binds: the wildcard when none is given."""
    if not host:
        return "0.0.0.0"
    return "127.0.0.1" if host == "localhost" else host.strip("[]")


def listeners(component: str, pod: Mapping[str, Any]) -> dict[int, list[str]]:
    """port -> addresses the component binds, from its flags (component defaults for absent ones)."""
    flags = pod_flags(pod)
    found: dict[int, list[str]] = {}
    if component == "etcd":
        for flag, default in ETCD_LISTENERS.items():
            for url in (flag_value(flags, flag) or default).split(","):
                parts = urlsplit(url.strip())
                try:
                    port = parts.port
                except ValueError:
                    port = None
                if port is not None:
                    found.setdefault(port, []).append(_bind_host(parts.hostname))
        return found
    if component in SECURE_PORTS:
        port_flag, default_port = SECURE_PORTS[component]
        value = flag_value(flags, port_flag)
        port = int(value) if value and value.isdigit() else default_port
        found[port] = [_bind_host(flag_value(flags, "bind-address"))]
    return found


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
            address = _wildcard_for(address)
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
