"""A live view of the mirror pods on this node: list, then watch from the list's resourceVersion.

Runs in a thread. Re-lists after ``410 Gone`` or a dropped connection; while the API server is not
up yet (or fails transiently) it keeps trying quietly, remembering the last error for the progress
display. Any other failure stops the thread and is kept in :attr:`MirrorPods.fatal` for the waiter
to raise at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from bootstrap.cluster.client import ApiError, Backoff, Gone, KubeApi

NAMESPACE = "kube-system"
WATCH_SECONDS = 50


class MirrorPods:
    def __init__(
        self, api_factory: Callable[[], KubeApi], node_name: str, on_change: Callable[[], None]
    ) -> None:
        self._api_factory = api_factory
        self.api: KubeApi | None = None
        self._selector = f"spec.nodeName={node_name}"
        self._on_change = on_change
        self._lock = threading.Lock()
        self._pods: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mirror-pods", daemon=True)
        self.synced = False  # a list has succeeded at least once
        self.last_error: ApiError | None = None  # the last transient failure, while it lasts
        self.fatal: BaseException | None = None  # what stopped the thread: no retry can help
        self.relists = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.api is None:
            return  # still building its client (a slow import): a daemon with nothing to clean up
        self.api.close()
        self._thread.join(timeout=5)

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._pods.get(name)

    @property
    def requests(self) -> int:
        return self.api.requests if self.api else 0

    def _run(self) -> None:
        try:
            # Building the client reads admin.conf and imports the library: a failure is permanent.
            self.api = self._api_factory()
            self._list_and_watch(self.api)
        except BaseException as exc:  # not swallowed: handed to the waiter, which raises it at once
            self.fatal = exc
            self._on_change()

    def _list_and_watch(self, api: KubeApi) -> None:
        backoff = Backoff(initial=0.2, maximum=1.0)
        while not self._stop.is_set():
            try:
                listing = api.list_pods(NAMESPACE, field_selector=self._selector)
                self._replace(listing.get("items", []))
                self.synced, self.last_error = True, None
                self.relists += 1
                backoff.reset()
                version = str(listing.get("metadata", {}).get("resourceVersion", ""))
                while not self._stop.is_set():
                    for kind, pod in api.watch_pods(NAMESPACE, version, WATCH_SECONDS, self._selector):
                        version = str(pod.get("metadata", {}).get("resourceVersion") or version)
                        if kind != "BOOKMARK":
                            self._apply(kind, pod)
                        if self._stop.is_set():
                            return
            except Gone:
                continue  # list again from the current state
            except ApiError as exc:
                if self._stop.is_set():
                    return  # stop() closed the connection under a call in flight
                if not exc.transient:
                    raise
                self.last_error = exc
                self._on_change()
                self._stop.wait(backoff.next())

    def _replace(self, pods: list[dict[str, Any]]) -> None:
        with self._lock:
            self._pods = {p["metadata"]["name"]: p for p in pods}
        self._on_change()

    def _apply(self, kind: str, pod: dict[str, Any]) -> None:
        name = pod.get("metadata", {}).get("name")
        if not name:
            return
        with self._lock:
            if kind == "DELETED":
                self._pods.pop(name, None)
            else:
                self._pods[name] = pod
        self._on_change()
