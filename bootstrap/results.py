"""Result values that phases and the modules under them return, rendered as text or JSON by the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Outcome:
    """What one unit of work (one cert, one kubeconfig, one manifest) did.

    ``message`` is the human line without the ``[phase]`` prefix, e.g.
    ``Generating "apiserver" certificate and key``. ``files`` are the paths written (empty when
    nothing changed). Never carries key material.
    """

    changed: bool
    message: str
    files: list[Path] = field(default_factory=list)
    details: dict[str, Any] | None = None  # structured results for the JSON document
