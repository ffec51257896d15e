"""Result values that phases and the modules under them return, rendered as text or JSON by the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `bootstrap --help` imports this module; pathlib is for the commands that run
    from pathlib import Path

RESULT_API_VERSION = "bootstrap.kube-bootstrap.io/v1alpha1"


@dataclass
class Outcome:
    """What one unit of work (one cert, one kubeconfig, one manifest) did.

    ``message`` is the human line without the ``[phase]`` prefix, e.g.
    ``Generating "apiserver" certificate and key``. ``files`` are the paths written (empty when
    nothing changed). Never carries key material. ``would_fail`` (dry run only) says what would stop
    a real run at this point, e.g. ``2 checks would fail (FileExisting-kubelet, CRI)``.
    """

    changed: bool
    message: str
    files: list[Path] = field(default_factory=list)
    details: dict[str, Any] | None = None  # structured results for the JSON document
    would_fail: str | None = None


def host_path(real: Path | str, root: Path | None) -> str:
    """``real`` as the host sees it: with ``root`` (a ``--rootfs`` or the dry-run directory) taken
    away. A path outside ``root`` is returned as it is: it was not mapped through it."""
    from pathlib import Path

    path = Path(real)
    if root is None:
        return str(path)
    try:
        inside = path.relative_to(root)
    except ValueError:
        return str(path)
    return "/" if inside == Path(".") else f"/{inside}"


def rootfs_field(root: Path | None) -> str:
    """The ``rootfs`` field of every result document: the directory host paths are relative to."""
    return str(root.absolute()) if root is not None else "/"
