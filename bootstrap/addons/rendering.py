"""Renders an addon template (several YAML documents) into API objects."""

from __future__ import annotations

from typing import Any

import yaml

from bootstrap.cluster.objects import MANAGED_BY
from bootstrap.components.render import render_template
from bootstrap.errors import PhaseError


def render_objects(template: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects ``template`` renders with ``values``, in its order, each labelled as ours."""
    text = render_template(template, values)
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise PhaseError(f"template {template} rendered invalid YAML: {exc}") from exc
    if not all(isinstance(d, dict) and d.get("kind") and d.get("metadata") for d in docs):
        raise PhaseError(f"template {template} rendered something that is not an API object")
    for doc in docs:
        doc["metadata"]["labels"] = {**(doc["metadata"].get("labels") or {}), **MANAGED_BY}
    return docs
