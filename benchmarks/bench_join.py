"""On-demand benchmark of a control-plane ``bootstrap join`` against the HA test cluster.

Run it by hand from the repository root, as root (it makes network namespaces; it is not a test)::

    python benchmarks/bench_join.py [--runs N]

Each run builds the cluster of ``tests/test_join_ha.py`` from nothing (tests/ha_cluster.py: node
namespaces on a private bridge, haproxy at ``controlPlaneEndpoint``, a kubelet stand-in per node running
real etcd, API stand-ins on that etcd): ``bootstrap init --upload-certs`` on cp1, control-plane joins of
cp2 then cp3, a worker join of w1, then tears it down. Timed, per run, from the start of the command
to its exit (a control-plane join exits once its wait-control-plane found this node's components
healthy, so that is "start to healthy"):

* the control-plane joins of cp2 (the second member) and cp3 (the third: etcd refuses to add a member
  for ~5 s after the previous one started, so its learner add waits);
* their etcd part: learner add + etcd start + promote, i.e. the ``etcd-join`` phase, from the phase's
  own duration in the JSON result when it reports one, else from its lines on stderr (each phase
  prints its lines when it ends: from the previous phase's last line to etcd-join's last line);
* the baselines measured in the same run: the worker join of w1 (same discovery and TLS bootstrap,
  no control plane) and the ``init`` of cp1.

Medians over the runs are printed with the ratios control-plane join / worker join, control-plane
join / init and etcd / control-plane join. No target is asserted; it exits 0 (2 when a command failed or
the cluster could not be built).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# tests/ too: the etcd helpers' module imports its sibling tools.py as pytest lets it (top level).
for entry in (REPO, REPO / "tests"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

# The tests' traffic guard (an audit hook refusing TCP connects off loopback unless the netns
# harness proved the route goes through its own bridge) applies here too.
import tests.conftest  # noqa: E402, F401
from tests.ha_cluster import HaCluster, Run  # noqa: E402
from tests.netns import Topology  # noqa: E402

NAMES = ["cp1", "cp2", "cp3", "w1"]


class BenchError(Exception):
    pass


@dataclass
class Sample:
    init: float
    worker: float
    joins: dict[str, float]  # node → control-plane join seconds
    etcd: dict[str, float]  # node → etcd-join seconds
    etcd_source: str
    phases: dict[str, dict[str, float]]  # node → phase label → seconds


def etcd_seconds(run: Run) -> tuple[float, str]:
    """The etcd-join phase's duration: from the JSON result if it says, else from the stderr lines.

    A phase prints its lines when it has finished, so it ran from the last line before its own (the
    previous phase's end) to its last line."""
    report = run.phase("etcd-join")
    for key in ("seconds", "durationSeconds", "duration"):
        value = report.get(key)
        if isinstance(value, int | float):
            return float(value), "JSON"
    label = "[etcd-join]"
    own = [i for i, (_, line) in enumerate(run.lines) if line.startswith(label)]
    before = [i for i in range(own[0] if own else 0) if not run.lines[i][1].startswith(label)]
    if not own or not before:
        raise BenchError(f"cannot find where the etcd-join phase began and ended in the output:\n{run}")
    return run.lines[own[-1]][0] - run.lines[before[-1]][0], "stderr lines (phase end to phase end)"


def phase_seconds(run: Run) -> dict[str, float]:
    """Every phase label's share of the run, from its lines on stderr (each printed when the phase
    ends): from the end of the label before it (or the start) to its own last line. Warnings are
    printed by the phase that found them, so they count as its lines' time, not as a phase."""
    spans: dict[str, float] = {}
    previous = run.started
    labels = [
        (at, label)
        for at, line in run.lines
        if line.startswith("[") and "]" in line and (label := line[1 : line.index("]")]) != "warning"
    ]
    for i, (at, label) in enumerate(labels):
        if i + 1 < len(labels) and labels[i + 1][1] == label:
            continue  # not this label's last line yet
        if label in spans:  # a label seen again later: count it once, where it first ended
            continue
        spans[label] = at - previous
        previous = at
    return spans


def checked(what: str, run: Run, cluster: HaCluster) -> Run:
    if run.code != 0:
        raise BenchError(f"{what} failed:\n{run}{cluster.etcd_logs()}")
    return run


def one_run(base: Path) -> Sample:
    with Topology(len(NAMES)) as topo:
        cluster = HaCluster(topo, base, NAMES)
        try:
            cluster.start_load_balancer(["cp1", "cp2", "cp3"])
            init = checked("init cp1", cluster.init(cluster.node("cp1")), cluster)
            joins: dict[str, float] = {}
            etcd: dict[str, float] = {}
            phases: dict[str, dict[str, float]] = {}
            source = ""
            for name in ("cp2", "cp3"):
                run = checked(f"join {name}", cluster.join(cluster.node(name)), cluster)
                joins[name] = run.seconds
                etcd[name], source = etcd_seconds(run)
                phases[name] = phase_seconds(run)
            worker = checked("join w1", cluster.join(cluster.node("w1")), cluster)
            phases["w1"] = phase_seconds(worker)
            return Sample(init.seconds, worker.seconds, joins, etcd, source, phases)
        finally:
            cluster.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="clusters built (medians reported; default 3)")
    args = parser.parse_args(argv)
    samples: list[Sample] = []
    try:
        for i in range(max(1, args.runs)):
            t = time.monotonic()
            with tempfile.TemporaryDirectory(prefix="bench-join-") as tmp:
                samples.append(one_run(Path(tmp)))
            s = samples[-1]
            print(
                f"  run {i + 1}: init {s.init:.2f}s, "
                f"join cp2 {s.joins['cp2']:.2f}s (etcd {s.etcd['cp2']:.2f}s), "
                f"join cp3 {s.joins['cp3']:.2f}s (etcd {s.etcd['cp3']:.2f}s), worker {s.worker:.2f}s; "
                f"cluster built and gone in {time.monotonic() - t:.1f}s"
            )
    except (BenchError, AssertionError, OSError) as exc:
        print(f"bench_join: measurement failed: {exc}", file=sys.stderr)
        return 2

    def med(values: list[float]) -> float:
        return statistics.median(values)

    init = med([s.init for s in samples])
    worker = med([s.worker for s in samples])
    print()
    print(f"runs: {len(samples)}   etcd-join time from: {samples[0].etcd_source}")
    print(f"{'measurement (median)':<60} {'seconds':>8} {'/ worker':>9} {'/ init':>8} {'etcd share':>11}")
    print(f"{'init cp1 (baseline)':<60} {init:>8.2f} {init / worker:>8.2f}x {1:>7.2f}x")
    print(f"{'worker join w1 (baseline)':<60} {worker:>8.2f} {1:>8.2f}x {worker / init:>7.2f}x")
    for name, label in (("cp2", "second member"), ("cp3", "third member")):
        join = med([s.joins[name] for s in samples])
        etcd = med([s.etcd[name] for s in samples])
        print(
            f"{f'control-plane join {name} ({label}), start to healthy':<60} {join:>8.2f} "
            f"{join / worker:>8.2f}x {join / init:>7.2f}x {etcd / join:>10.0%}"
        )
        print(f"{'  of which etcd-join (add, start, promote)':<60} {etcd:>8.2f}")
    print()
    print(
        "where the time goes (median seconds per phase, from the stderr lines; "
        "preflight includes start-up and discovery)"
    )
    for name in ("cp2", "cp3", "w1"):
        labels = list(samples[0].phases[name])
        spans = ", ".join(
            f"{label} {med([s.phases[name].get(label, 0.0) for s in samples]):.2f}" for label in labels
        )
        print(f"  {name}: {spans}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
