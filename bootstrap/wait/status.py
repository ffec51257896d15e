"""Judging one component from its mirror pod: present, ours, fresh, running and ready."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
HASH_ANNOTATION = "kubernetes.io/config.hash"
SEEN_ANNOTATION = "kubernetes.io/config.seen"
# The kubelet stamps config.seen when it reads a file; allow for clock granularity.
SEEN_TOLERANCE = timedelta(seconds=1)


@dataclass(frozen=True)
class Freshness:
    """What this run wrote for a component: the mirror pod hash seen before the write (None if no
    pod was visible then), and when the manifest was written. ``expected_hash``: the hash the written
    manifest is known to run as (a manifest restored as it was, whose pod the API may never have seen
    replaced: a mirror pod with that hash is the restored one, not a stale one)."""

    before_hash: str | None
    written_at: datetime
    expected_hash: str | None = None


class Problem(Enum):
    """Why a mirror pod does not count (the diagnosis decides on this, never on the text)."""

    MISSING = "missing"
    NOT_MIRROR = "not-mirror"  # a regular pod with the mirror pod's name
    NOT_OURS = "not-ours"  # owned by another node
    STALE = "stale"  # still the pod of the manifest before this run's write
    NOT_RUNNING = "not-running"
    NOT_READY = "not-ready"


@dataclass
class PodView:
    """What the mirror pod says, in the terms the progress table and the diagnosis use."""

    present: bool
    phase: str = "Missing"
    ready: bool = False
    restarts: int = 0
    waiting_reason: str | None = None
    waiting_message: str | None = None
    last_exit_code: int | None = None
    last_message: str | None = None
    image: str | None = None
    config_hash: str | None = None
    problem: str | None = None  # why this pod does not count, for people (None: it does)
    problem_kind: Problem | None = None  # the same, for the diagnosis

    @property
    def ok(self) -> bool:
        return self.present and self.problem_kind is None

    def flag(self, kind: Problem, text: str) -> None:
        self.problem_kind, self.problem = kind, text


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def judge(pod: dict[str, Any] | None, node_name: str, freshness: Freshness | None) -> PodView:
    if pod is None:
        return PodView(present=False, problem="no mirror pod", problem_kind=Problem.MISSING)
    metadata = pod.get("metadata", {})
    annotations = metadata.get("annotations") or {}
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    container = containers[0] if containers else {}
    state = container.get("state") or {}
    waiting = state.get("waiting") or {}
    last = (container.get("lastState") or {}).get("terminated") or state.get("terminated") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    view = PodView(
        present=True,
        phase=str(status.get("phase") or "Pending"),
        ready=conditions.get("Ready") == "True" and bool(container.get("ready")),
        restarts=int(container.get("restartCount") or 0),
        waiting_reason=waiting.get("reason"),
        waiting_message=waiting.get("message"),
        last_exit_code=last.get("exitCode"),
        last_message=last.get("message") or last.get("reason"),
        image=container.get("image") or _spec_image(pod),
        config_hash=annotations.get(HASH_ANNOTATION),
    )
    owners = metadata.get("ownerReferences") or []
    if MIRROR_ANNOTATION not in annotations:
        view.flag(
            Problem.NOT_MIRROR,
            f"{metadata.get('name')} is not a mirror pod (no {MIRROR_ANNOTATION} annotation)",
        )
    elif not any(o.get("kind") == "Node" and o.get("name") == node_name for o in owners):
        view.flag(Problem.NOT_OURS, f"mirror pod is not owned by Node {node_name}")
    elif freshness is not None and not _is_fresh(view, annotations, freshness):
        view.flag(
            Problem.STALE,
            "the kubelet still runs the previous manifest (config.hash unchanged since the write)",
        )
    elif view.phase != "Running":
        view.flag(
            Problem.NOT_RUNNING,
            f"pod is {view.phase}" + (f" ({view.waiting_reason})" if view.waiting_reason else ""),
        )
    elif not view.ready:
        view.flag(
            Problem.NOT_READY,
            "pod is Running but not Ready" + (f" ({view.waiting_reason})" if view.waiting_reason else ""),
        )
    return view


def _is_fresh(view: PodView, annotations: dict[str, Any], freshness: Freshness) -> bool:
    if freshness.expected_hash is not None and view.config_hash == freshness.expected_hash:
        return True
    if freshness.before_hash is not None:
        return view.config_hash != freshness.before_hash
    # No pod was visible before the write: only one the kubelet saw after the write counts.
    seen = _parse_time(annotations.get(SEEN_ANNOTATION))
    return seen is None or seen >= freshness.written_at - SEEN_TOLERANCE


def _spec_image(pod: dict[str, Any]) -> str | None:
    containers = (pod.get("spec") or {}).get("containers") or []
    return containers[0].get("image") if containers else None
