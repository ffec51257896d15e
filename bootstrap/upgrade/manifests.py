"""Reading a static pod manifest for what an upgrade compares: image, flags, volumes, probes.

Also the one annotation an upgrade adds: ``kube-bootstrap.io/cert-generation``, a fingerprint of the
certificates a component serves that were re-issued. A changed value restarts the component when
nothing else in its manifest changed (the kubelet replaces a static pod whose file changed); the value
is carried over on later renderings, so a re-run sees no difference.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

CERT_GENERATION = "kube-bootstrap.io/cert-generation"
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
# libyaml's loader when PyYAML has it: every manifest is parsed once per side, but fast matters at start.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        pod = yaml.load(text, Loader=LOADER)
    except yaml.YAMLError:
        return {}
    return pod if isinstance(pod, dict) else {}


def container(pod: dict[str, Any]) -> dict[str, Any]:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    first = containers[0]
    return first if isinstance(first, dict) else {}


def flags(pod: dict[str, Any]) -> dict[str, str]:
    """``--name=value`` arguments by name (a repeated name keeps its values joined by a comma)."""
    found: dict[str, str] = {}
    for arg in container(pod).get("command") or []:
        if isinstance(arg, str) and arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            found[name] = f"{found[name]},{value}" if name in found else value
    return found


def volumes(pod: dict[str, Any]) -> dict[str, str]:
    """Volume name -> ``hostPath -> mountPath`` (``:ro`` when read-only)."""
    mounts = {m.get("name"): m for m in container(pod).get("volumeMounts") or [] if isinstance(m, dict)}
    found: dict[str, str] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume.get("name")
        host = (volume.get("hostPath") or {}).get("path", "?")
        mount = mounts.get(name) or {}
        found[str(name)] = f"{host} -> {mount.get('mountPath', '?')}" + (
            ":ro" if mount.get("readOnly") else ""
        )
    return found


def image(pod: dict[str, Any]) -> str:
    return str(container(pod).get("image") or "")


def probes(pod: dict[str, Any]) -> dict[str, Any]:
    c = container(pod)
    return {kind: c.get(kind) for kind in (*PROBES, "ports")}


def annotation(pod: dict[str, Any], key: str) -> str | None:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(key)
    return str(value) if value is not None else None


def annotate(text: str, key: str, value: str) -> str:
    """``text`` (a rendered manifest) with ``metadata.annotations[key] = value``, in sorted place."""
    entry = f"    {key}: {yaml.safe_dump(value, default_style=chr(34)).strip()}\n"
    lines = text.splitlines(keepends=True)
    start = lines.index("metadata:\n") + 1
    if start < len(lines) and lines[start] == "  annotations:\n":
        index = start + 1
        while index < len(lines) and lines[index].startswith("    "):
            if lines[index].lstrip().startswith(f"{key}:"):
                lines[index] = entry
                return "".join(lines)
            if lines[index].strip() > entry.strip():
                break
            index += 1
        lines.insert(index, entry)
    else:
        lines[start:start] = ["  annotations:\n", entry]
    return "".join(lines)


def fingerprint(files: list[Path]) -> str:
    """A short digest of ``files``' contents (certificates: no secret in them)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
