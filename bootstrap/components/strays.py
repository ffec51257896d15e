"""The stray-file guard: files in the static pod directory that the kubelet would also run.

The kubelet loads every non-dot regular file in its static pod directory, whatever the extension
(kubeadm#2823): a ``kube-apiserver.yaml.bak`` runs a second apiserver. Before writing we look at
every such file; a backup or editor leftover, or a foreign file declaring a pod with one of our
names, is an error unless the user asks to quarantine them.
"""

from __future__ import annotations

import shutil
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from bootstrap.components.podfile import declared_pod_name
from bootstrap.errors import PhaseError
from bootstrap.host.fs import ensure_dir

LEFTOVER_SUFFIXES = (
    ".bak",
    ".orig",
    "~",
    ".swp",
    ".swo",
    ".dpkg-old",
    ".dpkg-new",
    ".dpkg-dist",
    ".dpkg-bak",
    ".rpmsave",
    ".rpmnew",
    ".rpmorig",
    ".save",
    ".old",
    ".backup",
    ".tmp",
)


@dataclass(frozen=True)
class Stray:
    path: Path
    reason: str


def kubelet_visible_files(directory: Path) -> list[Path]:
    """What the kubelet loads: non-dot regular files, no subdirectories, sorted by name."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if not p.name.startswith(".") and p.is_file())


def find_strays(directory: Path, our_files: Collection[str], our_pods: Collection[str]) -> list[Stray]:
    strays = []
    for path in kubelet_visible_files(directory):
        if path.name in our_files:
            continue
        if path.name.endswith(LEFTOVER_SUFFIXES):
            strays.append(Stray(path, "a backup or editor leftover"))
            continue
        pod = declared_pod_name(path)
        if pod in our_pods:
            strays.append(Stray(path, f'it declares pod "{pod}", like our {pod}.yaml'))
    return strays


class StrayFiles(PhaseError):
    """Files the kubelet would run next to ours. The message is labelled with the strays' own
    paths: the phase that found them (whichever manifest came first) is not what is wrong."""

    def format_message(self) -> str:
        return self.message


def refuse(strays: list[Stray]) -> StrayFiles:
    listed = ", ".join(f"{s.path} ({s.reason})" for s in strays)
    them = "them" if len(strays) > 1 else "it"
    what = "stray files" if len(strays) > 1 else "a stray file"
    return StrayFiles(
        f"{listed}: {what} in the static pod directory, which the kubelet would run as well. "
        f"Move {them} out of the directory, or re-run with --quarantine-strays"
    )


def quarantine(strays: list[Stray], quarantine_dir: Path) -> list[Path]:
    """Move each stray into ``quarantine_dir`` (created 0700); return the new paths."""
    ensure_dir(quarantine_dir, 0o700)
    moved = []
    for stray in strays:
        target = quarantine_dir / stray.path.name
        shutil.move(str(stray.path), target)
        moved.append(target)
    return moved
