"""On-demand benchmark of the PKI, kubeconfig, start-up and manifest paths of ``bootstrap``.

Run it by hand (it is not a test)::

    python benchmarks/bench_pki.py [--runs N]

Every figure is compared with a baseline measured in the same run on the same machine, so the
ratios are meaningful where absolute times are not:

1. ``bootstrap phase certs`` + ``bootstrap phase kubeconfig`` (subprocesses, fresh rootfs each run)
   against (a) the floor of generating the same number of RSA-2048 keys serially in-process with
   ``cryptography`` and (b) a generated bash script that makes the same certificates with the
   ``openssl`` CLI.
2. ``bootstrap --help`` against ``python -c "import click"`` (interpreter + click start-up).
3. Rendering and writing the four static pod manifests in-process (interpreter start-up excluded).
4. ``bootstrap phase manifests`` as a process on a fresh node (PKI and kubeconfigs present, nothing
   listening where admin.conf points): wall and CPU time of the whole command, and the same command
   with every manifest skipped (its start-up), whose difference is the phase's own work.
5. ``bootstrap init`` through ``manifests`` in one process (preflight, certs, kubeconfig, manifests;
   fresh rootfs each run) against the serial keygen floor of (1).

With ``--instructions`` (needs valgrind), 2. and 4. are also counted in instructions executed
(callgrind), a figure other processes on a shared machine do not inflate: the command's process only,
without its children.

The fresh node of 4 and 5 advertises 127.0.0.1 on a port this script holds bound but not listening,
so the API server endpoint refuses connections as an empty node's does, and no traffic leaves loopback.

Medians are reported. The script prints PASS/MISS per target and exits 0 whatever the outcome; it
exits 2 only when a measurement could not be made (a command failed).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

NODE_NAME = "cp1"
ADVERTISE_ADDRESS = "10.0.0.1"
SERVICE_VIP = "10.96.0.1"
DNS_DOMAIN = "cluster.local"
KEY_BITS = 2048
DEFAULT_KEY_COUNT = 16  # 10 cert keys + sa + 5 kubeconfig client keys
_KUBECONFIG_USERS = ("admin", "super-admin", "kubelet", "controller-manager", "scheduler")
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
LOOPBACK = "127.0.0.1"
# Everything after manifests needs a kubelet and an API server; preflight's host checks (kubelet
# binary, CRI socket, the held port) fail on a bench machine and only become warnings.
AFTER_MANIFESTS = (
    "kubelet-start,wait-control-plane,upload-config,mark-control-plane,bootstrap-token,"
    "kubelet-finalize,addon,show-join-command"
)


class BenchError(Exception):
    """A measurement could not be made (a command failed or produced nothing)."""


@dataclass(frozen=True)
class Stat:
    """Samples of one measurement, in seconds."""

    name: str
    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


@dataclass(frozen=True)
class Target:
    """One reported ratio (or absolute figure) and its goal; ``ok`` is None for a figure given for context."""

    label: str
    value: float
    unit: str
    goal: str
    ok: bool | None


# --------------------------------------------------------------------------- helpers


def run_timed(argv: Sequence[str], cwd: Path | None = None) -> float:
    """Wall time of one subprocess; raises :class:`BenchError` when it fails."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace").strip()
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: {stderr[-2000:]}")
    return elapsed


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_usage(argv: Sequence[str]) -> tuple[float, float]:
    """Wall and CPU time (user + system, the process and the children it waited for) of one subprocess."""
    cpu_before = _children_cpu()
    wall = run_timed(argv)
    return wall, _children_cpu() - cpu_before


def find_bootstrap(explicit: str | None) -> str:
    """The ``bootstrap`` console script: next to this interpreter first, so no pyenv-style shim is timed."""
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "bootstrap"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("bootstrap")
    if found is None:
        raise BenchError("no `bootstrap` executable found (install the package or pass --bootstrap)")
    return found


def ensure_bytecode() -> str:
    """Compile the package's modules, as ``pip install`` does, and say where they are.

    An editable checkout run with ``PYTHONDONTWRITEBYTECODE`` set (as on this project's machines) would
    otherwise recompile every module in every measured process, about 0.1 s that no installed copy pays.
    """
    import importlib.util

    spec = importlib.util.find_spec("bootstrap")
    if spec is None or spec.origin is None:
        return "bootstrap not importable here: bytecode left as it is"
    package = Path(spec.origin).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True, capture_output=True)
    return f"bytecode compiled in {package}"


def count_keys(rootfs: Path) -> int:
    """Private keys the two phases created: ``*.key`` under the PKI dir + kubeconfigs with client keys."""
    kube_dir = rootfs / "etc" / "kubernetes"
    pki_keys = sum(1 for _ in (kube_dir / "pki").rglob("*.key"))
    kubeconfig_keys = sum(1 for conf in kube_dir.glob("*.conf") if "client-key-data" in conf.read_text())
    return pki_keys + kubeconfig_keys


# --------------------------------------------------------------------------- 1. bootstrap phases


def time_bootstrap_phases(bootstrap: str, rootfs: Path) -> float:
    """``phase certs`` then ``phase kubeconfig`` into a fresh ``rootfs``; the summed wall time."""
    common = ["--rootfs", str(rootfs), "--node-name", NODE_NAME, "--advertise-address", ADVERTISE_ADDRESS]
    certs = run_timed([bootstrap, "phase", "certs", *common])
    kubeconfig = run_timed([bootstrap, "phase", "kubeconfig", *common])
    return certs + kubeconfig


# --------------------------------------------------------------------------- 2a. serial keygen floor


def time_serial_keygen(count: int) -> tuple[float, float]:
    """Generate ``count`` RSA-2048 keys one after another in this process: (wall, CPU) seconds."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    return time.perf_counter() - start, time.process_time() - cpu


# --------------------------------------------------------------------------- 2b. openssl script

OPENSSL_CNF = f"""\
[ req ]
distinguished_name = dn
prompt = no

[ dn ]
CN = unused

[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, keyEncipherment, keyCertSign
subjectKeyIdentifier = hash

[ client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid

[ apiserver ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectAltName = DNS:{NODE_NAME}, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, \
DNS:kubernetes.default.svc.{DNS_DOMAIN}, IP:{SERVICE_VIP}, IP:{ADVERTISE_ADDRESS}

[ etcd_serving ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
authorityKeyIdentifier = keyid
subjectAltName = DNS:{NODE_NAME}, DNS:localhost, IP:{ADVERTISE_ADDRESS}, IP:127.0.0.1, IP:::1
"""

OPENSSL_SCRIPT = f"""\
#!/usr/bin/env bash
# Makes the kubeadm control-plane PKI with the openssl CLI, serially (benchmark baseline).
set -euo pipefail
OPENSSL="${{OPENSSL:-openssl}}"
CNF="$1"
OUT="$2"
mkdir -p "$OUT/etcd" "$OUT/kubeconfig"
cd "$OUT"

ca() {{  # ca <name> <CN>
  "$OPENSSL" genrsa -out "$1.key" {KEY_BITS} 2>/dev/null
  "$OPENSSL" req -x509 -new -sha256 -days 3650 -key "$1.key" -subj "/CN=$2" \\
    -config "$CNF" -extensions v3_ca -out "$1.crt"
}}

leaf() {{  # leaf <name> <ca> <subject> <extension section>
  "$OPENSSL" genrsa -out "$1.key" {KEY_BITS} 2>/dev/null
  "$OPENSSL" req -new -sha256 -key "$1.key" -subj "$3" -config "$CNF" -out "$1.csr"
  "$OPENSSL" x509 -req -sha256 -days 365 -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \\
    -extfile "$CNF" -extensions "$4" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr"
}}

ca ca kubernetes
leaf apiserver ca "/CN=kube-apiserver" apiserver
leaf apiserver-kubelet-client ca "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client" client
ca front-proxy-ca front-proxy-ca
leaf front-proxy-client front-proxy-ca "/CN=front-proxy-client" client
ca etcd/ca etcd-ca
leaf etcd/server etcd/ca "/CN={NODE_NAME}" etcd_serving
leaf etcd/peer etcd/ca "/CN={NODE_NAME}" etcd_serving
leaf etcd/healthcheck-client etcd/ca "/CN=kube-etcd-healthcheck-client" client
leaf apiserver-etcd-client etcd/ca "/CN=kube-apiserver-etcd-client" client

"$OPENSSL" genrsa -out sa.key {KEY_BITS} 2>/dev/null
"$OPENSSL" rsa -in sa.key -pubout -out sa.pub 2>/dev/null

leaf kubeconfig/admin ca "/O=kubeadm:cluster-admins/CN=kubernetes-admin" client
leaf kubeconfig/super-admin ca "/O=system:masters/CN=kubernetes-super-admin" client
leaf kubeconfig/kubelet ca "/O=system:nodes/CN=system:node:{NODE_NAME}" client
leaf kubeconfig/controller-manager ca "/CN=system:kube-controller-manager" client
leaf kubeconfig/scheduler ca "/CN=system:kube-scheduler" client
"""


def write_openssl_script(directory: Path) -> tuple[Path, Path]:
    """Write the baseline script and its extension file into ``directory``."""
    script = directory / "make-pki.sh"
    cnf = directory / "openssl-ext.cnf"
    script.write_text(OPENSSL_SCRIPT)
    script.chmod(0o755)
    cnf.write_text(OPENSSL_CNF)
    return script, cnf


def time_openssl_script(script: Path, cnf: Path, out: Path) -> float:
    return run_timed(["bash", str(script), str(cnf), str(out)])


def check_openssl_output(out: Path) -> int:
    """Sanity-check one script run: every leaf verifies against its CA; returns the number of keys."""
    pairs = {
        "ca": ["apiserver", "apiserver-kubelet-client", *(f"kubeconfig/{n}" for n in _KUBECONFIG_USERS)],
        "front-proxy-ca": ["front-proxy-client"],
        "etcd/ca": ["etcd/server", "etcd/peer", "etcd/healthcheck-client", "apiserver-etcd-client"],
    }
    for ca, leaves in pairs.items():
        certs = [str(out / f"{leaf}.crt") for leaf in leaves]
        run_timed(["openssl", "verify", "-CAfile", str(out / f"{ca}.crt"), *certs])
    if not (out / "sa.pub").is_file():
        raise BenchError("openssl script produced no sa.pub")
    return sum(1 for _ in out.rglob("*.key"))


# --------------------------------------------------------------------------- 3. manifests in-process


def manifest_timer() -> Callable[[Path], float]:
    """A function timing render + write of the four static pods into a directory (config loaded once)."""
    from bootstrap.components.pods import HostView
    from bootstrap.components.render import render
    from bootstrap.components.write import write_manifest
    from bootstrap.config import load_config

    cfg = load_config(None, {"node-name": NODE_NAME, "advertise-address": ADVERTISE_ADDRESS})
    host = HostView(dir_exists=lambda _path: False, proxy_env={})

    def timed(directory: Path) -> float:
        start = time.perf_counter()
        for component in COMPONENTS:
            write_manifest(directory, render(component, cfg, host))
        return time.perf_counter() - start

    return timed


def time_manifests(runs: int, work: Path) -> tuple[float, ...]:
    timed = manifest_timer()
    timed(work / "warm")  # first call compiles the Jinja templates
    # A fresh directory each run: write_manifest skips files whose content is already there.
    return tuple(timed(work / f"run-{i}") for i in range(runs))


# --------------------------------------------------------------------------- 4, 5. a fresh node


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port bound here but never listening: connecting to it is refused, like an API
    server endpoint on a node whose control plane has not started."""
    with socket.socket() as held:
        held.bind((LOOPBACK, 0))
        yield int(held.getsockname()[1])


def fresh_node_args(rootfs: Path, port: int) -> list[str]:
    return [
        "--rootfs",
        str(rootfs),
        "--node-name",
        NODE_NAME,
        "--advertise-address",
        LOOPBACK,
        "--apiserver-bind-port",
        str(port),
    ]


def make_fresh_node(bootstrap: str, rootfs: Path, port: int) -> None:
    """A node after ``phase certs`` and ``phase kubeconfig``: the state ``phase manifests`` starts from."""
    rootfs.mkdir()
    for phase in ("certs", "kubeconfig"):
        run_timed([bootstrap, "phase", phase, *fresh_node_args(rootfs, port)])


def time_phase_manifests(
    bootstrap: str, template: Path, target: Path, port: int, skip: bool = False
) -> tuple[float, float]:
    """``phase manifests`` on a copy of the fresh node ``template``: (wall, CPU) seconds. With ``skip``
    every manifest is skipped: the same start-up (interpreter, CLI, config, plan, lock) and no work."""
    shutil.copytree(template, target, symlinks=True)
    try:
        argv = [bootstrap, "phase", "manifests", *fresh_node_args(target, port)]
        times = run_usage([*argv, "--skip-phases", "manifests"] if skip else argv)
        written = sorted(p.name for p in (target / "etc" / "kubernetes" / "manifests").glob("*.yaml"))
        if written != ([] if skip else sorted(f"{c}.yaml" for c in COMPONENTS)):
            raise BenchError(f"phase manifests{' (all skipped)' if skip else ''} wrote {written}")
        return times
    finally:
        shutil.rmtree(target)


def time_init_through_manifests(bootstrap: str, rootfs: Path, port: int) -> tuple[float, float]:
    """``init`` from preflight through manifests in one process on an empty ``rootfs``: (wall, CPU)
    seconds, the CPU including the key generator's worker processes."""
    rootfs.mkdir()
    try:
        argv = [bootstrap, "init", *fresh_node_args(rootfs, port)]
        argv += ["--skip-phases", AFTER_MANIFESTS, "--ignore-preflight-errors", "all"]
        times = run_usage(argv)
        if not (rootfs / "etc" / "kubernetes" / "manifests" / "kube-apiserver.yaml").is_file():
            raise BenchError("init through manifests wrote no kube-apiserver manifest")
        return times
    finally:
        shutil.rmtree(rootfs)


# --------------------------------------------------------------------------- instruction counts


def count_instructions(argv: Sequence[str]) -> int:
    """Instructions the process of ``argv`` executes (callgrind; children not followed)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise BenchError("--instructions needs valgrind")
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        proc = subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BenchError(f"callgrind {' '.join(argv)} exited {proc.returncode}")
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise BenchError(f"callgrind reported no total for {' '.join(argv)}")


def instruction_targets(bootstrap: str, fresh: Path, work: Path, port: int) -> list[Target]:
    """``--help`` / ``import click`` and ``phase manifests`` on a copy of the fresh node, in instructions."""
    help_count = count_instructions([bootstrap, "--help"])
    click_count = count_instructions([sys.executable, "-c", "import click"])
    target = work / "manifests-callgrind"
    shutil.copytree(fresh, target, symlinks=True)
    try:
        manifests = count_instructions([bootstrap, "phase", "manifests", *fresh_node_args(target, port)])
    finally:
        shutil.rmtree(target)
    return [
        Target("--help / import click (instructions)", help_count / click_count, "x", "-", None),
        Target("phase manifests, fresh node (instructions)", manifests / 1e6, "M", "-", None),
        Target("  / import click (instructions)", manifests / click_count, "x", "-", None),
    ]


# --------------------------------------------------------------------------- report


def fmt_seconds(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms" if seconds < 1 else f"{seconds:8.3f} s "


def print_table(stats: Sequence[Stat]) -> None:
    width = max(len(s.name) for s in stats)
    print(f"{'measurement':<{width}}  {'median':>11}  {'min':>11}  {'max':>11}  n")
    for s in stats:
        print(
            f"{s.name:<{width}}  {fmt_seconds(s.median)}  {fmt_seconds(min(s.samples))}  "
            f"{fmt_seconds(max(s.samples))}  {len(s.samples)}"
        )


def print_targets(targets: Sequence[Target]) -> None:
    width = max(len(t.label) for t in targets)
    for t in targets:
        value = f"{t.value:.2f}{t.unit}"
        verdict = "" if t.ok is None else "PASS" if t.ok else "MISS"
        print(f"{t.label:<{width}}  {value:>10}  target {t.goal:<10}  {verdict}".rstrip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="runs of the PKI measurements (default 5)")
    parser.add_argument(
        "--startup-runs", type=int, default=10, help="runs of each start-up command and of `phase manifests`"
    )
    parser.add_argument("--manifest-runs", type=int, default=20, help="runs of the manifest rendering")
    parser.add_argument("--bootstrap", help="path of the bootstrap executable (default: beside python)")
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions with callgrind (valgrind)"
    )
    args = parser.parse_args(argv)
    for name in ("runs", "startup_runs", "manifest_runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def bench(args: argparse.Namespace) -> None:
    bootstrap = find_bootstrap(args.bootstrap)
    print(
        f"python {sys.version.split()[0]} ({sys.executable}); bootstrap: {bootstrap}; cpus: {os.cpu_count()}"
    )
    print(ensure_bytecode())
    phases: list[float] = []
    keygen: list[float] = []
    keygen_cpu: list[float] = []
    openssl: list[float] = []
    init: list[tuple[float, float]] = []
    key_count = DEFAULT_KEY_COUNT
    with tempfile.TemporaryDirectory(prefix="bench-pki-") as tmp, refusing_port() as port:
        work = Path(tmp)
        script, cnf = write_openssl_script(work)
        for i in range(args.runs):
            # Interleaved, so drift in machine load touches every measurement alike.
            rootfs = work / f"rootfs-{i}"
            rootfs.mkdir()
            phases.append(time_bootstrap_phases(bootstrap, rootfs))
            if i == 0:
                key_count = count_keys(rootfs) or DEFAULT_KEY_COUNT
            shutil.rmtree(rootfs)

            wall, cpu = time_serial_keygen(key_count)
            keygen.append(wall)
            keygen_cpu.append(cpu)

            out = work / f"openssl-{i}"
            openssl.append(time_openssl_script(script, cnf, out))
            if i == 0:
                openssl_keys = check_openssl_output(out)
                if openssl_keys != key_count:
                    print(f"note: openssl script makes {openssl_keys} keys, bootstrap made {key_count}")
            shutil.rmtree(out)

            init.append(time_init_through_manifests(bootstrap, work / f"init-{i}", port))

        fresh = work / "fresh-node"
        make_fresh_node(bootstrap, fresh, port)
        help_argv = [bootstrap, "--help"]
        click_argv = [sys.executable, "-c", "import click"]
        for argv in (help_argv, click_argv):
            run_timed(argv)  # warm the page cache and bytecode caches
        time_phase_manifests(bootstrap, fresh, work / "manifests-warm", port)
        help_times: list[float] = []
        click_times: list[float] = []
        manifests: list[tuple[float, float]] = []
        skipped: list[tuple[float, float]] = []
        for i in range(args.startup_runs):
            help_times.append(run_timed(help_argv))
            click_times.append(run_timed(click_argv))
            manifests.append(time_phase_manifests(bootstrap, fresh, work / f"manifests-{i}", port))
            skipped.append(time_phase_manifests(bootstrap, fresh, work / f"skipped-{i}", port, skip=True))
        manifest_times = time_manifests(args.manifest_runs, work)
        counted = instruction_targets(bootstrap, fresh, work, port) if args.instructions else []

    stats = [
        Stat("bootstrap phase certs + kubeconfig", tuple(phases)),
        Stat(f"floor: {key_count} x RSA-{KEY_BITS} keygen, serial", tuple(keygen)),
        Stat("baseline: openssl CLI script", tuple(openssl)),
        Stat("bootstrap init through manifests", tuple(w for w, _ in init)),
        Stat("bootstrap --help", tuple(help_times)),
        Stat('python -c "import click"', tuple(click_times)),
        Stat("phase manifests, fresh node: wall", tuple(w for w, _ in manifests)),
        Stat("phase manifests, fresh node: CPU", tuple(c for _, c in manifests)),
        Stat("  same, every manifest skipped: wall", tuple(w for w, _ in skipped)),
        Stat("  same, every manifest skipped: CPU", tuple(c for _, c in skipped)),
        Stat("render + write 4 manifests (in-process)", manifest_times),
    ]
    m = {s.name: s.median for s in stats}
    (phases_m, keygen_m, openssl_m, init_m, help_m, click_m) = (m[s.name] for s in stats[:6])
    phase_wall_m, phase_cpu_m, startup_wall_m, startup_cpu_m, manifests_m = (m[s.name] for s in stats[6:])
    # The phase's own work (render, write, look for the API): the command minus its own start-up.
    work_cpu = phase_cpu_m - startup_cpu_m
    init_cpu_ratio = statistics.median(c for _, c in init) / statistics.median(keygen_cpu)
    targets = [
        Target(
            "certs+kubeconfig / serial keygen",
            phases_m / keygen_m,
            "x",
            "<= 0.8x",
            phases_m / keygen_m <= 0.8,
        ),
        Target("openssl script / bootstrap", openssl_m / phases_m, "x", ">= 3x", openssl_m / phases_m >= 3),
        Target(
            "init through manifests / serial keygen", init_m / keygen_m, "x", "<= 1.0x", init_m <= keygen_m
        ),
        # On a saturated machine parallel key generation cannot help: then wall follows total CPU.
        Target("  CPU of init (all processes) / of the floor", init_cpu_ratio, "x", "-", None),
        Target("--help / import click", help_m / click_m, "x", "<= 1.5x", help_m / click_m <= 1.5),
        # "Process time": the CPU the command uses, which a busy machine inflates far less than wall time.
        Target("phase manifests, fresh node (CPU)", phase_cpu_m, " s", "<= 0.3 s", phase_cpu_m <= 0.3),
        Target("  its render + write, start-up excluded (CPU)", work_cpu, " s", "<= 0.3 s", work_cpu <= 0.3),
        Target("phase manifests, fresh node (wall)", phase_wall_m, " s", "<= 0.3 s", phase_wall_m <= 0.3),
        Target("  / the same start-up (wall)", phase_wall_m / startup_wall_m, "x", "-", None),
        Target("  / import click (wall)", phase_wall_m / click_m, "x", "-", None),
        Target("manifests (4, in-process)", manifests_m * 1000, " ms", "< 50 ms", manifests_m * 1000 < 50),
    ]
    print()
    print_table(stats)
    print()
    print_targets([*targets, *counted])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        bench(args)
    except BenchError as exc:
        print(f"bench_pki: measurement failed: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
