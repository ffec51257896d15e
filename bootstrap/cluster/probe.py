"""Is anything listening where a kubeconfig points? A TCP connect, before paying for the client.

Importing the Kubernetes client costs about a second and tens of megabytes; on a fresh node nothing
listens at the API server endpoint yet, so a refused connect (microseconds) answers the question
the client would have answered far later. Only what is certain is reported as unreachable: when the
kubeconfig cannot be read, or the client would go through a proxy (the kubeconfig's ``proxy-url``, or
a ``*_proxy`` environment variable that ``no_proxy`` does not exempt the server from, as the client
reads them), :func:`server_address` gives up and the caller asks the client as before.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from bootstrap.cluster.apierror import ApiError
from bootstrap.cluster.client import current_cluster

# Short next to the client's own connect timeout: a connect on the node or its network answers in
# milliseconds; only a black-holed address waits this long, and then the API is not usable anyway.
PROBE_TIMEOUT = 0.5
_DEFAULT_PORTS = {"https": 443, "http": 80}


def _environment_proxies() -> dict[str, str]:
    """``{scheme: proxy}`` from the ``<scheme>_proxy`` variables (``no`` too), as urllib reads them: a
    lower-case variable wins over its upper-case twin, even when empty."""
    variables = {name.lower(): value for name, value in os.environ.items() if name != name.lower()}
    variables.update((name, value) for name, value in os.environ.items() if name == name.lower())
    return {
        name.removesuffix("_proxy"): value
        for name, value in variables.items()
        if name.endswith("_proxy") and value
    }


def _exempt(host: str, netloc: str, no_proxy: str) -> bool:
    """``host`` (or ``netloc``, host and port as the URL spells them) matches a ``no_proxy`` entry:
    ``*``, a name or domain suffix, an IP or CIDR."""
    host, netloc = host.lower(), netloc.lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        if ip is not None:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
        entry = entry.lstrip(".")
        if any(name == entry or name.endswith(f".{entry}") for name in (host, netloc)):
            return True
    return False


def _through_proxy(scheme: str, host: str, netloc: str) -> bool:
    proxies = _environment_proxies()
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    return not _exempt(host, netloc, proxies.get("no", ""))


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
    try:  # the cluster the client would pick, by the client's own rules
        cluster = current_cluster(kubeconfig, data)
    except ApiError:
        return None
    if cluster.get("proxy-url"):  # through a proxy, the endpoint is not ours to dial
        return None
    server = cluster.get("server")
    if not isinstance(server, str):
        return None
    try:
        url = urlsplit(server)
        port = url.port or _DEFAULT_PORTS.get(url.scheme)
    except ValueError:  # a port out of range or not a number
        return None
    if not url.hostname or port is None or _through_proxy(url.scheme, url.hostname, url.netloc):
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
