"""What a mirror pod looked like before we replaced its manifest, for the wait to tell old from new.

Best effort: a node without an API server, an unusable admin.conf or a failing call means "nothing
observed", never an error of the phase that asks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def mirror_pod_hash(
    admin_conf: Path, component: str, node_name: str, debug: Callable[[str], None]
) -> str | None:
    """The config.hash annotation of ``component``'s mirror pod on ``node_name`` (None when there is
    none, or the API is not reachable with ``admin_conf``). An endpoint no TCP connect reaches is not
    asked through the client (see :mod:`bootstrap.cluster.probe`); ``debug`` hears why nothing was seen."""
    if not admin_conf.exists():
        return None
    from bootstrap.cluster.probe import listening, server_address

    address = server_address(admin_conf)
    if address is not None and not listening(address):
        # A fresh node: nothing to observe, and the client import would cost a second.
        host, port = address
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        debug(f"mirror pod of {component} not observed: nothing listens at {where}")
        return None
    from bootstrap.cluster.client import ApiError, admin_api
    from bootstrap.wait.status import HASH_ANNOTATION

    try:
        api = admin_api(admin_conf.parent)
    except ApiError as exc:  # an unusable admin.conf or client must not stop the manifests phase
        debug(f"cannot build an API client from {admin_conf}: {exc}")
        return None
    try:
        pod = api.get_pod("kube-system", f"{component}-{node_name.lower()}")
    except ApiError as exc:
        debug(f"mirror pod of {component} not observed before the write: {exc}")
        return None
    finally:
        api.close()
    annotations = (pod or {}).get("metadata", {}).get("annotations") or {}
    value = annotations.get(HASH_ANNOTATION)
    return str(value) if value else None
