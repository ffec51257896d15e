"""Reads back a static pod file that is already on disk, whoever wrote it: the one reader.

What we render ourselves is never read back: the rendered :class:`~bootstrap.components.render.Manifest`
keeps its flags. A file on disk may be ours from an earlier run, edited by a person, or foreign, so
everything here is lenient about its shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bootstrap.components.spec import is_our_pod


def read_document(path: Path) -> Any:
    """The YAML (or JSON) document in ``path``; raises ``OSError`` or ``yaml.YAMLError``."""
    import yaml  # here, not at the top: preflight's module is imported with the phase tree

    text = path.read_text(errors="replace")
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            pass  # YAML is a superset of most JSON; let its parser say what is wrong
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_pod(path: Path) -> dict[str, Any] | None:
    """The document in ``path`` when it is a readable mapping (YAML or JSON), else None."""
    import yaml

    try:
        document = read_document(path)
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: e.g. a timestamp that is no date
        return None
    return document if isinstance(document, dict) else None


def declared_pod_name(path: Path) -> str | None:
    """The name of the pod ``path`` declares, when it parses as one."""
    document = load_pod(path)
    if document is None or document.get("kind") != "Pod":
        return None
    metadata = document.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
        return str(metadata["name"])
    return None


def our_manifest(component: str, path: Path) -> dict[str, Any] | None:
    """The pod in ``path`` when the file exists and is our static pod of ``component``, else None."""
    if not path.is_file():
        return None
    pod = load_pod(path)
    return pod if is_our_pod(component, pod) else None


def first_container(pod: Mapping[str, Any]) -> dict[str, Any]:
    try:
        container = pod["spec"]["containers"][0]
    except (KeyError, IndexError, TypeError):
        return {}
    return container if isinstance(container, dict) else {}


def pod_flags(pod: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(name, value)`` of every ``--name=value`` of the pod's first container (command + args)."""
    container = first_container(pod)
    try:
        words = [*(container.get("command") or [])[1:], *(container.get("args") or [])]
    except TypeError:
        return []
    flags = []
    for word in words:
        text = str(word)
        if text.startswith("-"):
            name, _, value = text.lstrip("-").partition("=")
            flags.append((name, value))
    return flags
