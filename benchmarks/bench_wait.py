"""On-demand benchmark of ``bootstrap phase wait-control-plane`` against the kubelet/API server stand-ins.

Run it by hand from the repository root (it is not a test)::

    python benchmarks/bench_wait.py [--runs N] [--api-wait SECONDS] [--bootstrap PATH]

The stand-ins (``tests/standin``) run in this process; the wait runs as a subprocess, as in
``tests/test_wait.py``. Two figures, each the median over ``--runs`` runs (fresh rootfs per run):

1. Exit latency: the last component (``kube-scheduler``, ``Scenario(start_delay=...)``) becomes healthy
   at a time observed here from the stand-in side, and the wait (``--settle 1s``) should exit soon after
   the settle window. Latency = exit time - time the last component became healthy - settle. "Became
   healthy" is the later of (a) the stand-in container turning ready, which is the instant its health
   endpoint starts answering 200, and (b) the mirror pod being Running with Ready=True in the API server
   stand-in's store; both are sampled in-process every ``SAMPLE`` seconds, and (a) is cross-checked by
   probing the scheduler's real health endpoint over HTTPS at the same rate. The wait's own
   ``healthyAfterSeconds`` and the process start-up cost (``bootstrap --version``) are shown for context.
2. API requests per minute of waiting: a wait held for ``--api-wait`` seconds by a slow scheduler;
   requests the wait made (user ``kubernetes-admin``, health/version paths excluded; the kubelet
   stand-in's ``system:node:...`` requests excluded) minus the initial list, per minute from the
   initial list to the command's exit, with a lists/watches/other breakdown.

It prints a table with PASS/MISS against the targets and exits 0 whatever the figures (2 only if a
measurement could not be made: the stand-ins or the command failed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.standin.apiserver import HEALTH_PATHS  # noqa: E402
from tests.standin.harness import prepare_rootfs, running_control_plane, wait_for  # noqa: E402
from tests.standin.kubelet import KubeletStandin, Scenario  # noqa: E402
from tests.standin.store import resource_by_name  # noqa: E402

SETTLE = 1.0
LAST = "kube-scheduler"
LAST_DELAY = 2.0  # seconds after the kubelet picks the manifest up
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
SAMPLE = 0.005  # seconds between two samples of the stand-in state
ADMIN = "kubernetes-admin"
LATENCY_TARGET = 0.5  # seconds, median
REQUESTS_TARGET = 10.0  # per minute of waiting, median


class BenchError(Exception):
    """A measurement could not be made."""


def bootstrap_path(override: str | None) -> str:
    """``bootstrap`` beside this interpreter (not a pyenv-style shim), else on PATH."""
    if override:
        return override
    beside = Path(sys.executable).parent / "bootstrap"
    if beside.exists():
        return str(beside)
    found = shutil.which("bootstrap")
    if found is None:
        raise BenchError("bootstrap is not installed")
    return found


# ---- observing the stand-ins ------------------------------------------------------------------------


@dataclass
class Observer:
    """Samples the stand-ins every ``SAMPLE`` s: readiness per component, the API request log's growth."""

    kubelet: KubeletStandin
    node: str
    probe_url: str | None = None
    ready_at: dict[str, float] = field(default_factory=dict)  # container ready (health answers 200)
    mirror_at: dict[str, float] = field(default_factory=dict)  # mirror pod Running + Ready in the store
    probe_ok_at: float | None = None  # first 200 from ``probe_url``
    request_times: list[float] = field(default_factory=list)  # when each request_log entry was seen
    api: Any = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sample, daemon=True)]
        if self.probe_url:
            self._threads.append(threading.Thread(target=self._probe, daemon=True))

    def __enter__(self) -> Observer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _sample(self) -> None:
        pods = resource_by_name("", "v1", "pods")
        while not self._stop.is_set():
            now = time.monotonic()
            for pod in list(self.kubelet.pods.values()):
                if pod.ready and pod.name not in self.ready_at:
                    self.ready_at[pod.name] = now
            api = self.kubelet.api
            if api is not None:
                self.api = api
            if self.api is not None:
                for name in COMPONENTS:
                    if name in self.mirror_at:
                        continue
                    mirror = self.api.store.get_or_none(pods, "kube-system", f"{name}-{self.node}")
                    if mirror is not None and _running_ready(mirror):
                        self.mirror_at[name] = now
                seen = len(self.api.request_log)
                self.request_times += [now] * (seen - len(self.request_times))
            self._stop.wait(SAMPLE)

    def _probe(self) -> None:
        assert self.probe_url is not None
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        while not self._stop.is_set() and self.probe_ok_at is None:
            with (
                contextlib.suppress(Exception),
                urllib.request.urlopen(self.probe_url, timeout=1, context=ctx),
            ):
                self.probe_ok_at = time.monotonic()  # urlopen raises on anything but 2xx
            self._stop.wait(SAMPLE)

    def healthy_at(self, name: str) -> float | None:
        ready, mirror = self.ready_at.get(name), self.mirror_at.get(name)
        return None if ready is None or mirror is None else max(ready, mirror)


def _running_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return status.get("phase") == "Running" and ready


def _scheduler_probe_url(rootfs: Path) -> str:
    """The scheduler's health endpoint, from its manifest (as the wait and the stand-in both read it)."""
    from tests.standin.kubelet import parse_pod, probe_endpoints

    path = rootfs / "etc/kubernetes/manifests/kube-scheduler.yaml"
    pod = parse_pod(path.read_bytes(), path)
    (host, port, scheme), paths = next(iter(probe_endpoints(pod["spec"]["containers"][0]).items()))
    path_ = "/readyz" if "/readyz" in paths else paths[0]
    return f"{scheme.lower()}://{host}:{port}{path_}"


# ---- running the wait -----------------------------------------------------------------------------


@dataclass
class Cluster:
    rootfs: Path
    config: Path
    node: str


def init_skip_phases(bootstrap: str) -> str:
    """``preflight`` and every top-level ``init`` phase from ``wait-control-plane`` on (the later ones,
    such as uploading the config, need the API server, which only runs once the kubelet stand-in does)."""
    text = subprocess.run([bootstrap, "init", "--help"], capture_output=True, text=True, check=True).stdout
    listing = text.split("Phases, in order:", 1)[-1]
    phases = [m[1] for m in re.finditer(r"^  ([a-z][\w-]*) ", listing, re.MULTILINE)]
    later = phases[phases.index("wait-control-plane") :] if "wait-control-plane" in phases else []
    return ",".join([p for p in phases if p == "preflight"] + later)


@contextlib.contextmanager
def fresh_cluster(skip: str) -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix="bench-wait-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        prepare_rootfs(rootfs, extra=("--skip-phases", skip) if skip else ())
        yield Cluster(rootfs, Path(tmp) / "rootfs-kubeadm.yaml", "cp1")


@dataclass
class WaitRun:
    code: int
    doc: dict[str, Any]
    stderr: str
    started: float
    exited: float

    def details(self) -> dict[str, Any]:
        phases = self.doc.get("phases") or [{}]
        return dict(phases[-1].get("details") or self.doc.get("error", {}).get("details") or {})

    def healthy_after(self) -> dict[str, float]:
        comps = self.details().get("components") or []
        return {c["component"]: c["healthyAfterSeconds"] for c in comps if "healthyAfterSeconds" in c}


def run_wait(bootstrap: str, cluster: Cluster, timeout: float) -> WaitRun:
    args = [bootstrap, "phase", "wait-control-plane", "--config", str(cluster.config)]
    args += ["--rootfs", str(cluster.rootfs), "--settle", f"{SETTLE:g}s", "--timeout", f"{timeout:g}s"]
    args += ["-o", "json"]
    started = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=timeout + 60)
    exited = time.monotonic()
    try:
        doc = json.loads(out)
    except json.JSONDecodeError as exc:
        raise BenchError(f"wait printed no JSON (exit {proc.returncode}):\n{out}\n{err}") from exc
    if proc.returncode != 0:
        raise BenchError(f"wait failed (exit {proc.returncode}):\n{err}")
    return WaitRun(proc.returncode, doc, err, started, exited)


# ---- 1. exit latency ------------------------------------------------------------------------------


@dataclass
class LatencyRun:
    latency: float  # exit - last healthy - settle
    last: str  # the component that became healthy last
    probe_skew: float | None  # HTTP probe's first 200 - in-process ready time, for the last component
    healthy_after: dict[str, float]
    wall: float


def measure_latency(bootstrap: str, skip: str) -> LatencyRun:
    scenarios = {LAST: Scenario(start_delay=LAST_DELAY)}
    with fresh_cluster(skip) as cluster:
        url = _scheduler_probe_url(cluster.rootfs)
        with (
            running_control_plane(cluster.rootfs, scenarios) as kubelet,
            Observer(kubelet, cluster.node, url) as obs,
        ):
            run = run_wait(bootstrap, cluster, timeout=30)
            # the observer keeps sampling until here, so a late mirror update would still be seen
        healthy = {name: obs.healthy_at(name) for name in COMPONENTS}
        missing = [name for name, at in healthy.items() if at is None]
        if missing:
            raise BenchError(f"never saw {', '.join(missing)} become healthy on the stand-in side")
        last = max(COMPONENTS, key=lambda n: healthy[n] or 0.0)
        last_at = healthy[last] or 0.0
        skew = None
        ready = obs.ready_at.get(LAST)
        if obs.probe_ok_at is not None and ready is not None:
            skew = obs.probe_ok_at - ready
        return LatencyRun(
            run.exited - last_at - SETTLE, last, skew, run.healthy_after(), run.exited - run.started
        )


def measure_startup(bootstrap: str, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.monotonic()
        subprocess.run([bootstrap, "--version"], check=True, capture_output=True)
        samples.append(time.monotonic() - start)
    return samples


# ---- 2. API requests per minute of waiting --------------------------------------------------------


@dataclass
class RequestRun:
    per_minute: float
    minutes: float
    lists: int
    watches: int
    other: int
    kubelet_requests: int
    reported: int | None  # the wait's own ``apiRequests`` figure
    offsets: list[tuple[float, str]]  # (seconds after the initial list, kind) of each later request


def _kind(method: str, path: str) -> str:
    base, _, query = path.partition("?")
    if method == "GET" and re.search(r"(^|&)watch=(true|1)(&|$)", query, re.IGNORECASE):
        return "watch"
    if method == "GET" and base.rstrip("/").endswith("/pods"):
        return "list"
    return "other"


def measure_requests(bootstrap: str, skip: str, hold: float) -> RequestRun:
    scenarios = {LAST: Scenario(start_delay=hold)}
    with fresh_cluster(skip) as cluster:
        with (
            running_control_plane(cluster.rootfs, scenarios) as kubelet,
            Observer(kubelet, cluster.node) as obs,
        ):
            # the API server up first, so the wait's first list succeeds and nothing is a retry
            wait_for(lambda: kubelet.api is not None and obs.api is not None, what="the API server stand-in")
            run = run_wait(bootstrap, cluster, timeout=hold + 30)
            time.sleep(3 * SAMPLE)
        log = list(obs.api.request_log)
        times = obs.request_times
    ours = [
        (times[i] if i < len(times) else run.exited, method, path)
        for i, (method, path, user) in enumerate(log)
        if user == ADMIN and not path.split("?")[0].rstrip("/").startswith(HEALTH_PATHS)
    ]
    kubelet_requests = sum(1 for _, _, user in log if user.startswith("system:node:"))
    first_list = next((i for i, (_, m, p) in enumerate(ours) if _kind(m, p) == "list"), None)
    if first_list is None:
        raise BenchError("the wait made no list request")
    after = ours[first_list + 1 :]
    minutes = (run.exited - ours[first_list][0]) / 60
    kinds = [_kind(m, p) for _, m, p in after]
    return RequestRun(
        per_minute=len(after) / minutes,
        minutes=minutes,
        lists=kinds.count("list"),
        watches=kinds.count("watch"),
        other=kinds.count("other"),
        kubelet_requests=kubelet_requests,
        reported=run.details().get("apiRequests"),
        offsets=[(t - ours[first_list][0], kind) for (t, _, _), kind in zip(after, kinds, strict=True)],
    )


# ---- report ---------------------------------------------------------------------------------------


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "MISS"


def fmt(values: list[float], unit: str = "s") -> str:
    return " ".join(f"{v:.3f}" for v in values) + f" {unit}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median reported)")
    parser.add_argument(
        "--api-wait",
        type=float,
        default=20.0,
        help="seconds the request-rate wait is held by a slow kube-scheduler (default 20)",
    )
    parser.add_argument("--bootstrap", help="the bootstrap executable (default: beside this Python)")
    args = parser.parse_args(argv)
    runs = max(1, args.runs)
    try:
        bootstrap = bootstrap_path(args.bootstrap)
        startup = measure_startup(bootstrap, max(runs, 5))
        skip = init_skip_phases(bootstrap)
        latency = []
        for i in range(runs):
            latency.append(measure_latency(bootstrap, skip))
            print(f"  latency run {i + 1}/{runs}: {latency[-1].latency:.3f} s (last: {latency[-1].last})")
        requests = []
        for i in range(runs):
            requests.append(measure_requests(bootstrap, skip, args.api_wait))
            r = requests[-1]
            print(f"  request run {i + 1}/{runs}: {r.per_minute:.2f}/min over {r.minutes * 60:.1f} s")
    except (BenchError, AssertionError, subprocess.SubprocessError, OSError) as exc:
        print(f"bench_wait: measurement failed: {exc}", file=sys.stderr)
        return 2

    lat = [r.latency for r in latency]
    rate = [r.per_minute for r in requests]
    lat_med, rate_med = statistics.median(lat), statistics.median(rate)
    print()
    print(f"bootstrap: {bootstrap}   runs: {runs}   settle: {SETTLE:g}s   sample: {SAMPLE * 1000:g} ms")
    print(f"rootfs made by `bootstrap init --skip-phases {skip}`")
    print(f"{'measurement':<44} {'median':>9} {'max':>9} {'target':>9}  result")
    print(
        f"{'exit latency after last healthy + settle':<44} {lat_med:>8.3f}s {max(lat):>8.3f}s "
        f"{'<= ' + format(LATENCY_TARGET, 'g') + 's':>9}  {verdict(lat_med, LATENCY_TARGET)}"
    )
    print(
        f"{'API requests / min of waiting (after list)':<44} {rate_med:>9.2f} {max(rate):>9.2f} "
        f"{'<= ' + format(REQUESTS_TARGET, 'g'):>9}  {verdict(rate_med, REQUESTS_TARGET)}"
    )
    print()
    print("context:")
    print(f"  bootstrap --version start-up: median {statistics.median(startup):.3f} s ({len(startup)} runs)")
    print(f"  exit latency samples: {fmt(lat)}; last healthy: {', '.join(r.last for r in latency)}")
    print(f"  wait wall time (start to exit): {fmt([r.wall for r in latency])}")
    skews = [r.probe_skew for r in latency if r.probe_skew is not None]
    if skews:
        print(f"  {LAST} HTTPS probe 200 minus in-process ready: {fmt(skews)}")
    for name in COMPONENTS:
        values = [r.healthy_after[name] for r in latency if name in r.healthy_after]
        if values:
            print(f"  healthyAfterSeconds {name:<24} median {statistics.median(values):.3f} ({fmt(values)})")
    for i, r in enumerate(requests, 1):
        print(
            f"  request run {i}: {r.minutes * 60:.1f} s waited; after the initial list: {r.lists} lists, "
            f"{r.watches} watches, {r.other} other; wait's apiRequests={r.reported}; "
            f"kubelet stand-in requests={r.kubelet_requests}"
        )
        if r.offsets:
            print("    at +" + ", +".join(f"{t:.2f}s {kind}" for t, kind in r.offsets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
