"""Adapter for join's ``etcd-join`` phase: this control-plane node's member of the stacked etcd cluster.

As kubeadm: the members' client URLs come from the etcd mirror pods' annotation (through the fresh
admin.conf), the node is added as a **learner** with its peer URL ``https://<advertiseAddress>:2380``,
its etcd manifest is written with ``--initial-cluster`` from the member list and
``--initial-cluster-state=existing``, and once the local member answers it is promoted. Better than
kubeadm: a peer certificate without this node's address is refused before anything is added; a
learner this run added that does not start or cannot be promoted is removed again, with the cause
(:mod:`bootstrap.etcd.learner`); a second join waits for a first one's learner, bounded; a re-run
finds the member and changes nothing. Timeout: ``timeouts.etcdAPICall`` (2m).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase

if TYPE_CHECKING:
    from pathlib import Path

    from bootstrap.components.flags import Flag
    from bootstrap.workflow.rundata import RunData

PEER_PORT = 2380
LOCAL_CLIENT = "https://127.0.0.1:2379"


def _url(address: str, port: int) -> str:
    return f"https://[{address}]:{port}" if ":" in address else f"https://{address}:{port}"


def _local_endpoint(flags: list[Flag]) -> str:
    """The loopback client URL the rendered etcd listens on (kubeadm's https://127.0.0.1:2379)."""
    from bootstrap.components.flags import flag_value

    urls = [u.strip() for u in (flag_value(flags, "listen-client-urls") or "").split(",") if u.strip()]
    loopback = [u for u in urls if urlsplit(u).hostname in ("127.0.0.1", "::1", "localhost")]
    return (loopback or urls or [LOCAL_CLIENT])[0]


def peer_cert_problem(peer_cert: Path, address: str) -> str | None:
    """Why etcd's peer certificate would be refused by the other members (its IP SANs lack ``address``)."""
    import ipaddress

    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(peer_cert.read_bytes())
    except (OSError, ValueError) as exc:
        return (
            f"etcd's peer certificate {peer_cert} is unusable ({exc}): run "
            '"bootstrap join phase control-plane-prepare/certs/etcd-peer"'
        )
    try:
        wanted = ipaddress.ip_address(address)
    except ValueError:
        return None
    try:
        ips = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.IPAddress
        )
    except x509.ExtensionNotFound:
        ips = []
    if wanted in ips:
        return None
    return (
        f"etcd's peer certificate {peer_cert} does not carry this node's address {address}, so the other "
        "members would refuse its peer connections: delete it and etcd/peer.key, then run "
        '"bootstrap join phase control-plane-prepare/certs/etcd-peer" with this node\'s '
        "--apiserver-advertise-address; no etcd member was added"
    )


def _run(rd: RunData) -> list[Outcome]:
    from bootstrap.cluster.client import admin_api
    from bootstrap.cluster.joining import etcd_client_urls
    from bootstrap.components.annotations import keep_generation
    from bootstrap.components.pods import EtcdJoin
    from bootstrap.components.render import render
    from bootstrap.components.write import write_manifest
    from bootstrap.errors import PhaseError
    from bootstrap.etcd.learner import (
        add_learner,
        diagnose_local_member,
        existing_etcd_flags,
        initial_cluster_to_render,
        promote_learner,
    )
    from bootstrap.etcd.members import EtcdClient, EtcdTLS
    from bootstrap.host.fs import announce
    from bootstrap.wait.status import Freshness
    from bootstrap.workflow.joindata import join_data
    from bootstrap.workflow.rundata import host_view

    jd = join_data(rd)
    cfg = rd.config
    name, address = cfg.node_name, cfg.advertise_address
    peer_url = _url(address, PEER_PORT)
    if rd.dry_run:
        return _plan(rd, name, peer_url)
    problem = peer_cert_problem(rd.cert_dir / "etcd" / "peer.crt", address)
    if problem:
        raise PhaseError(problem)
    timeout = jd.join_config.join.timeouts.etcd_api_call.total_seconds()
    api = admin_api(rd.kubernetes_dir)
    try:
        endpoints = etcd_client_urls(api, timeout)
    finally:
        api.close()
    client = EtcdClient(endpoints, EtcdTLS.healthcheck(rd.cert_dir))
    local = cfg.cluster.etcd.local
    assert local is not None  # the phase is skipped with external etcd
    data = rd.host_path(local.data_dir)
    data_was_empty = not data.exists() or not any(data.iterdir())

    outcomes = []
    learner = add_learner(client, name, peer_url, timeout)
    if learner.added_now:
        outcomes.append(Outcome(True, f"Added {name} ({peer_url}) to etcd as learner {learner.hex_id}"))
    else:
        state = "a voting member" if learner.voting else "a learner"
        outcomes.append(Outcome(False, f"{name} ({peer_url}) is {state} of etcd already ({learner.hex_id})"))

    manifest_path = rd.manifest_dir / "etcd.yaml"
    initial = initial_cluster_to_render(existing_etcd_flags(manifest_path), learner)
    manifest = keep_generation(manifest_path, render("etcd", cfg, host_view(rd), etcd_join=EtcdJoin(initial)))
    if data_was_empty:
        announce(data, "etcd-data")  # etcd writes it, but it is this join's: reset removes it
    if not manifest_path.exists() or manifest_path.read_text() != manifest.text:
        rd.manifest_writes["etcd"] = Freshness(rd.observe_mirror_hash("etcd"), datetime.now(UTC))
    outcomes.append(write_manifest(rd.manifest_dir, manifest))

    local_endpoint = _local_endpoint(manifest.flags)

    def diagnose() -> str | None:
        return diagnose_local_member(
            client,
            learner.member_id,
            peer_url=peer_url,
            local_endpoint=local_endpoint,
            peer_cert=rd.cert_dir / "etcd" / "peer.crt",
            data_dir=local.data_dir,
            data_dir_was_empty=data_was_empty,
        )

    if not learner.voting:
        promote_learner(client, learner, local_endpoint, timeout, diagnose=diagnose)
        outcomes.append(Outcome(True, f"Promoted etcd member {learner.hex_id} ({name}) to a voting member"))
    return outcomes


def _plan(rd: RunData, name: str, peer_url: str) -> list[Outcome]:
    """A dry run adds no member: it reads the member list (when it can), and writes the manifest the
    real run would start with into the dry-run directory, so the plan shows it and the wait finds it."""
    from bootstrap.cluster.client import ApiError, admin_api
    from bootstrap.cluster.joining import etcd_client_urls
    from bootstrap.components.annotations import keep_generation
    from bootstrap.components.pods import EtcdJoin
    from bootstrap.components.render import render
    from bootstrap.components.write import write_manifest
    from bootstrap.errors import BootstrapError
    from bootstrap.etcd.learner import initial_cluster
    from bootstrap.etcd.members import EtcdClient, EtcdTLS
    from bootstrap.workflow.joindata import join_data
    from bootstrap.workflow.rundata import host_view

    try:
        if join_data(rd).credentials_stand_in:
            # admin.conf and the healthcheck client are signed by a stand-in CA: never sent anywhere.
            raise BootstrapError("not asked with this dry run's stand-in credentials")
        api = admin_api(rd.kubernetes_dir)
        try:
            endpoints = etcd_client_urls(api, timeout=5)
        finally:
            api.close()
        members = EtcdClient(endpoints, EtcdTLS.healthcheck(rd.cert_dir)).members()
        cluster, source = initial_cluster(members, name, peer_url), "the live member list"
    except (ApiError, BootstrapError) as exc:
        cluster, source = f"{name}={peer_url}", f"this member only: the member list is out of reach ({exc})"
    rendered = render("etcd", rd.config, host_view(rd), etcd_join=EtcdJoin(cluster))
    written = write_manifest(rd.manifest_dir, keep_generation(rd.manifest_dir / "etcd.yaml", rendered))
    plan = (
        f"Dry run: would add {name} ({peer_url}) to etcd as a learner and promote it; "
        f"--initial-cluster from {source}"
    )
    return [Outcome(written.changed, plan, written.files)]


def _external(rd: RunData) -> str | None:
    return "external etcd: no local etcd member" if rd.config.external_etcd else None


ETCD_JOIN = Phase(
    name="etcd-join",
    help="Add this node to etcd as a learner, write its etcd manifest, and promote it once it runs",
    run=_run,
    skip_if=_external,
)
