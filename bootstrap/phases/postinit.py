"""Adapters for the phases after the control plane is up: upload-config, mark-control-plane,
bootstrap-token and show-join-command. They talk to the API only through ``rd.applier`` (a
dry-run applier records instead), and are idempotent: create or update, never fail on "exists".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase

if TYPE_CHECKING:
    from bootstrap.workflow.rundata import RunData


def _apply_all(rd: RunData, objects: list[dict[str, Any]]) -> list[Outcome]:
    return [rd.applier.apply(obj) for obj in objects]


def _upload_kubeadm(rd: RunData) -> list[Outcome]:
    from bootstrap.cluster.objects import cluster_admins_binding, upload_kubeadm_config
    from bootstrap.config import dump_cluster_configuration

    objects = [cluster_admins_binding(), *upload_kubeadm_config(dump_cluster_configuration(rd.config))]
    return _apply_all(rd, objects)


def _upload_kubelet(rd: RunData) -> list[Outcome]:
    from bootstrap.cluster.objects import upload_kubelet_config
    from bootstrap.errors import PhaseError
    from bootstrap.host.kubelet import KUBELET_CONFIG

    path = rd.host_path(KUBELET_CONFIG)
    if not path.exists():
        raise PhaseError(f'{path}: no kubelet config to upload; run "bootstrap phase kubelet-start" first')
    return _apply_all(rd, upload_kubelet_config(path.read_text()))


def _mark_control_plane(rd: RunData) -> list[Outcome]:
    from bootstrap.cluster.objects import CONTROL_PLANE_LABELS, control_plane_taints

    taints = control_plane_taints(rd.config.init.node_registration.taints)
    return [rd.applier.label_and_taint_node(rd.config.node_name, dict(CONTROL_PLANE_LABELS), taints)]


def _bootstrap_token(rd: RunData) -> list[Outcome]:
    from cryptography.hazmat.primitives.serialization import Encoding

    from bootstrap.cluster import objects
    from bootstrap.pki import load_ca
    from bootstrap.pki.kubeconfig_files import endpoints_for

    cfg = rd.config
    outcomes = []
    # The config loader always yields at least one token spec (token None: generate one).
    for spec in cfg.init.bootstrap_tokens:
        existing = rd.applier.list_objects("Secret", "kube-system", objects.MANAGED_BY_SELECTOR)
        token, expiration = objects.choose_token(existing, spec.token, rd.started, rd.bootstrap_tokens)
        if expiration is None:
            expiration = spec.expires or objects.expiration_for(spec.ttl, rd.started)
        description = spec.description or objects.TOKEN_DESCRIPTION
        secret = objects.token_secret(token, expiration, list(spec.usages), list(spec.groups), description)
        outcome = rd.applier.apply(secret)
        outcomes.append(Outcome(outcome.changed, outcome.message + f" (token {objects.redact(token)})"))
        rd.bootstrap_tokens.append(token)
    outcomes += _apply_all(rd, objects.bootstrap_token_rbac())
    endpoints = endpoints_for(cfg.advertise_address, cfg.bind_port, cfg.cluster.control_plane_endpoint)
    ca_pem = load_ca(rd.cert_dir).cert.public_bytes(Encoding.PEM)
    outcomes += _apply_all(rd, objects.cluster_info(ca_pem, endpoints.cluster))
    return outcomes


def _show_join_command(rd: RunData) -> list[Outcome]:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from bootstrap.cluster import objects
    from bootstrap.cluster.join_command import JoinCommand
    from bootstrap.pki import load_ca
    from bootstrap.pki.kubeconfig_files import endpoints_for

    cfg = rd.config
    spki = (
        load_ca(rd.cert_dir).cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    ca_hash = objects.ca_cert_hash(spki)
    endpoint = endpoints_for(cfg.advertise_address, cfg.bind_port, cfg.cluster.control_plane_endpoint)
    target = endpoint.cluster.removeprefix("https://")
    tokens = rd.bootstrap_tokens or [t.token for t in cfg.init.bootstrap_tokens if t.token]
    token = tokens[0] if tokens else "<token>"
    if not tokens:
        rd.reporter.warn('no bootstrap token known to this run: run "bootstrap phase bootstrap-token" first')
    join = JoinCommand(target, token, ca_hash, rd.certificate_key, bool(cfg.cluster.control_plane_endpoint))
    # The token and the certificate key are credentials: they go to the terminal for the person who
    # asked, and into the JSON document only as the explicit fields below; never into a message.
    if rd.reveal_join_token:
        text, rd.certificate_key_shown = join.text(
            rd.options.skip_token_print, rd.options.skip_certificate_key_print
        )
        rd.reporter.text(
            "Your Kubernetes control plane has initialized successfully!\n\n"
            "To use the cluster as an administrator:\n"
            f"  export KUBECONFIG={rd.kubernetes_dir / 'admin.conf'}\n\n{text}"
        )
    redacted = join.worker(objects.redact(token))
    real = not rd.dry_run and bool(tokens)
    details = {
        "joinCommand": redacted,
        "controlPlaneJoinCommand": join.control_plane_redacted(objects.redact(token)),
        "caCertHash": ca_hash,
        "caCertHashes": [ca_hash],
        "endpoint": target,
        "token": token if real and not rd.options.skip_token_print else None,
        "certificateKey": None if rd.options.skip_certificate_key_print else rd.certificate_key,
    }
    return [Outcome(False, f"Join command: {redacted}", [], details)]


UPLOAD_CONFIG = Phase(
    name="upload-config",
    help="Upload the kubeadm and kubelet configuration to ConfigMaps",
    children=(
        Phase(
            "kubeadm", "Upload the ClusterConfiguration to the kubeadm-config ConfigMap", run=_upload_kubeadm
        ),
        Phase(
            "kubelet", "Upload the kubelet configuration to the kubelet-config ConfigMap", run=_upload_kubelet
        ),
    ),
)
MARK_CONTROL_PLANE = Phase(
    name="mark-control-plane", help="Mark a node as a control-plane", run=_mark_control_plane
)
BOOTSTRAP_TOKEN = Phase(
    name="bootstrap-token",
    help="Generate bootstrap tokens used to join a node to a cluster, with their RBAC and cluster-info",
    run=_bootstrap_token,
)
SHOW_JOIN_COMMAND = Phase(
    name="show-join-command",
    help="Show the join commands for worker and control-plane nodes",
    run=_show_join_command,
)
