"""Setting one annotation of a static pod manifest on disk, keeping the rest of the file as it is.

A changed annotation is how we make the kubelet restart a static pod without changing what runs: the
kubelet starts a new pod whenever the file's content changes. The edit is made on the text, so a
person's formatting and comments survive; the result is checked by parsing it, and a file whose shape
the text edit does not understand (JSON, flow style) is written out again from its parsed form.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from bootstrap.components.podfile import load_pod
from bootstrap.components.render import Manifest

# The annotation `certs renew` changes to restart a component on its renewed certificates.
CERT_GENERATION = "kube-bootstrap.io/cert-generation"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _meaningful(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _block_end(lines: list[str], start: int, parent_indent: int) -> int:
    """The index after the last line of the block under ``lines[start - 1]`` (indented deeper)."""
    end = start
    for index in range(start, len(lines)):
        if _meaningful(lines[index]) and _indent(lines[index]) <= parent_indent:
            break
        end = index + 1
    return end


def _child_indent(lines: list[str], start: int, end: int, default: int) -> int:
    return next((_indent(lines[i]) for i in range(start, end) if _meaningful(lines[i])), default)


def _edited(text: str, key: str, value: str) -> str | None:
    """``text`` with ``metadata.annotations[key]`` set, by editing lines; None when the layout is not
    the plain block style this understands."""
    lines = text.splitlines(keepends=True)
    entry_value = json.dumps(value)  # a double-quoted YAML scalar
    meta = next((i for i, line in enumerate(lines) if line.rstrip() == "metadata:"), None)
    if meta is None:
        return None
    meta_end = _block_end(lines, meta + 1, 0)
    step = _child_indent(lines, meta + 1, meta_end, 2)
    if step == 0:
        return None
    ann = next(
        (i for i in range(meta + 1, meta_end) if lines[i].rstrip() == " " * step + "annotations:"), None
    )
    if ann is None:
        lines[meta + 1 : meta + 1] = [
            f"{' ' * step}annotations:\n",
            f"{' ' * (2 * step)}{key}: {entry_value}\n",
        ]
        return "".join(lines)
    ann_end = _block_end(lines, ann + 1, step)
    inner = _child_indent(lines, ann + 1, ann_end, 2 * step)
    for index in range(ann + 1, ann_end):
        line = lines[index]
        if _indent(line) == inner and line.strip().split(":", 1)[0].strip("'\"") == key:
            lines[index] = f"{' ' * inner}{key}: {entry_value}\n"
            return "".join(lines)
    lines[ann + 1 : ann + 1] = [f"{' ' * inner}{key}: {entry_value}\n"]
    return "".join(lines)


def with_annotation(text: str, key: str, value: str) -> str:
    """The manifest ``text`` with ``metadata.annotations[key] = value`` and nothing else changed."""
    pod: Any = yaml.safe_load(text)
    if not isinstance(pod, dict) or not isinstance(pod.get("metadata"), dict):
        raise ValueError("not a pod manifest with metadata")
    wanted = copy.deepcopy(pod)
    annotations = wanted["metadata"].get("annotations")
    wanted["metadata"]["annotations"] = {**(annotations if isinstance(annotations, dict) else {})}
    wanted["metadata"]["annotations"][key] = value
    edited = _edited(text, key, value)
    if edited is not None:
        try:
            if yaml.safe_load(edited) == wanted:
                return edited
        except yaml.YAMLError:
            pass
    return str(yaml.safe_dump(wanted, default_flow_style=False, sort_keys=False))


def keep_generation(existing: Path, manifest: Manifest) -> Manifest:
    """``manifest`` with the :data:`CERT_GENERATION` of the manifest at ``existing``, when it has
    one: a re-render must not undo a restart's annotation, or every converging re-run after a
    renewal would rewrite the manifest and restart the component once more."""
    pod = load_pod(existing)
    annotations = ((pod or {}).get("metadata") or {}).get("annotations")
    value = annotations.get(CERT_GENERATION) if isinstance(annotations, dict) else None
    if not isinstance(value, str):
        return manifest
    rendered = copy.deepcopy(manifest.pod)
    rendered.setdefault("metadata", {}).setdefault("annotations", {})[CERT_GENERATION] = value
    text = with_annotation(manifest.text, CERT_GENERATION, value)
    return dataclasses.replace(manifest, text=text, pod=rendered)
