"""Finds the Jinja templates: inside the installed package, or at the top of a source checkout.

The wheel ships the top-level ``templates/`` directory as ``bootstrap/templates``; an editable
install or a plain checkout uses ``templates/`` beside the package.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from bootstrap.errors import PhaseError

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


@cache
def templates_dir() -> Path:
    for candidate in (_PACKAGE_DIR / "templates", _PACKAGE_DIR.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise PhaseError(f"templates not found in {_PACKAGE_DIR / 'templates'}; the installation is broken")


def template_names() -> list[str]:
    return sorted(p.name for p in templates_dir().glob("*.j2"))
