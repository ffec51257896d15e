"""Writes rendered manifests into the kubelet's directory: atomic, unchanged files untouched, diffs."""

from __future__ import annotations

import difflib
from pathlib import Path

from bootstrap.components.render import Manifest
from bootstrap.host.fs import write_atomic
from bootstrap.results import Outcome

MANIFEST_MODE = 0o600
MANIFEST_DIR_MODE = 0o700


def unified_diff(path: Path, new_text: str, label: str | None = None) -> str:
    """The change from ``path`` to ``new_text``; headers name ``label`` (the host path) when given."""
    old_text = path.read_text() if path.exists() else ""
    return text_diff(old_text, new_text, label or str(path))


def text_diff(old_text: str | None, new_text: str, name: str) -> str:
    """The change from ``old_text`` to ``new_text`` of the file ``name`` (from /dev/null when empty)."""
    lines = difflib.unified_diff(
        (old_text or "").splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=name if old_text else "/dev/null",
        tofile=name,
    )
    return "".join(lines)


def write_manifest(directory: Path, manifest: Manifest) -> Outcome:
    path = directory / manifest.filename
    changed = write_atomic(path, manifest.text.encode(), MANIFEST_MODE, dir_mode=MANIFEST_DIR_MODE)
    if changed:
        return Outcome(True, f'Wrote static Pod manifest for "{manifest.component}" to "{path}"', [path])
    return Outcome(False, f'Static Pod manifest for "{manifest.component}" is up to date in "{path}"')
