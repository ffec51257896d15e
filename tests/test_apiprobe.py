"""The reachability probe: which endpoint a kubeconfig names, and whether anything listens there."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import yaml

from bootstrap.cluster.probe import listening, server_address


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


def kubeconfig(tmp_path: Path, current: str, clusters: dict[str, dict[str, str]]) -> Path:
    path = tmp_path / "admin.conf"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": body} for name, body in clusters.items()],
        "contexts": [{"name": f"ctx-{name}", "context": {"cluster": name, "user": "u"}} for name in clusters],
        "current-context": f"ctx-{current}",
        "users": [{"name": "u", "user": {}}],
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_current_contexts_cluster_is_the_one_probed(tmp_path: Path) -> None:
    clusters = {"a": {"server": "https://10.0.0.1:6443"}, "b": {"server": "https://[fd00::1]:7443"}}
    assert server_address(kubeconfig(tmp_path, "b", clusters)) == ("fd00::1", 7443)
    assert server_address(kubeconfig(tmp_path, "a", clusters)) == ("10.0.0.1", 6443)


def test_a_server_without_a_port_uses_the_schemes_port(tmp_path: Path) -> None:
    assert server_address(kubeconfig(tmp_path, "a", {"a": {"server": "https://cp.example"}})) == (
        "cp.example",
        443,
    )


@pytest.mark.parametrize(
    "cluster",
    [
        {"server": "https://10.0.0.1:6443", "proxy-url": "http://proxy:3128"},
        {"server": "https://10.0.0.1:99999"},
        {"server": "10.0.0.1"},
        {},
    ],
    ids=["through-a-proxy", "port-out-of-range", "no-scheme", "no-server"],
)
def test_an_endpoint_that_cannot_be_told_for_certain_is_left_to_the_client(
    tmp_path: Path, cluster: dict[str, str]
) -> None:
    assert server_address(kubeconfig(tmp_path, "a", {"a": cluster})) is None


@pytest.mark.parametrize(
    ("variables", "server", "proxied"),
    [
        ({"HTTPS_PROXY": "http://proxy:3128"}, "https://10.0.0.1:6443", True),
        ({"ALL_PROXY": "http://proxy:3128"}, "https://10.0.0.1:6443", True),
        ({"HTTP_PROXY": "http://proxy:3128"}, "https://10.0.0.1:6443", False),
        (
            {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "localhost,10.0.0.0/8"},
            "https://10.0.0.1:6443",
            False,
        ),
        ({"https_proxy": "http://proxy:3128", "no_proxy": ".example"}, "https://cp.example:6443", False),
        (
            {"https_proxy": "http://proxy:3128", "no_proxy": "cp.example:6443"},
            "https://cp.example:6443",
            False,
        ),
        ({"https_proxy": "http://proxy:3128", "no_proxy": "other.example"}, "https://cp.example:6443", True),
        ({"HTTPS_PROXY": "http://proxy:3128", "https_proxy": ""}, "https://10.0.0.1:6443", False),
        ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "*"}, "https://10.0.0.1:6443", False),
    ],
)
def test_a_server_the_client_would_reach_through_an_environment_proxy_is_left_to_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], server: str, proxied: bool
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    address = server_address(kubeconfig(tmp_path, "a", {"a": {"server": server}}))
    assert (address is None) is proxied


@pytest.mark.parametrize("text", ["clusters: [unclosed", "just a string", "current-context: nowhere\n"])
def test_an_unreadable_kubeconfig_is_left_to_the_client(tmp_path: Path, text: str) -> None:
    path = tmp_path / "admin.conf"
    path.write_text(text)
    assert server_address(path) is None
    assert server_address(tmp_path / "missing.conf") is None


def test_a_listening_port_is_reachable_and_a_closed_one_is_not() -> None:
    with socket.socket() as server, socket.socket() as closed:
        server.bind(("127.0.0.1", 0))
        server.listen()
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
        assert listening(server.getsockname()) is True
        assert listening(closed.getsockname()) is False


def test_without_a_current_context_the_probe_dials_what_the_client_would(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path, "a", {"a": {"server": "https://10.0.0.1:6443"}, "b": {"server": "https://b:1"}}
    )
    document = yaml.safe_load(path.read_text())
    del document["current-context"]
    path.write_text(yaml.safe_dump(document))
    # The client takes the first context then; so does the probe (one resolution, cluster/client.py).
    assert server_address(path) == ("10.0.0.1", 6443)
