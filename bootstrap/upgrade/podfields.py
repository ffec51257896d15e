"""Reading a static pod manifest for what an upgrade compares: image, flags, volumes, probes.

Also :func:`fingerprint`, the value an upgrade gives the ``kube-bootstrap.io/cert-generation``
annotation (:mod:`bootstrap.components.annotations`) of a component whose serving certificate it
re-issued: the changed manifest is what makes the kubelet restart it on the new certificate.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from bootstrap.components.podfile import first_container

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


def flags(pod: dict[str, Any]) -> dict[str, str]:
    """``--name=value`` arguments by name (a repeated name keeps its values joined by a comma)."""
    found: dict[str, str] = {}
    for arg in first_container(pod).get("command") or []:
        if isinstance(arg, str) and arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            found[name] = f"{found[name]},{value}" if name in found else value
    return found


def volumes(pod: dict[str, Any]) -> dict[str, str]:
    """Volume name -> ``hostPath -> mountPath`` (``:ro`` when read-only)."""
    mounts = {m.get("name"): m for m in first_container(pod).get("volumeMounts") or [] if isinstance(m, dict)}
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
    return str(first_container(pod).get("image") or "")


def probes(pod: dict[str, Any]) -> dict[str, Any]:
    c = first_container(pod)
    return {kind: c.get(kind) for kind in (*PROBES, "ports")}


def fingerprint(files: list[Path]) -> str:
    """A short digest of ``files``' contents (certificates: no secret in them)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
