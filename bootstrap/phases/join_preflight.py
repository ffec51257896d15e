"""Adapter for join's ``preflight`` phase: discovery, the cluster's answers, then this node's checks.

Discovery happens here, where kubeadm does it (when first needed, before anything is written), so
a wrong CA hash, an unknown token or an unreachable endpoint stops the run with nothing on disk. The
cluster checks follow: a Ready Node with this name is another machine unless this machine's own
kubelet.conf authenticates as it (then the run converges); a control-plane join needs the cluster's
controlPlaneEndpoint and the shared certificates (downloaded with ``--certificate-key`` and checked
here, so a wrong key also stops the run before any write, or already on disk). The node checks of a
worker are the ones that concern a kubelet; a control-plane node gets init's (see the tree).

A dry run goes past what would stop a real run here, saying so: without the cluster the node checks
run with the planned settings, and without usable shared certificates the plan continues with
stand-in ones (the run data decides both).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from bootstrap.results import Outcome
from bootstrap.workflow.checking import DRY_RUN_PREFIX, kubelet_binary_check

if TYPE_CHECKING:
    from bootstrap.host import preflight_checks
    from bootstrap.workflow.joindata import JoinRunData
    from bootstrap.workflow.rundata import RunData

NO_ENDPOINT = (
    "unable to add a new control plane instance to a cluster that doesn't have a stable "
    "controlPlaneEndpoint address: set ClusterConfiguration.controlPlaneEndpoint (a load balancer's "
    "address) when the cluster is made; join this node as a worker, without --control-plane"
)


def cluster_checks(rd: RunData) -> list[Outcome]:
    """Discovery and what the cluster must say before this node may join it."""
    from bootstrap.cluster.discovery import ca_cert_hashes
    from bootstrap.cluster.joining import ready_node
    from bootstrap.errors import PreflightError
    from bootstrap.workflow.joindata import join_data

    jd = join_data(rd)
    found = jd.discovered
    cfg = jd.config
    if not jd.cluster_reachable():
        reason = f"the cluster is out of reach ({jd.cluster_problem})"
        rd.reporter.warn(DRY_RUN_PREFIX + reason)
        return [Outcome(False, f"Discovery: {reason}", [], None, reason)]
    outcomes = [
        Outcome(
            False,
            f"Discovered the cluster at {found.server}",
            [],
            {"discovery": {"server": found.server, "caCertHashes": ca_cert_hashes(found.ca_pem)}},
        )
    ]
    problems: list[str] = []
    if jd.control_plane and not cfg.cluster.control_plane_endpoint:
        problems.append(NO_ENDPOINT)
    name = jd.node_name
    if ready_node(jd.token_api, name) is not None:
        if jd.joined_already():
            outcomes.append(Outcome(False, f"This machine is node {name} already: converging"))
        else:
            problems.append(
                f"a Node named {name!r} already exists in the cluster and is Ready, and this machine is not "
                "it: give this node another name (--node-name), or remove the other one first "
                f"(kubectl delete node {name})"
            )
    if jd.control_plane and not problems:
        outcomes.append(_shared_certificates(jd))
    if problems:
        if not rd.dry_run:
            raise PreflightError("; ".join(problems))
        for problem in problems:
            rd.reporter.warn(DRY_RUN_PREFIX + problem)
        return [*outcomes, Outcome(False, problems[0], [], None, problems[0])]
    return outcomes


def _shared_certificates(jd: JoinRunData) -> Outcome:
    from bootstrap.errors import PreflightError

    if jd.join_config.join.control_plane and jd.join_config.join.control_plane.certificate_key:
        opened = jd.shared_certs
        problem = jd.shared_certs_problem
        if problem is not None:  # a dry run: the run data warned, and stands in for the files
            return Outcome(False, f"Shared certificates: {problem}", [], None, problem)
        return Outcome(False, f"The certificate key opens the {len(opened)} uploaded certificate files")
    missing = [str(p) for p in jd.shared_cert_paths().values() if not p.exists()]
    if missing:
        from bootstrap.cluster.joining import UPLOAD_CERTS_COMMAND

        raise PreflightError(
            f"no --certificate-key, and the shared certificates are not on this node ({', '.join(missing)}): "
            f'run "{UPLOAD_CERTS_COMMAND}" on a control-plane node and join with --certificate-key and the '
            "key it prints, or copy those files here"
        )
    return Outcome(False, "The shared certificates are on this node already")


def worker_checks(rd: RunData) -> list[preflight_checks.Check]:
    """The node checks that concern a worker: the user, swap, the kubelet and the container runtime."""
    from bootstrap.host import preflight_checks

    registration = rd.config.init.node_registration
    return [
        preflight_checks.Check("IsPrivilegedUser", preflight_checks.privileged_user),
        preflight_checks.Check(
            "Swap", partial(preflight_checks.swap, preflight_checks.fails_on_swap(rd.config.kubelet))
        ),
        kubelet_binary_check(rd),
        preflight_checks.Check(
            "CRI", partial(preflight_checks.cri_socket, registration.cri_socket, rd.real_fs.path)
        ),
    ]
