"""Several "machines" on one host for multi-node tests: network namespaces joined by a private bridge.

A :class:`Topology` makes, in namespaces whose names start with :data:`PREFIX` (so a crashed run's
leftovers can be recognised and removed):

* a switch namespace holding the bridge ``br0`` with the subnet's ``.1``: the test's own vantage point
  on the bridge (test threads enter it to reach the nodes) and a place to run a load balancer;
* N node namespaces, each with its own loopback (so every node can listen on ``127.0.0.1:2379``) and
  ``eth0`` = the subnet's ``.11``, ``.12``, ... plugged into the bridge.

The root namespace gets no address on the subnet: from there the prefix would follow the default route
off the machine. Before anything is sent to an address, :meth:`Topology.prove_route` asks the kernel
(``ip route get`` inside the sending namespace) which way it would go and stops the test unless it is
this topology's bridge; only then is the (namespace, address) pair registered, and the audit hook in
``tests/conftest.py`` lets the test process connect to it, from that namespace only.

:meth:`Topology.load_balancer` runs haproxy there (or in a node) in front of the nodes.

A multi-node test reads like::

    with Topology(4) as topo:                      # cp1..cp3 and a worker, plus the switch
        topo.prove_mesh()                          # nodes and the switch may talk to each other
        lb = topo.load_balancer(topo.switch, 6443, {"cp1": (topo.node(1).address, 6443)}, workdir)
        kubelet = KubeletStandin(rootfs, netns=topo.node(1).netns, binaries={"etcd": etcd})
        topo.run(topo.node(1), ["bootstrap", "init", ...], to=[lb.address])
        with topo.inside(topo.node(2), lb.address):  # the test's own client, from node 2
            ...

Processes are started with ``ip netns exec`` (it execs, so the pid is the program's own) and killed by
pid; teardown kills every process left in the namespaces, by pid, then deletes them, even when the test
failed.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.tools import wait_for

PREFIX = "kbt"  # kube-bootstrap test; with the owner's pid: kbt<pid>-<n>-sw, kbt<pid>-<n>-n1, ...
NETNS_DIR = Path("/run/netns")
SUBNET_BASE = "10.77"  # a /24 below this is picked per topology
BRIDGE = "br0"
NODE_DEVICE = "eth0"
SWITCH_HOST = 1  # the bridge's own address: .1
FIRST_NODE_HOST = 11  # node i is .(10+i)
IP_TIMEOUT = 10.0
_LOCK_FILE = Path("/run/lock/kube-bootstrap-test-netns.lock")
_NAME = re.compile(rf"^{PREFIX}(?P<pid>\d+)-\d+-(?:sw|n\d+)$")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_serial = itertools.count(1)


class RouteLeaves(AssertionError):
    """An address the test wanted to reach is not on this topology's bridge: the test stops."""


# ---- the registry the audit hook in conftest reads ------------------------------------------------------

_proven: set[tuple[int, str]] = set()  # (network namespace inode, address)
_proven_lock = threading.Lock()


def current_namespace() -> int:
    """The inode of the calling thread's network namespace (threads may sit in different ones)."""
    return os.stat("/proc/thread-self/ns/net").st_ino


def route_proven(address: str) -> bool:
    """True when a route check from the calling thread's namespace has proven ``address`` is ours."""
    key = (current_namespace(), address)
    with _proven_lock:
        return key in _proven


def _register(inode: int, address: str) -> None:
    with _proven_lock:
        _proven.add((inode, address))


def _forget(inodes: set[int]) -> None:
    # A deleted namespace's inode can be reused by a later one: its proofs must go with it.
    with _proven_lock:
        for key in [k for k in _proven if k[0] in inodes]:
            _proven.discard(key)


# ---- entering a namespace from a thread -----------------------------------------------------------------


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _namespace_fd(name: str) -> int:
    return os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)


def enter_for_good(name: str) -> None:
    """Move the calling thread into namespace ``name`` for the rest of its life (a pool initializer).

    setns(CLONE_NEWNET) applies to one thread; sockets it creates belong to that namespace whichever
    thread uses them later, and children it forks start there.
    """
    fd = _namespace_fd(name)
    try:
        _setns(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with the calling thread in namespace ``name``, then put it back where it was."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        enter_for_good(name)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


# ---- running ip ----------------------------------------------------------------------------------------


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _namespaces() -> list[str]:
    out = _ip("-j", "netns", "list").stdout.strip()
    return [entry["name"] for entry in json.loads(out or "[]")]


def _pids_in(name: str) -> list[int]:
    proc = _ip("netns", "pids", name, check=False)
    return [int(p) for p in proc.stdout.split()]


def _kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _delete_namespace(name: str) -> None:
    for pid in _pids_in(name):
        if pid != os.getpid():  # (listed if our main thread were inside: never kill the test itself)
            _kill_pid(pid)
    _ip("netns", "delete", name, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers() -> list[str]:
    """Delete the namespaces (and kill their processes) of earlier runs whose owner process is gone.

    The namespaces of a live test process (another worktree's run, say) are left alone.
    """
    removed = []
    for name in _namespaces():
        match = _NAME.match(name)
        if match and not _alive(int(match.group("pid"))):
            _delete_namespace(name)
            removed.append(name)
    return removed


def _subnets_in_use() -> set[ipaddress.IPv4Network]:
    """Subnets routed in the root namespace or used by another live topology's bridge."""
    used: set[ipaddress.IPv4Network] = set()
    routes = json.loads(_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst and dst != "default" and route.get("type", "unicast") in ("unicast", "local"):
            with contextlib.suppress(ValueError):
                used.add(ipaddress.IPv4Network(dst, strict=False))
    for name in _namespaces():
        if _NAME.match(name) and name.endswith("-sw"):
            shown = _ip("-n", name, "-j", "-4", "addr", "show", BRIDGE, check=False).stdout
            for link in json.loads(shown or "[]"):
                for info in link.get("addr_info", []):
                    used.add(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    return used


def _pick_subnet() -> ipaddress.IPv4Network:
    used = _subnets_in_use()
    start = os.getpid() % 256
    for step in range(256):
        candidate = ipaddress.IPv4Network(f"{SUBNET_BASE}.{(start + step) % 256}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise RuntimeError(f"no free /24 below {SUBNET_BASE}.0.0/16 for a test topology")


# ---- the topology ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    """One namespace on the bridge: its name, its address on the bridge, its device there."""

    netns: str
    address: str
    device: str

    @property
    def inode(self) -> int:
        return os.stat(NETNS_DIR / self.netns).st_ino


@dataclass
class Process:
    """A program the topology started in a namespace; ``pid`` is the program's own."""

    argv: list[str]
    host: Host
    popen: subprocess.Popen[bytes]
    log: Path | None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if self.log is None or not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Topology:
    """See the module docstring. Use as a context manager (or call :meth:`up` / :meth:`down`)."""

    nodes: int = 3
    name: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}-{next(_serial)}")
    subnet: ipaddress.IPv4Network | None = None
    switch: Host | None = None
    members: list[Host] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    _inodes: set[int] = field(default_factory=set)
    _routes: set[tuple[str, str]] = field(default_factory=set)

    # -- build and tear down --

    def up(self) -> Topology:
        t0 = time.monotonic()
        remove_leftovers()
        _LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        try:
            with _LOCK_FILE.open("a") as lock:
                # Two runs picking a subnet at once would pick the same one.
                fcntl.flock(lock, fcntl.LOCK_EX)
                self.subnet = _pick_subnet()
                self._build()
        except BaseException:
            self.down()
            raise
        self.timings["up"] = time.monotonic() - t0
        return self

    def _address(self, host: int) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + host)

    def _build(self) -> None:
        assert self.subnet is not None
        prefix = self.subnet.prefixlen
        sw = f"{self.name}-sw"
        self.switch = Host(sw, self._address(SWITCH_HOST), BRIDGE)  # known before it exists: down() finds it
        _ip("netns", "add", sw)
        self._inodes.add(self.switch.inode)
        commands = [
            f"link add {BRIDGE} type bridge",
            f"addr add {self.switch.address}/{prefix} dev {BRIDGE}",
            f"link set {BRIDGE} up",
            "link set lo up",
        ]
        _batch(sw, commands)
        for i in range(1, self.nodes + 1):
            ns = f"{self.name}-n{i}"
            host = Host(ns, self._address(FIRST_NODE_HOST - 1 + i), NODE_DEVICE)
            self.members.append(host)
            _ip("netns", "add", ns)
            self._inodes.add(host.inode)
            # Both ends are created straight in their namespaces: nothing appears in the root one.
            _ip("link", "add", NODE_DEVICE, "netns", ns, "type", "veth", "peer", "name", f"v{i}", "netns", sw)
            _batch(sw, [f"link set v{i} master {BRIDGE}", f"link set v{i} up"])
            _batch(
                ns,
                [
                    f"addr add {host.address}/{prefix} dev {NODE_DEVICE}",
                    f"link set {NODE_DEVICE} up",
                    "link set lo up",
                ],
            )

    def down(self) -> None:
        """Kill what the topology started (by pid), then every process left inside, then the namespaces."""
        t0 = time.monotonic()
        for proc in self.processes:
            _kill_pid(proc.pid)
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)
        hosts = [*self.members, *([self.switch] if self.switch else [])]
        for host in hosts:
            _delete_namespace(host.netns)
        _forget(self._inodes)
        self._inodes.clear()
        self._routes.clear()
        self.timings["down"] = time.monotonic() - t0

    def __enter__(self) -> Topology:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- who is where --

    def node(self, i: int) -> Host:
        """Node ``i``, counted from 1."""
        return self.members[i - 1]

    @property
    def hosts(self) -> list[Host]:
        assert self.switch is not None
        return [self.switch, *self.members]

    def _host(self, netns: str) -> Host:
        for host in self.hosts:
            if host.netns == netns:
                return host
        raise RouteLeaves(f"{netns} is not a namespace of topology {self.name}")

    # -- the route check --

    def prove_route(self, sender: Host | str, address: str) -> None:
        """Stop the test unless ``address``, sent from ``sender``'s namespace, stays on our bridge.

        The kernel is asked (``ip route get`` in that namespace); the answer must name this
        namespace's device on the bridge with no gateway, or be this namespace's own address. Then
        the pair is registered so the test process may connect from that namespace.
        """
        host = self._host(sender if isinstance(sender, str) else sender.netns)
        if (host.netns, address) in self._routes:
            return
        assert self.subnet is not None
        try:
            inside = ipaddress.ip_address(address) in self.subnet
        except ValueError:
            raise RouteLeaves(f"{address!r} is not an IP address on the test bridge") from None
        if not inside:
            raise RouteLeaves(f"{address} is outside the test bridge's subnet {self.subnet}; not sending")
        proc = _ip("-n", host.netns, "-j", "route", "get", address, check=False)
        if proc.returncode != 0:
            raise RouteLeaves(f"no route from {host.netns} to {address}: {proc.stderr.strip()}; not sending")
        routes = json.loads(proc.stdout or "[]")
        route: dict[str, Any] = routes[0] if routes else {}
        local = route.get("type") == "local" and route.get("dev") == "lo" and address == host.address
        bridged = route.get("dev") == host.device and "gateway" not in route
        if not (local or bridged):
            raise RouteLeaves(
                f"from {host.netns}, {address} would go {route} instead of through {host.device} on the "
                f"test bridge; not sending"
            )
        _register(host.inode, address)
        self._routes.add((host.netns, address))

    def prove_mesh(self) -> None:
        """Every namespace may send to every address of the topology (e.g. before etcd peers talk)."""
        for sender in self.hosts:
            for target in self.hosts:
                self.prove_route(sender, target.address)

    # -- using it --

    @contextlib.contextmanager
    def inside(self, sender: Host | str, *targets: str) -> Iterator[None]:
        """The calling thread in ``sender``'s namespace, allowed to connect to ``targets``."""
        host = self._host(sender if isinstance(sender, str) else sender.netns)
        for target in targets:
            self.prove_route(host, target)
        with entered(host.netns):
            yield

    def connect(self, sender: Host | str, address: tuple[str, int], timeout: float = 2.0) -> socket.socket:
        """A TCP connection from ``sender``'s namespace (the route proven first)."""
        with self.inside(sender, address[0]):
            return socket.create_connection(address, timeout=timeout)

    def _wrapped(self, host: Host, argv: Sequence[str], targets: Sequence[str]) -> list[str]:
        for target in targets:
            self.prove_route(host, target)
        return ["ip", "netns", "exec", host.netns, *map(str, argv)]

    def run(
        self,
        sender: Host | str,
        argv: Sequence[str],
        *,
        to: Sequence[str] = (),
        timeout: float = 30.0,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to completion in ``sender``'s namespace; it may send to the addresses ``to``."""
        host = self._host(sender if isinstance(sender, str) else sender.netns)
        return subprocess.run(
            self._wrapped(host, argv, to), capture_output=True, text=True, timeout=timeout, env=env
        )

    def spawn(
        self,
        sender: Host | str,
        argv: Sequence[str],
        *,
        to: Sequence[str] = (),
        log: Path | None = None,
        cwd: Path | None = None,
    ) -> Process:
        """Start ``argv`` in ``sender``'s namespace (killed by pid at teardown at the latest)."""
        host = self._host(sender if isinstance(sender, str) else sender.netns)
        command = self._wrapped(host, argv, to)
        sink: IO[bytes] | int = subprocess.DEVNULL
        with contextlib.ExitStack() as stack:
            if log is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
                sink = stack.enter_context(log.open("ab"))
            popen = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, cwd=cwd, start_new_session=True
            )
        proc = Process(command[4:], host, popen, log)
        self.processes.append(proc)
        return proc

    def load_balancer(
        self,
        host: Host | str,
        port: int,
        backends: dict[str, tuple[str, int]],
        workdir: Path,
        *,
        check_interval_ms: int = 100,
    ) -> LoadBalancer:
        """haproxy in ``host``'s namespace on its bridge address:``port``, TCP round robin over
        ``backends`` (name → address, port) with a TCP health check every ``check_interval_ms``; a
        connection that finds its server dead is sent to another (``option redispatch``)."""
        from tests.tools import tool

        where = self._host(host if isinstance(host, str) else host.netns)
        workdir.mkdir(parents=True, exist_ok=True)
        stats = workdir / "haproxy.sock"
        config = workdir / "haproxy.cfg"
        config.write_text(_haproxy_config(where.address, port, backends, stats, check_interval_ms))
        checked = subprocess.run([tool("haproxy"), "-c", "-f", str(config)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy refuses {config}: {checked.stdout}{checked.stderr}")
        process = self.spawn(
            where,
            [tool("haproxy"), "-db", "-f", str(config)],
            to=[address for address, _ in backends.values()],
            log=workdir / "haproxy.log",
        )
        return LoadBalancer(process, where.address, port, stats)

    def kill(self, proc: Process, sig: int = signal.SIGKILL) -> None:
        """Signal one process by its pid and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=10)


LB_BACKEND = "control-plane"  # the haproxy backend (proxy) name


def _haproxy_config(
    address: str, port: int, backends: dict[str, tuple[str, int]], stats: Path, check_interval_ms: int
) -> str:
    servers = "".join(f"  server {name} {host}:{p} check\n" for name, (host, p) in backends.items())
    return (
        "global\n"
        f"  stats socket {stats} mode 600 level admin\n"
        "defaults\n"
        "  mode tcp\n"
        "  timeout connect 1s\n"
        "  timeout client 1h\n"  # long watches through the balancer must not be cut
        "  timeout server 1h\n"
        "  retries 2\n"
        "  option redispatch\n"
        f"  default-server inter {check_interval_ms}ms fall 2 rise 1\n"
        "frontend front\n"
        f"  bind {address}:{port}\n"
        f"  default_backend {LB_BACKEND}\n"
        f"backend {LB_BACKEND}\n"
        "  balance roundrobin\n"
        f"{servers}"
    )


@dataclass
class LoadBalancer:
    """A running haproxy (see :meth:`Topology.load_balancer`)."""

    process: Process
    address: str
    port: int
    stats: Path

    def states(self) -> dict[str, str]:
        """Backend server name → haproxy's status for it (UP, DOWN, ...), from its stats socket."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(self.stats))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {
            row["svname"]: row["status"]
            for row in rows
            if row.get("pxname") == LB_BACKEND and row.get("svname") not in ("FRONTEND", "BACKEND")
        }

    def wait_for(self, wanted: dict[str, str], timeout: float = 10.0) -> None:
        """Until haproxy's health checks report ``wanted`` (name → status prefix, e.g. UP or DOWN)."""

        def reached() -> bool:
            if not self.process.alive():
                raise AssertionError(f"haproxy exited:\n{self.process.log_tail()}")
            now = self.states()
            return all(now.get(name, "").startswith(state) for name, state in wanted.items())

        wait_for(reached, timeout, what=f"haproxy to report {wanted}")


def _batch(netns: str, commands: Sequence[str]) -> None:
    """Several ``ip`` commands in one process (each spawn costs a few milliseconds)."""
    proc = subprocess.run(
        ["ip", "-n", netns, "-batch", "-"],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        timeout=IP_TIMEOUT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ip -n {netns} -batch failed: {proc.stderr.strip()}")
