"""Adapters for join's ``kubelet-start`` and ``kubelet-wait-bootstrap`` phases.

kubelet-start writes what the kubelet needs to join: ``bootstrap-kubelet.conf`` (the server from
cluster-info, or for a control-plane node its own API server, as kubeadm's ControlPlaneKubeletLocalMode;
the CA; the TLS bootstrap token), the cluster CA when it is not there yet, the kubelet config (the
cluster's ``kubelet-config`` with this node's KubeletConfiguration merged over it) and the flags file,
then restarts the kubelet. The kubelet itself obtains its client certificate and writes
``kubelet.conf``; kubelet-wait-bootstrap waits for that file to authenticate as this node, then
removes the bootstrap kubeconfig, as kubeadm does.

A node that joined already (its kubelet.conf authenticates as the node) needs no bootstrap
kubeconfig: a re-run writes none, so it changes nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase

if TYPE_CHECKING:
    from bootstrap.workflow.rundata import RunData

POLL_INTERVAL = 1.0


def _url(address: str, port: int) -> str:
    return f"https://[{address}]:{port}" if ":" in address else f"https://{address}:{port}"


def _kubelet_start(rd: RunData) -> list[Outcome]:
    import socket

    import yaml

    from bootstrap.cluster.joining import bootstrap_kubeconfig
    from bootstrap.host import kubelet
    from bootstrap.host.kubelet_config import kubelet_settings
    from bootstrap.workflow.joindata import BOOTSTRAP_KUBELET_CONF, join_data

    jd = join_data(rd)
    found = jd.discovered  # a dry run without the cluster: its stand-in (the tree notes it)
    cfg = jd.config
    outcomes = []
    files: list[tuple[str, bytes, int]] = []
    if jd.joined_already():
        outcomes.append(
            Outcome(False, f"kubelet.conf authenticates as node {jd.node_name}: no TLS bootstrap")
        )
    else:
        server = found.server
        if jd.control_plane:
            server = _url(cfg.advertise_address, cfg.bind_port)
        text = bootstrap_kubeconfig(server, found.ca_pem, jd.tls_bootstrap_token)
        files.append((BOOTSTRAP_KUBELET_CONF, text.encode(), 0o600))
    ca_path = jd.join_config.join.ca_cert_path
    if not rd.host_path(ca_path).exists():
        files.append((ca_path, found.ca_pem, 0o644))
    settings = kubelet_settings(cfg, rd.static_pod_path)
    for warning in settings.warnings:
        rd.reporter.warn(warning)
    files.append((kubelet.KUBELET_CONFIG, yaml.safe_dump(settings.document, sort_keys=True).encode(), 0o644))
    files.append((kubelet.KUBELET_FLAGS_ENV, kubelet.flags_env(cfg, socket.gethostname()).encode(), 0o644))
    written = [(host_path, rd.host_path(host_path), data, mode) for host_path, data, mode in files]
    return outcomes + kubelet.write_kubelet_files(written, rd.service_manager)


def _wait_bootstrap(rd: RunData) -> list[Outcome]:
    from bootstrap.cluster.client import ApiError
    from bootstrap.cluster.joining import node_identity
    from bootstrap.errors import WaitTimeoutError
    from bootstrap.host.fs import announce
    from bootstrap.host.kubelet import KUBELET_CONF
    from bootstrap.workflow.joindata import BOOTSTRAP_KUBELET_CONF, join_data

    jd = join_data(rd)
    timeout = jd.join_config.join.timeouts.tls_bootstrap.total_seconds()
    if rd.dry_run:
        return [
            Outcome(
                False, f"Dry run: would wait up to {timeout:.0f}s for the kubelet to write {KUBELET_CONF}"
            )
        ]
    deadline = time.monotonic() + timeout
    last: ApiError | None = None
    while True:
        try:
            api = jd.kubelet_api()
            try:
                node_identity(api, jd.node_name)
            finally:
                api.close()
            break
        except ApiError as exc:
            if last is None or str(last) != str(exc):
                rd.reporter.debug(f"waiting for the TLS bootstrap: {exc}")
            last = exc
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(
                f"the kubelet did not complete its TLS bootstrap within {timeout:.0f}s ({last}): check that "
                "it runs and can reach the API server (journalctl -u kubelet), and that the bootstrap token "
                "is still valid (timeouts.tlsBootstrap sets this wait)"
            )
        time.sleep(POLL_INTERVAL)
    # The kubelet wrote it because this run asked: reset removes it with the rest of the join.
    announce(rd.real_fs.path(KUBELET_CONF), "file")
    outcomes = [Outcome(False, f"{KUBELET_CONF} authenticates as system:node:{jd.node_name}")]
    bootstrap = rd.host_path(BOOTSTRAP_KUBELET_CONF)
    if bootstrap.exists():
        bootstrap.unlink()
        outcomes.append(Outcome(True, f'Removed "{BOOTSTRAP_KUBELET_CONF}": the TLS bootstrap is done'))
    return outcomes


KUBELET_START = Phase(
    name="kubelet-start",
    help="Write the kubelet's bootstrap kubeconfig, config and flags, then (re)start the kubelet",
    run=_kubelet_start,
)
KUBELET_WAIT_BOOTSTRAP = Phase(
    name="kubelet-wait-bootstrap",
    help="Wait for the kubelet's TLS bootstrap (kubelet.conf), then remove the bootstrap kubeconfig",
    run=_wait_bootstrap,
)
