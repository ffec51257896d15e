"""The kubelet side: its config file, where it watches for static pods, its flags file, its service.

kubeadm writes ``/var/lib/kubelet/config.yaml`` (a KubeletConfiguration) and
``/var/lib/kubelet/kubeadm-flags.env``; we write the same files (the config's content comes from
:mod:`bootstrap.host.kubelet_config`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bootstrap.config.kubeversion import minor_of
from bootstrap.errors import PhaseError
from bootstrap.host.fs import write_atomic
from bootstrap.host.systemd import is_active, run_systemctl, systemctl
from bootstrap.results import Outcome

if TYPE_CHECKING:
    from bootstrap.config import Config

KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
# The kubelet's own kubeconfig (the node's credentials), written by kubeconfig or the TLS bootstrap.
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
KUBELET_FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
# The flag's value ends at whitespace or at the quote closing KUBELET_KUBEADM_ARGS.
_HOSTNAME_OVERRIDE = re.compile(r'--hostname-override=([^\s"]+)')
DEFAULT_STATIC_POD_PATH = "/etc/kubernetes/manifests"
DEFAULT_HEALTHZ = ("127.0.0.1", 10248)
# From this minor version (NodeLocalCRISocket) the runtime endpoint lives in the config file, not a flag.
CRI_IN_CONFIG_FROM_MINOR = 34


def hostname_override(kubelet_flags: Path) -> str | None:
    """The ``--hostname-override`` in the kubelet's flags file (``kubeadm-flags.env``), if any: the name
    the kubelet registers when it differs from the host name."""
    try:
        text = kubelet_flags.read_text()
    except OSError:
        return None
    found = _HOSTNAME_OVERRIDE.search(text)
    return found.group(1) if found else None


def read_kubelet_config(path: Path) -> dict[str, Any] | None:
    """The kubelet config at ``path``; None when there is none. A broken file is an error naming it."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PhaseError(f"{path}: cannot read the kubelet config: {exc}") from exc
    # Only now: a fresh node has no file, and init asks before its keys are all started (yaml's
    # import is a third of what runs between the first keys and the rest).
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PhaseError(f"{path}: cannot read the kubelet config: {exc}") from exc
    if data is None:
        return None
    if not isinstance(data, dict):
        raise PhaseError(f"{path}: not a KubeletConfiguration mapping")
    return data


def healthz_endpoint(kubelet_config: Mapping[str, Any] | None) -> tuple[str, int]:
    config = kubelet_config or {}
    return (
        str(config.get("healthzBindAddress") or DEFAULT_HEALTHZ[0]),
        int(config.get("healthzPort", DEFAULT_HEALTHZ[1])),
    )


def flags_env(cfg: Config, hostname: str) -> str:
    """The ``kubeadm-flags.env`` content: per-node kubelet flags."""
    flags: dict[str, str] = {}
    # From v1.34 (NodeLocalCRISocket) the endpoint lives in the config file instead.
    if minor_of(cfg.kubernetes_version) < CRI_IN_CONFIG_FROM_MINOR:
        flags["container-runtime-endpoint"] = cfg.init.node_registration.cri_socket
    if cfg.node_name != hostname.lower():
        flags["hostname-override"] = cfg.node_name
    for arg in cfg.init.node_registration.kubelet_extra_args:
        flags[arg.name] = arg.value
    args = " ".join(f"--{name}={value}" for name, value in sorted(flags.items()))
    return f'KUBELET_KUBEADM_ARGS="{args}"\n'


class ServiceManager(Protocol):
    """Restarts the kubelet; dry-run and rootfs runs get one that only says what it would do."""

    def restart_kubelet(self, settings_changed: bool) -> tuple[bool, str]:
        """(whether the service was touched, what happened)."""
        ...


class Systemd:
    def restart_kubelet(self, settings_changed: bool) -> tuple[bool, str]:
        found = systemctl()
        if found is None:
            return False, "systemd does not manage this host: start the kubelet yourself"
        active = is_active(found, "kubelet")
        if active and not settings_changed:
            # A converging re-run must not bounce the kubelet (and with it every status it reports).
            return False, "The kubelet is running with these settings already"
        run_systemctl(found, "restart", "kubelet")
        return (
            True,
            "Restarted the kubelet through systemd" if active else "Started the kubelet through systemd",
        )


class NoServiceManager:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def restart_kubelet(self, settings_changed: bool) -> tuple[bool, str]:
        return False, f"Not restarting the kubelet ({self.reason})"


def write_kubelet_files(
    files: Sequence[tuple[str, Path, bytes, int]], manager: ServiceManager
) -> list[Outcome]:
    """Write each ``(shown name, path, content, mode)`` atomically, then restart the kubelet when one
    changed (kubelet-start of init and of join): an unchanged file is left alone and says so."""
    outcomes = []
    for shown, path, data, mode in files:
        if write_atomic(path, data, mode):
            outcomes.append(Outcome(True, f'Writing kubelet file "{shown}"', [path]))
        else:
            outcomes.append(Outcome(False, f'Kubelet file "{shown}" is up to date'))
    touched, message = manager.restart_kubelet(any(o.changed for o in outcomes))
    outcomes.append(Outcome(touched, message))
    return outcomes
