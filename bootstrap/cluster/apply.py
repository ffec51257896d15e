"""Create-or-update of cluster objects for the post-init phases, and its dry-run twin.

Idempotent: an object that already has the wanted content is left alone and reported unchanged;
one that differs is replaced (keeping its resourceVersion, so a concurrent change is a conflict, not
a silent overwrite). A dry run records what it would do and calls nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from bootstrap.cluster.client import ApiError, KubeApi
from bootstrap.cluster.objects import owns_only_its_keys
from bootstrap.results import Outcome

# How often one object is read and written again when it appears or disappears under us.
APPLY_ATTEMPTS = 5
# The parts of an object that carry its content (everything else is server-managed).
CONTENT_FIELDS = ("data", "type", "rules", "roleRef", "subjects")
# Content the API server fills in with defaults (a workload's or a Service's spec): compared as "has
# every value we set", so that the defaults it added do not read as a change on every run.
DEFAULTED_FIELDS = ("spec",)


def _name(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


def contains(have: Any, want: Any) -> bool:
    """True when ``have`` holds every value of ``want``: mappings key by key (extra keys allowed),
    lists item by item (same length), anything else equal."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and contains(have[k], v) for k, v in want.items())
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(have) == len(want)
            and all(contains(h, w) for h, w in zip(have, want, strict=True))
        )
    return bool(have == want)


def covers(existing: dict[str, Any], desired: dict[str, Any]) -> bool:
    """True when ``existing`` already has every content field and label/annotation of ``desired``."""
    for field in DEFAULTED_FIELDS:
        if field in desired and not contains(existing.get(field), desired[field]):
            return False
    for field in CONTENT_FIELDS:
        if field == "data" and owns_only_its_keys(desired):
            have = existing.get("data") or {}
            if any(have.get(k) != v for k, v in desired.get("data", {}).items()):
                return False
            continue
        if field in desired and existing.get(field) != desired[field]:
            return False
    for meta in ("labels", "annotations"):
        wanted = desired["metadata"].get(meta) or {}
        have = existing.get("metadata", {}).get(meta) or {}
        if any(have.get(k) != v for k, v in wanted.items()):
            return False
    return True


class Applier(Protocol):
    def apply(self, obj: dict[str, Any]) -> Outcome: ...
    def read(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...
    def list_objects(self, kind: str, namespace: str, label_selector: str) -> list[dict[str, Any]]: ...
    def label_and_taint_node(
        self, name: str, labels: dict[str, str], taints: list[dict[str, str]]
    ) -> Outcome: ...


class ApiApplier:
    def __init__(self, api: KubeApi, deadline_seconds: float) -> None:
        self.api = api
        self.deadline_seconds = deadline_seconds

    def _retry(self, func: Callable[[], Any]) -> Any:
        return self.api.call_with_retry(func, time.monotonic() + self.deadline_seconds)

    def read(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._retry(lambda: self.api.read(kind, namespace, name))
        return result

    def list_objects(self, kind: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._retry(
            lambda: self.api.list_objects(kind, namespace, label_selector)
        )
        return result

    def apply(self, obj: dict[str, Any]) -> Outcome:
        kind, meta = obj["kind"], obj["metadata"]
        namespace, name = meta.get("namespace"), meta["name"]
        # Someone else may create or delete the object between our calls: a create that meets 409
        # reads again, and an object gone by then (or before our replace) is created again. Bounded,
        # because two writers fighting over it is not something to wait out.
        for _ in range(APPLY_ATTEMPTS):
            existing = self.read(kind, namespace, name)
            if existing is None:
                try:
                    self._retry(lambda: self.api.create(kind, namespace, obj))
                    return Outcome(True, f"Created {kind} {_name(obj)}")
                except ApiError as exc:
                    if exc.status != 409:
                        raise
                    continue  # created meanwhile: read it and compare
            if covers(existing, obj):
                return Outcome(False, f"{kind} {_name(obj)} is up to date")
            version = existing["metadata"]["resourceVersion"]
            body = {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}}
            if owns_only_its_keys(obj):
                body["data"] = {**(existing.get("data") or {}), **obj.get("data", {})}
            try:
                self._retry(partial(self.api.replace, kind, namespace, name, body))
                return Outcome(True, f"Updated {kind} {_name(obj)}")
            except ApiError as exc:
                if exc.status != 404:
                    raise
        raise ApiError(
            f"{kind} {_name(obj)}: created or deleted by someone else at every one of "
            f"{APPLY_ATTEMPTS} attempts to write it",
            409,
        )

    def label_and_taint_node(
        self, name: str, labels: dict[str, str], taints: list[dict[str, str]]
    ) -> Outcome:
        node = self._wait_for_node(name)
        have_labels = node["metadata"].get("labels") or {}
        have_taints = node.get("spec", {}).get("taints") or []
        missing_labels = {k: v for k, v in labels.items() if have_labels.get(k) != v}
        present = {(h.get("key"), h.get("effect")) for h in have_taints}
        missing_taints = [t for t in taints if (t.get("key"), t.get("effect")) not in present]
        if not missing_labels and not missing_taints:
            return Outcome(False, f"Node {name} already has the control-plane labels and taints")
        patch: dict[str, Any] = {"metadata": {"labels": missing_labels}}
        if missing_taints:
            patch["spec"] = {"taints": [*have_taints, *missing_taints]}
        self._retry(lambda: self.api.patch_node(name, patch))
        return Outcome(
            True,
            f"Marked node {name} as control-plane: labels {', '.join(sorted(labels))}; "
            f"taints {', '.join(t['key'] + ':' + t['effect'] for t in taints) or 'none'}",
        )

    def _wait_for_node(self, name: str) -> dict[str, Any]:
        """The kubelet registers the Node; give it until the API-call deadline."""
        deadline = time.monotonic() + self.deadline_seconds
        while True:
            node = self._retry(lambda: self.api.read_node(name))
            if node is not None:
                return dict(node)
            if time.monotonic() >= deadline:
                raise ApiError(
                    f"node {name} is not registered after {self.deadline_seconds:g}s "
                    "(is the kubelet running with kubelet.conf?)",
                    404,
                )
            time.sleep(0.5)


class DryRunApplier:
    """Says what a real run would do to the cluster, and changes nothing.

    When the API server answers (a re-run on an initialized node), it reads the current objects so
    that what is already in place shows as unchanged; otherwise every action is listed as one the
    real run would take.
    """

    def __init__(self, reader: Callable[[], KubeApi] | None = None) -> None:
        self.actions: list[str] = []
        self._reader_factory = reader
        self._reader: KubeApi | None = None
        self.unreachable: str | None = None if reader else "no admin.conf"

    def _api(self) -> KubeApi | None:
        if self.unreachable is not None:
            return None
        if self._reader is None and self._reader_factory is not None:
            try:
                self._reader = self._reader_factory()
            except ApiError as exc:  # an unusable admin.conf or client: list every action instead
                self.unreachable = str(exc)
                return None
        return self._reader

    def _read(self, func: Callable[[KubeApi], Any]) -> Any:
        api = self._api()
        if api is None:
            return None
        try:
            return func(api)
        except ApiError as exc:
            self.unreachable = str(exc)
            return None

    def read(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._read(lambda api: api.read(kind, namespace, name))
        return result

    def list_objects(self, kind: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        result = self._read(lambda api: api.list_objects(kind, namespace, label_selector))
        return list(result or [])

    def apply(self, obj: dict[str, Any]) -> Outcome:
        existing = self.read(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if existing is not None and covers(existing, obj):
            return Outcome(False, f"[dryrun] {obj['kind']} {_name(obj)} is up to date")
        verb = (
            "update"
            if existing is not None
            else ("create" if self.unreachable is None else "create or update")
        )
        action = f"Would {verb} {obj['kind']} {_name(obj)}"
        self.actions.append(action)
        return Outcome(True, f"[dryrun] {action}")

    def label_and_taint_node(
        self, name: str, labels: dict[str, str], taints: list[dict[str, str]]
    ) -> Outcome:
        node = self._read(lambda api: api.read_node(name))
        if node is not None:
            have = node["metadata"].get("labels") or {}
            have_taints = {(t.get("key"), t.get("effect")) for t in node.get("spec", {}).get("taints") or []}
            if all(have.get(k) == v for k, v in labels.items()) and all(
                (t.get("key"), t.get("effect")) in have_taints for t in taints
            ):
                return Outcome(False, f"[dryrun] Node {name} already has the control-plane labels and taints")
        marks = ", ".join(t["key"] + ":" + t["effect"] for t in taints)
        action = f"Would label node {name} {', '.join(sorted(labels))}" + (
            f" and taint it {marks}" if marks else " (no taints)"
        )
        self.actions.append(action)
        return Outcome(True, f"[dryrun] {action}")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
