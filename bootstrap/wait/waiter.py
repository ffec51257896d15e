"""Waits, under one deadline, for the kubelet and then every control-plane component to be healthy.

A component is healthy when its mirror pod is present, ours, fresh (created from the manifest this
run wrote) and Running+Ready, and its health endpoint answers 200, continuously for the settle
window. The mirror pods come from a watch (no polling of the API); health endpoints are probed
directly.

Only what can heal is waited for. admin.conf and the client library are checked before any
waiting, and a permanent failure seen by the watch or a probe (a certificate that does not verify, a
final 403) ends the wait at once with its own message, not at the deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap.cluster.client import ApiError, KubeApi, Reason
from bootstrap.errors import WaitTimeoutError
from bootstrap.wait.diagnose import Context, Diagnosis, diagnose
from bootstrap.wait.health import ClientTLS, Endpoint, check
from bootstrap.wait.mirrors import NAMESPACE, MirrorPods
from bootstrap.wait.probes import HealthProbes
from bootstrap.wait.progress import Progress, Row
from bootstrap.wait.status import Freshness, PodView, judge

TICK = 0.05
KUBELET_POLL = 0.25


@dataclass
class WaitPlan:
    """Everything the wait needs, derived from the run (nothing here reads the CLI)."""

    node_name: str
    endpoints: dict[str, Endpoint]  # component -> health endpoint, from the manifests on disk
    freshness: dict[str, Freshness]  # components whose manifest this run wrote
    settle: float
    timeout: float
    kubelet_healthz: Endpoint | None  # None: healthzPort 0
    admin_conf: Path
    manifest_dir: str  # host path
    kubelet_watches: str | None  # staticPodPath in the kubelet config on disk


@dataclass
class ComponentResult:
    component: str
    healthy: bool
    healthy_after: float | None = None
    view: PodView | None = None
    health_error: str | None = None
    diagnosis: Diagnosis | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"component": self.component, "healthy": self.healthy}
        if self.healthy_after is not None:
            data["healthyAfterSeconds"] = round(self.healthy_after, 3)
        if self.view is not None:
            data.update(pod=self.view.phase, ready=self.view.ready, restarts=self.view.restarts)
        data["health"] = "ok" if self.health_error is None else self.health_error
        if self.diagnosis is not None:
            data["diagnosis"] = self.diagnosis.to_dict()
        return data


@dataclass
class WaitResult:
    ok: bool
    elapsed: float
    kubelet_after: float | None
    components: list[ComponentResult] = field(default_factory=list)
    api_requests: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "elapsedSeconds": round(self.elapsed, 3),
            "kubeletHealthyAfterSeconds": None
            if self.kubelet_after is None
            else round(self.kubelet_after, 3),
            "apiRequests": self.api_requests,
            "components": [c.to_dict() for c in self.components],
        }


@dataclass
class _Tracking:
    healthy_since: float | None = None
    restarts: int = 0
    done_at: float | None = None


class ControlPlaneWaiter:
    def __init__(self, plan: WaitPlan, api_factory: Callable[[], KubeApi], progress: Progress) -> None:
        self.plan = plan
        self._api_factory = api_factory
        self.progress = progress
        self._changed = threading.Event()

    def run(self) -> WaitResult:
        start = time.monotonic()
        deadline = start + self.plan.timeout
        try:
            tls = ClientTLS(self.plan.admin_conf)  # a broken admin.conf fails here, before any wait
        except BaseException:
            self.progress.close()
            raise
        mirrors = MirrorPods(self._api_factory, self.plan.node_name, self._changed.set)
        probes = HealthProbes(self.plan.endpoints, tls, self._changed.set)
        # The watch starts now: building its client (the library import) overlaps the kubelet wait,
        # and a client that cannot be built ends that wait at once.
        mirrors.start()
        try:
            kubelet_after = self._wait_for_kubelet(start, deadline, mirrors)
            self.progress.note(
                f"Waiting for healthy control plane components. This can take up to {self.plan.timeout:g}s"
            )
            for name, endpoint in self.plan.endpoints.items():
                self.progress.note(f"Checking {name} at {endpoint.url}")
            probes.start()
            return self._loop(start, deadline, kubelet_after, mirrors, probes)
        finally:
            probes.stop()
            mirrors.stop()
            self.progress.close()

    def _wait_for_kubelet(self, start: float, deadline: float, mirrors: MirrorPods) -> float | None:
        endpoint = self.plan.kubelet_healthz
        if endpoint is None:
            return None
        self.progress.note(f"Waiting for a healthy kubelet at {endpoint.url}")
        error = check(endpoint, ClientTLS(None))
        while error is not None:
            if mirrors.fatal is not None:
                raise mirrors.fatal
            if time.monotonic() >= deadline:
                raise WaitTimeoutError(
                    f"the kubelet is not healthy after {self.plan.timeout:g}s: {endpoint.url}: {error}\n"
                    "  likely cause: the kubelet is not running or cannot start: check `systemctl status "
                    "kubelet` and `journalctl -xeu kubelet`"
                )
            self._changed.wait(KUBELET_POLL)  # woken early when the watch fails for good
            self._changed.clear()
            error = check(endpoint, ClientTLS(None))
        elapsed = time.monotonic() - start
        self.progress.note(f"The kubelet is healthy after {elapsed:.1f}s")
        return elapsed

    def _loop(
        self,
        start: float,
        deadline: float,
        kubelet_after: float | None,
        mirrors: MirrorPods,
        probes: HealthProbes,
    ) -> WaitResult:
        tracking = {name: _Tracking() for name in self.plan.endpoints}
        while True:
            fatal = mirrors.fatal or probes.fatal
            if fatal is not None:
                raise fatal
            now = time.monotonic()
            rows, views = [], {}
            for name, track in tracking.items():
                view = judge(
                    mirrors.get(self._pod_name(name)), self.plan.node_name, self.plan.freshness.get(name)
                )
                views[name] = view
                health = probes.results[name]
                healthy = view.ok and health.ok
                if not healthy or view.restarts != track.restarts:
                    track.healthy_since = None
                elif track.healthy_since is None:
                    track.healthy_since = now
                track.restarts = view.restarts
                settled = track.healthy_since is not None and now - track.healthy_since >= self.plan.settle
                if settled and track.done_at is None:
                    track.done_at = now
                    self.progress.note(f"{name} is healthy after {now - start:.1f}s")
                elif not settled:
                    track.done_at = None
                state = (
                    "healthy" if settled else ("settling" if track.healthy_since is not None else "waiting")
                )
                pod = view.phase + (f" ({view.waiting_reason})" if view.waiting_reason else "")
                rows.append(
                    Row(name, pod, view.ready, view.restarts, health.error or "ok", state, now - start)
                )
            api_note = (
                None if mirrors.synced and mirrors.last_error is None else _api_note(mirrors.last_error)
            )
            self.progress.update(rows, api_note)
            if all(t.done_at is not None for t in tracking.values()):
                return self._result(True, start, kubelet_after, tracking, views, probes, mirrors)
            if now >= deadline:
                result = self._result(False, start, kubelet_after, tracking, views, probes, mirrors)
                error = WaitTimeoutError(self._failure_text(result))
                error.details = result.to_dict()
                raise error
            self._changed.wait(TICK)
            self._changed.clear()

    def _pod_name(self, component: str) -> str:
        return f"{component}-{self.plan.node_name.lower()}"

    def _result(
        self,
        ok: bool,
        start: float,
        kubelet_after: float | None,
        tracking: dict[str, _Tracking],
        views: dict[str, PodView],
        probes: HealthProbes,
        mirrors: MirrorPods,
    ) -> WaitResult:
        result = WaitResult(ok, time.monotonic() - start, kubelet_after, api_requests=mirrors.requests)
        failing = [name for name, t in tracking.items() if t.done_at is None]
        events = self._events(failing) if failing else {}
        context = self._context(mirrors) if failing else None
        for name, track in tracking.items():
            error = probes.results[name].error
            entry = ComponentResult(name, track.done_at is not None, view=views[name], health_error=error)
            if track.done_at is not None:
                entry.healthy_after = track.done_at - start
            elif context is not None:
                entry.diagnosis = diagnose(
                    name,
                    self._pod_name(name),
                    views[name],
                    self.plan.endpoints[name].url,
                    error,
                    events.get(name, []),
                    context,
                )
            result.components.append(entry)
        return result

    def _context(self, mirrors: MirrorPods) -> Context:
        kubelet_error = None
        if self.plan.kubelet_healthz is not None:
            kubelet_error = check(self.plan.kubelet_healthz, ClientTLS(None))
        return Context(
            kubelet_error=kubelet_error,
            kubelet_watches=self.plan.kubelet_watches,
            manifest_dir=self.plan.manifest_dir,
            api_error=None if mirrors.synced and mirrors.last_error is None else mirrors.last_error,
        )

    def _events(self, components: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Recent events of each failing component's mirror pod (best effort, bounded in time)."""
        found: dict[str, list[dict[str, Any]]] = {}
        try:
            api = self._api_factory()
        except ApiError:  # it worked at the start; the diagnosis does without events
            return found
        try:
            for name in components:
                try:
                    found[name] = api.pod_events(NAMESPACE, self._pod_name(name))
                except ApiError:
                    break
        finally:
            api.close()
        return found

    def _failure_text(self, result: WaitResult) -> str:
        failing = [c for c in result.components if not c.healthy]
        names = ", ".join(c.component for c in failing)
        parts = [f"the control plane is not healthy after {self.plan.timeout:g}s: {names}"]
        parts += [c.diagnosis.text() for c in failing if c.diagnosis]
        return "\n".join(parts)


def _api_note(error: ApiError | None) -> str | None:
    if error is None:
        return None
    if error.reason in (Reason.SERVER_ERROR, Reason.THROTTLED):
        return f"API server not ready yet: {error}"
    return f"API server not reachable yet: {error}"
