"""The cross-check: every file a manifest points at exists, with the mode we give such files."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MODES_BY_SUFFIX = {".crt": 0o644, ".key": 0o600, ".pub": 0o600, ".conf": 0o600}


def referenced_files(pod: dict[str, Any]) -> Iterator[str]:
    """Host paths of files the pod needs: file-valued flags and File/FileOrCreate hostPath volumes."""
    for container in pod.get("spec", {}).get("containers", []):
        for arg in container.get("command", [])[1:]:
            _, _, value = arg.partition("=")
            for item in value.split(","):
                if item.startswith("/") and Path(item).suffix in MODES_BY_SUFFIX:
                    yield item
    for volume in pod.get("spec", {}).get("volumes", []):
        host_path = volume.get("hostPath") or {}
        if host_path.get("type") in ("File", "FileOrCreate"):
            yield host_path["path"]


def check_references(
    pod: dict[str, Any], locate: Callable[[str], Path], owned: Callable[[str], bool]
) -> tuple[list[str], list[str]]:
    """Problems with the files ``pod`` references (``owned`` says which must have our modes), and
    the host paths of the referenced files that do not exist."""
    problems: list[str] = []
    missing: list[str] = []
    for host_path in dict.fromkeys(referenced_files(pod)):
        path = locate(host_path)
        if not path.is_file():
            missing.append(host_path)
            continue
        expected = MODES_BY_SUFFIX.get(Path(host_path).suffix)
        mode = stat.S_IMODE(path.stat().st_mode)
        if expected is not None and owned(host_path) and mode != expected:
            problems.append(f"{host_path} has mode {mode:04o}, expected {expected:04o}")
    return problems, missing
