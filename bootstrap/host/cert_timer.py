"""The systemd timer that renews certificates unattended: a oneshot service and its daily timer.

The service runs ``certs renew all --if-expiring-within 720h --restart -o json``, so a certificate is
renewed a month before it expires and the components using it are restarted in turn (the JSON
result lands in the journal). The timer fires daily with a randomized delay, so the control-plane
nodes of one cluster do not all restart their components at the same moment, and ``Persistent``
catches up on a run missed while the node was off. Enabling is the ``timers.target.wants`` link
``systemctl enable`` would make, so a ``--rootfs`` tree is complete without a running systemd.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bootstrap.errors import PhaseError
from bootstrap.host.fs import announce, ensure_dir, temp_path, write_atomic
from bootstrap.host.systemd import is_active, run_systemctl, systemctl

UNIT_NAME = "kube-bootstrap-cert-renewal"
UNIT_DIR = "/etc/systemd/system"
WANTS_DIR = f"{UNIT_DIR}/timers.target.wants"
UNIT_MODE = 0o644
RENEW_WINDOW = "720h"
RANDOMIZED_DELAY = "1h"


@dataclass(frozen=True)
class UnitFile:
    host_path: str
    text: str


def systemd_quote(word: str) -> str:
    """``word`` as one argument of a systemd command line: ``%`` and ``$`` doubled (specifiers and
    variables), and double-quoted with backslash escapes when it holds spaces or quotes."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if escaped and not any(c.isspace() or c in "\"'\\;" for c in escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def renew_command(executable: str, extra: Sequence[str] = ()) -> list[str]:
    """The command the service runs (``extra``: e.g. ``--config F`` the user gave)."""
    return [
        executable,
        "certs",
        "renew",
        "all",
        *extra,
        "--if-expiring-within",
        RENEW_WINDOW,
        "--restart",
        "-o",
        "json",
    ]


def units(executable: str, extra: Sequence[str] = ()) -> list[UnitFile]:
    """The service and the timer (host paths and contents)."""
    if not os.path.isabs(executable):
        raise PhaseError(f"{executable}: the bootstrap executable must be an absolute path for systemd")
    command = " ".join(systemd_quote(word) for word in renew_command(executable, extra))
    service = f"""\
[Unit]
Description=Renew kube-bootstrap certificates expiring within {RENEW_WINDOW} and restart their users
After=kubelet.service network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart={command}
"""
    timer = f"""\
[Unit]
Description=Daily renewal of kube-bootstrap certificates expiring within {RENEW_WINDOW}

[Timer]
OnCalendar=daily
RandomizedDelaySec={RANDOMIZED_DELAY}
Persistent=true

[Install]
WantedBy=timers.target
"""
    return [
        UnitFile(f"{UNIT_DIR}/{UNIT_NAME}.service", service),
        UnitFile(f"{UNIT_DIR}/{UNIT_NAME}.timer", timer),
    ]


def install(files: Sequence[UnitFile], locate: Callable[[str], Path]) -> list[tuple[str, bool]]:
    """Write each unit where ``locate`` puts its host path (the rootfs applied) with mode 0644,
    atomically, unchanged ones untouched, then the timer's enabling link. Returns ``(host path,
    changed)`` for each of them."""
    results = []
    for unit in files:
        results.append((unit.host_path, write_atomic(locate(unit.host_path), unit.text.encode(), UNIT_MODE)))
    timer = next(u.host_path for u in files if u.host_path.endswith(".timer"))
    link_host = f"{WANTS_DIR}/{Path(timer).name}"
    # The link itself, not where it points: only its directory is resolved.
    results.append((link_host, _link(locate(WANTS_DIR) / Path(timer).name, timer)))
    return results


def pending(files: Sequence[UnitFile], locate: Callable[[str], Path]) -> list[tuple[str, bool]]:
    """What :func:`install` would change, without writing: ``(host path, would change)``."""
    results = []
    for unit in files:
        path = locate(unit.host_path)
        try:
            same = path.read_bytes() == unit.text.encode() and (path.stat().st_mode & 0o7777) == UNIT_MODE
        except OSError:
            same = False
        results.append((unit.host_path, not same))
    timer = next(u.host_path for u in files if u.host_path.endswith(".timer"))
    link = locate(WANTS_DIR) / Path(timer).name
    linked = link.is_symlink() and os.readlink(link) == timer
    results.append((f"{WANTS_DIR}/{Path(timer).name}", not linked))
    return results


def activate(reload: bool) -> tuple[bool, str]:
    """Start the timer on a host systemd runs (``reload``: the unit files changed); (started, what
    happened). Without systemd the link starts it at the next boot."""
    found = systemctl()
    if found is None:
        return False, "systemd does not run this host: the timer starts when systemd next boots it"
    timer = f"{UNIT_NAME}.timer"
    if reload:
        run_systemctl(found, "daemon-reload")
    if is_active(found, timer):
        return False, f"{timer} is active"
    run_systemctl(found, "start", timer)
    return True, f"Started {timer}"


def _link(path: Path, target: str) -> bool:
    """Point the symbolic link ``path`` at ``target`` (a host path, as systemctl writes it)."""
    if path.is_symlink() and os.readlink(path) == target:
        return False
    if path.exists() and not path.is_symlink():
        raise PhaseError(f"{path}: exists and is not a symbolic link; move it away to enable the timer")
    ensure_dir(path.parent)
    announce(path, "modified" if path.is_symlink() else "file")
    tmp = temp_path(path)
    try:
        os.symlink(target, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PhaseError(f"{path}: cannot link the timer: {exc.strerror or exc}") from exc
    return True
