"""Explaining an unhealthy component: what we saw, the pod's events, and one likely cause.

Never a bare "timed out": every line here names something the user can look at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bootstrap.cluster.apierror import ApiError, Reason
from bootstrap.wait.status import PodView, Problem

# The kubelet's image events quote the image: 'Failed to pull image "X": ...', 'Back-off pulling image "X"'.
_PULLED_IMAGE = re.compile(r'pull(?:ing)? image "([^"]+)"')


@dataclass
class Context:
    """Facts about the node that explain a missing mirror pod."""

    kubelet_error: str | None  # None: the kubelet's healthz answered
    kubelet_watches: str | None  # staticPodPath of the kubelet config on disk (None: unknown)
    manifest_dir: str  # host path of the directory we wrote to
    api_error: ApiError | None  # None: the API server answered; else a transient failure


@dataclass
class Diagnosis:
    component: str
    lines: list[str] = field(default_factory=list)
    likely_cause: str = ""

    def text(self) -> str:
        body = "\n".join(f"  {line}" for line in self.lines)
        return f"{self.component}: not healthy\n{body}\n  likely cause: {self.likely_cause}"

    def to_dict(self) -> dict[str, Any]:
        return {"details": self.lines, "likelyCause": self.likely_cause}


def _event_line(event: dict[str, Any]) -> str:
    count = event.get("count")
    times = f" (x{count})" if count and count > 1 else ""
    return (
        f"{event.get('type', 'Normal')} {event.get('reason', '')}: {event.get('message', '')}{times}".strip()
    )


def diagnose(
    component: str,
    pod_name: str,
    view: PodView,
    health_url: str,
    health_error: str | None,
    events: list[dict[str, Any]],
    ctx: Context,
) -> Diagnosis:
    d = Diagnosis(component)
    manifest_path = f"{ctx.manifest_dir.rstrip('/')}/{component}.yaml"
    if view.present:
        ready = "ready" if view.ready else "not ready"
        d.lines.append(f"mirror pod kube-system/{pod_name}: {view.phase}, {ready}, {view.restarts} restarts")
        if view.waiting_reason:
            d.lines.append(
                f"container waiting: {view.waiting_reason}: {view.waiting_message or ''}".rstrip(": ")
            )
        if view.last_exit_code is not None:
            d.lines.append(
                f"last termination: exit code {view.last_exit_code}: {view.last_message or ''}".rstrip(": ")
            )
        if view.problem:
            d.lines.append(f"state: {view.problem}")
    else:
        d.lines.append(f"mirror pod kube-system/{pod_name}: not found")
        d.lines.append(f"kubelet: {'healthy' if ctx.kubelet_error is None else ctx.kubelet_error}")
        if ctx.kubelet_watches is not None:
            d.lines.append(
                f"kubelet staticPodPath: {ctx.kubelet_watches} (manifest written to {manifest_path})"
            )
    d.lines.append(f"health {health_url}: {'ok' if health_error is None else health_error}")
    for event in events[-5:]:
        d.lines.append(f"event: {_event_line(event)}")
    d.likely_cause = _likely_cause(component, manifest_path, view, health_error, events, ctx)
    return d


def _likely_cause(
    component: str,
    manifest_path: str,
    view: PodView,
    health_error: str | None,
    events: list[dict[str, Any]],
    ctx: Context,
) -> str:
    reason = view.waiting_reason or ""
    if not view.present:
        if ctx.kubelet_error is not None:
            return (
                f"the kubelet is not healthy ({ctx.kubelet_error}): check `systemctl status kubelet` and "
                "`journalctl -xeu kubelet`"
            )
        if ctx.kubelet_watches is not None and ctx.kubelet_watches.rstrip("/") != ctx.manifest_dir.rstrip(
            "/"
        ):
            return (
                f"the kubelet watches {ctx.kubelet_watches}, but the manifest was written to "
                f"{ctx.manifest_dir}"
            )
        # The pod's events can name a failing image before its mirror pod reaches the API server.
        image = _failing_image(events)
        if image is not None:
            return _image_cause(image)
        rejected = [e for e in events if e.get("type") == "Warning"]
        if rejected:
            return f"the kubelet rejected the manifest: {rejected[-1].get('message', '')}"
        if ctx.api_error is not None:
            return _api_cause(component, ctx.api_error)
        return (
            f"the kubelet has not started a pod from {manifest_path}: check that it watches that "
            "directory and its log (`journalctl -xeu kubelet`)"
        )
    if reason in ("ErrImagePull", "ImagePullBackOff"):
        return _image_cause(view.image)
    if reason == "CrashLoopBackOff" or (view.last_exit_code not in (None, 0) and not view.ready):
        message = f": {view.last_message}" if view.last_message else ""
        return (
            f"the container keeps exiting (exit code {view.last_exit_code}{message}): read its logs "
            "(`crictl logs`) and check its flags and the files they reference"
        )
    if reason == "CreateContainerConfigError":
        return f"the container cannot be configured: {view.waiting_message or 'see the events'}"
    if view.problem_kind is Problem.STALE:
        return (
            "the kubelet has not switched to the new manifest yet: it may be slow to rescan the directory "
            "or failing to start the new pod"
        )
    if health_error is not None:
        return (
            f"the component runs but its health endpoint fails ({health_error}): check its logs and the "
            "address and port in its flags"
        )
    if view.problem:
        return view.problem
    return "it became healthy too late or flapped: it was not healthy for the whole settle window"


def _failing_image(events: list[dict[str, Any]]) -> str | None:
    for event in reversed(events):
        if event.get("type") == "Warning" or event.get("reason") == "BackOff":
            found = _PULLED_IMAGE.search(str(event.get("message", "")))
            if found:
                return found.group(1)
    return None


def _image_cause(image: str | None) -> str:
    return (
        f"the image {image} cannot be pulled: check imageRepository and kubernetesVersion, "
        "and that this node can reach the registry"
    )


def _api_cause(component: str, error: ApiError) -> str:
    """The API server failed transiently until the deadline (permanent failures end the wait at once,
    with their own message, and never get here)."""
    if error.reason in (Reason.SERVER_ERROR, Reason.THROTTLED):
        state = f"kube-apiserver answers but fails requests ({error})"
    else:
        state = f"kube-apiserver is not serving ({error})"
    if component != "kube-apiserver":
        return f"{state}, so the kubelet cannot publish mirror pods: fix kube-apiserver first"
    return (
        f"{state}: check its container with `crictl ps -a | grep kube-apiserver` and its logs with "
        "`crictl logs`"
    )
