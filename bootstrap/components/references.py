"""The cross-check: every file a manifest points at exists, with the mode we give such files.

The files are the file-valued flags and the ``File``/``FileOrCreate`` hostPath volumes: taken
from the pod inputs of a manifest we render, or from a pod read back from disk.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bootstrap.components.flags import Flag
from bootstrap.components.podfile import pod_flags
from bootstrap.components.pods import PodInputs

MODES_BY_SUFFIX = {".crt": 0o644, ".key": 0o600, ".pub": 0o600, ".conf": 0o600}
FILE_VOLUME_TYPES = ("File", "FileOrCreate")


def _files(flags: Iterable[Flag], file_volumes: Iterable[str]) -> Iterator[str]:
    for _, value in flags:
        for item in value.split(","):
            if item.startswith("/") and Path(item).suffix in MODES_BY_SUFFIX:
                yield item
    yield from file_volumes


def manifest_files(inputs: PodInputs) -> Iterator[str]:
    """Host paths of the files a pod we render needs."""
    volumes = [v.host_path for v in inputs.volumes if v.path_type in FILE_VOLUME_TYPES]
    return _files(inputs.flags, volumes)


def referenced_files(pod: Mapping[str, Any]) -> Iterator[str]:
    """Host paths of the files a pod read back from disk needs."""
    volumes = [v.get("hostPath") or {} for v in pod.get("spec", {}).get("volumes", [])]
    return _files(pod_flags(pod), [h["path"] for h in volumes if h.get("type") in FILE_VOLUME_TYPES])


def check_files(
    host_paths: Iterable[str], locate: Callable[[str], Path], owned: Callable[[str], bool]
) -> tuple[list[str], list[str]]:
    """Problems with the files at ``host_paths`` (``owned`` says which must have our modes), and
    the ones that do not exist."""
    problems: list[str] = []
    missing: list[str] = []
    for host_path in dict.fromkeys(host_paths):
        path = locate(host_path)
        if not path.is_file():
            missing.append(host_path)
            continue
        expected = MODES_BY_SUFFIX.get(Path(host_path).suffix)
        mode = stat.S_IMODE(path.stat().st_mode)
        if expected is not None and owned(host_path) and mode != expected:
            problems.append(f"{host_path} has mode {mode:04o}, expected {expected:04o}")
    return problems, missing


def check_references(
    pod: Mapping[str, Any], locate: Callable[[str], Path], owned: Callable[[str], bool]
) -> tuple[list[str], list[str]]:
    """:func:`check_files` for the files a pod read back from disk references."""
    return check_files(referenced_files(pod), locate, owned)
