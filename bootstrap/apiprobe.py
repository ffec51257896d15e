"""Is anything listening where a kubeconfig points? A TCP connect, before paying for the client.

Importing the Kubernetes client costs about a second and tens of megabytes; on a fresh node nothing
listens at the API server endpoint yet, so a refused connect (microseconds) answers the question
the client would have answered far later. Only what is certain is reported as unreachable: when the
kubeconfig cannot be read or routes through a proxy, :func:`server_address` gives up and the caller
asks the client as before.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Short next to the client's own connect timeout: a connect on the node or its network answers in
# milliseconds; only a black-holed address waits this long, and then the API is not usable anyway.
PROBE_TIMEOUT = 0.5
_DEFAULT_PORTS = {"https": 443, "http": 80}


def _named(entries: Any, name: Any, key: str) -> dict[str, Any] | None:
    """The ``key`` body of the entry called ``name`` in a kubeconfig list (clusters, contexts)."""
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(key)
            return body if isinstance(body, dict) else None
    return None


def server_address(kubeconfig: Path) -> tuple[str, int] | None:
    """(host, port) of the current context's API server; None when that cannot be told for certain."""
    import yaml

    # libyaml's loader when built in: the pure-Python one costs tens of milliseconds per kubeconfig.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(kubeconfig.read_text(), Loader=loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    context = _named(data.get("contexts"), data.get("current-context"), "context")
    cluster = _named(data.get("clusters"), context.get("cluster") if context else None, "cluster")
    if cluster is None or cluster.get("proxy-url"):  # through a proxy, the endpoint is not ours to dial
        return None
    server = cluster.get("server")
    if not isinstance(server, str):
        return None
    try:
        url = urlsplit(server)
        port = url.port or _DEFAULT_PORTS.get(url.scheme)
    except ValueError:  # a port out of range or not a number
        return None
    if not url.hostname or port is None:
        return None
    return url.hostname, port


def listening(address: tuple[str, int], timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a TCP connection to ``address`` opens within ``timeout`` (refused, unroutable,
    unresolvable or too slow: False)."""
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False
