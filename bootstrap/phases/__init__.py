"""The phase trees: PHASES behind ``bootstrap init`` and ``bootstrap init phase``, JOIN_PHASES behind
``bootstrap join`` and ``bootstrap join phase``; order and names follow kubeadm (v1.34, with
ControlPlaneKubeletLocalMode for join).

Join reuses init's phases where kubeadm's join does the same work: the leaf certificates, the
kubeconfigs, the manifests, mark-control-plane and the wait run against join's run data, whose config
is built from the cluster's settings. On a worker every control-plane phase is skipped with a reason.
A dry run without the cluster runs them all against join's stand-in cluster, and every outcome after
preflight says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from bootstrap.phases.addon import ADDON
from bootstrap.phases.certs import CERTS
from bootstrap.phases.download_certs import DOWNLOAD_CERTS
from bootstrap.phases.etcd_join import ETCD_JOIN
from bootstrap.phases.join_kubelet import KUBELET_START as JOIN_KUBELET_START
from bootstrap.phases.join_kubelet import KUBELET_WAIT_BOOTSTRAP
from bootstrap.phases.join_preflight import cluster_checks, worker_checks
from bootstrap.phases.kubeconfig import KUBECONFIG
from bootstrap.phases.kubelet_finalize import KUBELET_FINALIZE
from bootstrap.phases.kubelet_start import KUBELET_START
from bootstrap.phases.manifests import MANIFESTS
from bootstrap.phases.postinit import BOOTSTRAP_TOKEN, MARK_CONTROL_PLANE, SHOW_JOIN_COMMAND, UPLOAD_CONFIG
from bootstrap.phases.preflight import PREFLIGHT
from bootstrap.phases.upload_certs import UPLOAD_CERTS
from bootstrap.phases.wait_control_plane import WAIT_CONTROL_PLANE
from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase, PhaseCondition

if TYPE_CHECKING:
    from bootstrap.workflow.rundata import RunData


PHASES: tuple[Phase, ...] = (
    PREFLIGHT,
    CERTS,
    KUBECONFIG,
    MANIFESTS,
    KUBELET_START,
    WAIT_CONTROL_PLANE,
    UPLOAD_CONFIG,
    UPLOAD_CERTS,
    MARK_CONTROL_PLANE,
    BOOTSTRAP_TOKEN,
    KUBELET_FINALIZE,
    ADDON,
    SHOW_JOIN_COMMAND,
)

# The certificate authorities and the service-account key come from the cluster (download-certs);
# a joining node must never make its own.
_SHARED_CERTS = frozenset({"ca", "front-proxy-ca", "etcd-ca", "sa"})
# kubeadm's join writes these kubeconfigs; super-admin.conf stays on the first node, and the
# kubelet's comes from its TLS bootstrap.
_JOIN_KUBECONFIGS = ("admin", "controller-manager", "scheduler")
_JOIN_MANIFESTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def _worker_reason(rd: RunData) -> str | None:
    from bootstrap.workflow.joindata import join_data

    if not join_data(rd).control_plane:
        return "worker node: no control-plane component here"
    return None


def _control_plane_only(phase: Phase) -> Phase:
    """``phase`` (and its subtree) skipped with a reason on a worker, else as it was."""
    own: PhaseCondition | None = phase.skip_if

    def skip_if(rd: RunData) -> str | None:
        return _worker_reason(rd) or (own(rd) if own is not None else None)

    return dataclasses.replace(
        phase,
        skip_if=skip_if if phase.run is not None else None,
        children=tuple(_control_plane_only(c) for c in phase.children),
    )


def _noting_stand_in(phase: Phase) -> Phase:
    """``phase`` (and its subtree) with each outcome's first line saying when it rests on a stand-in."""
    own = phase.run

    def run(rd: RunData) -> list[Outcome]:
        from bootstrap.workflow.joindata import join_data

        assert own is not None
        outcomes = own(rd)
        note = join_data(rd).stand_in_note
        if note is None:
            return outcomes
        noted = []
        for outcome in outcomes:
            first, newline, rest = outcome.message.partition("\n")
            noted.append(dataclasses.replace(outcome, message=f"{first} ({note}){newline}{rest}"))
        return noted

    return dataclasses.replace(
        phase,
        run=run if own is not None else None,
        children=tuple(_noting_stand_in(c) for c in phase.children),
    )


def _children(
    phase: Phase, names: Iterable[str] | None = None, *, leave_out: Iterable[str] = ()
) -> tuple[Phase, ...]:
    by_name = {c.name: c for c in phase.children}
    chosen = [by_name[n] for n in names] if names is not None else list(phase.children)
    return tuple(c for c in chosen if c.name not in set(leave_out))


def _join_preflight(node_checks: Callable[[RunData], list[Outcome]]) -> Callable[[RunData], list[Outcome]]:
    def run(rd: RunData) -> list[Outcome]:
        # Past a cluster problem only in a dry run (a real run raised): the node is still checked,
        # with the planned settings when the cluster's are out of reach.
        return cluster_checks(rd) + node_checks(rd)

    return run


def _node_checks(rd: RunData) -> list[Outcome]:
    from bootstrap.workflow.joindata import join_data

    if join_data(rd).control_plane:
        assert PREFLIGHT.run is not None
        return PREFLIGHT.run(rd)  # init's checks: the control plane's ports, files and etcd data dir
    from bootstrap.workflow.checking import run_checks

    return run_checks(rd, worker_checks(rd))


JOIN_PREFLIGHT = Phase(name="preflight", help="Run join pre-flight checks", run=_join_preflight(_node_checks))
CONTROL_PLANE_PREPARE = _control_plane_only(
    Phase(
        name="control-plane-prepare",
        help="Prepare the machine for serving a control plane",
        children=(
            DOWNLOAD_CERTS,
            dataclasses.replace(CERTS, children=_children(CERTS, leave_out=_SHARED_CERTS)),
            dataclasses.replace(KUBECONFIG, children=_children(KUBECONFIG, _JOIN_KUBECONFIGS)),
            Phase(
                name="control-plane",
                help="Generate the manifests for the new control plane components",
                children=_children(MANIFESTS, _JOIN_MANIFESTS),
            ),
        ),
    )
)
CONTROL_PLANE_JOIN = _control_plane_only(
    Phase(
        name="control-plane-join",
        help="Join a machine as a control plane instance",
        children=(MARK_CONTROL_PLANE,),
    )
)

JOIN_PHASES: tuple[Phase, ...] = (
    JOIN_PREFLIGHT,
    _noting_stand_in(CONTROL_PLANE_PREPARE),
    _noting_stand_in(JOIN_KUBELET_START),
    _noting_stand_in(_control_plane_only(ETCD_JOIN)),
    KUBELET_WAIT_BOOTSTRAP,
    _noting_stand_in(CONTROL_PLANE_JOIN),
    _noting_stand_in(_control_plane_only(WAIT_CONTROL_PLANE)),
)
