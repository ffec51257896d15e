"""Polls each component's health endpoint in its own thread, remembering the last answer.

A failure that cannot heal (the API server's certificate does not verify) stops the polling and is
kept in :attr:`HealthProbes.fatal` for the waiter to raise at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bootstrap.wait.health import ClientTLS, Endpoint, check

POLL_SECONDS = 0.25


@dataclass
class ProbeResult:
    error: str | None = "not checked yet"
    checked_at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class HealthProbes:
    def __init__(self, endpoints: dict[str, Endpoint], tls: ClientTLS, on_change: Callable[[], None]) -> None:
        self.endpoints = endpoints
        self._tls = tls
        self._on_change = on_change
        self.results = {name: ProbeResult() for name in endpoints}
        self.fatal: BaseException | None = None
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll, args=(name,), name=f"probe-{name}", daemon=True)
            for name in endpoints
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join(timeout=3)

    def _poll(self, name: str) -> None:
        try:
            self._poll_until_stopped(name)
        except BaseException as exc:  # not swallowed: handed to the waiter, which raises it at once
            self.fatal = exc
            self._on_change()

    def _poll_until_stopped(self, name: str) -> None:
        endpoint = self.endpoints[name]
        while not self._stop.is_set():
            error = check(endpoint, self._tls)
            previous = self.results[name].error
            self.results[name] = ProbeResult(error, time.monotonic())
            if error != previous:
                self._on_change()
            self._stop.wait(POLL_SECONDS)
