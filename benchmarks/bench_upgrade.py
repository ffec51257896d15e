"""On-demand benchmark of ``bootstrap upgrade apply`` of a whole control plane on the stand-ins.

Run it by hand from the repository root (it is not a test)::

    python benchmarks/bench_upgrade.py [--runs N] [--settle SECONDS]

Each run inits a v1.33 control plane with the real ``bootstrap init`` and runs it with the kubelet and
API server stand-ins (``tests/upgrade_cluster.py``, everything on loopback), then times
``bootstrap upgrade apply v1.34.2 --yes --settle S -o json`` from start to exit: four components,
each swapped, its new mirror pod waited for and kept healthy for the settle window before the next.
The floor is the sum of the settle windows (4 x S): no upgrade that checks each component's stability in
turn can be faster. Reported per run and as medians: wall time, floor, wall / floor, the time spent in the
four rollouts (from the result document) and the rest (start-up, plan, backup, certificate renewal,
kubeadm-config update). No target is asserted; it exits 0 (2 when a command failed).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for entry in (REPO, REPO / "tests"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

# The tests' traffic guard (TCP connects off loopback refused) applies here too.
import tests.conftest  # noqa: E402, F401
from tests.upgrade_cluster import COMPONENTS, running_cluster  # noqa: E402

TARGET = "v1.34.2"


def one_run(base: Path, settle: float) -> tuple[float, float]:
    """(wall seconds of the upgrade, seconds spent in its rollouts)."""
    with running_cluster(base, "v1.33.4") as cluster:
        start = time.monotonic()
        code, doc, stderr = cluster.upgrade(TARGET, settle=f"{settle:g}s")
        wall = time.monotonic() - start
        if code != 0:
            raise RuntimeError(f"upgrade apply exited {code}:\n{stderr[-3000:]}")
        rollouts = doc.get("rollouts") or []
        if [r["component"] for r in rollouts] != list(COMPONENTS):
            raise RuntimeError(f"unexpected rollouts: {rollouts}")
        return wall, sum(float(r["seconds"]) for r in rollouts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="clusters built (medians reported; default 3)")
    parser.add_argument("--settle", type=float, default=2.0, help="settle window per component (default 2)")
    args = parser.parse_args(argv)
    floor = len(COMPONENTS) * args.settle
    walls: list[float] = []
    waits: list[float] = []
    try:
        for i in range(max(1, args.runs)):
            with tempfile.TemporaryDirectory(prefix="bench-upgrade-") as tmp:
                wall, wait = one_run(Path(tmp), args.settle)
            walls.append(wall)
            waits.append(wait)
            print(
                f"  run {i + 1}: upgrade {wall:.2f}s, floor {floor:.2f}s, ratio {wall / floor:.2f}x "
                f"(rollouts {wait:.2f}s, the rest {wall - wait:.2f}s)"
            )
    except (RuntimeError, AssertionError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench_upgrade: measurement failed: {exc}", file=sys.stderr)
        return 2
    wall, wait = statistics.median(walls), statistics.median(waits)
    print()
    print(f"runs: {len(walls)}   settle per component: {args.settle:g}s   components: {len(COMPONENTS)}")
    print(f"{'measurement (median)':<52} {'seconds':>8} {'/ floor':>8}")
    print(f"{'floor: sum of the settle windows':<52} {floor:>8.2f} {1:>7.2f}x")
    print(f"{'upgrade apply v1.33 -> v1.34, start to exit':<52} {wall:>8.2f} {wall / floor:>7.2f}x")
    print(f"{'  of which the four rollouts (swap, wait, settle)':<52} {wait:>8.2f} {wait / floor:>7.2f}x")
    print(f"{'  the rest (start-up, plan, backup, renew, config)':<52} {wall - wait:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
