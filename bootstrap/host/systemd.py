"""systemctl on a host that systemd runs: the kubelet's restart and the renewal timer's start."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bootstrap.errors import PhaseError


def systemctl() -> str | None:
    """The systemctl executable when systemd runs this host (``/run/systemd/system`` exists), else None:
    a container or a chroot may have systemctl without a running systemd."""
    found = shutil.which("systemctl")
    return found if found is not None and Path("/run/systemd/system").is_dir() else None


def is_active(systemctl_path: str, unit: str) -> bool:
    return subprocess.run([systemctl_path, "is-active", "--quiet", unit], check=False).returncode == 0


def run_systemctl(systemctl_path: str, *args: str) -> None:
    """``systemctl ARGS``; a PhaseError naming the command and systemctl's message when it fails."""
    proc = subprocess.run([systemctl_path, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PhaseError(f"systemctl {' '.join(args)} failed: {proc.stderr.strip() or proc.returncode}")
