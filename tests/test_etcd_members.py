"""Stacked etcd membership against real etcd members on loopback: list, learner add and promote, the
re-run, one learner at a time, a learner that never starts, leaving on reset, and verified TLS.

Each test builds its own small cluster (certificates from our PKI code, see ``tests/etcd_cluster.py``)
and kills every etcd it started, whatever happens.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.components.podfile import pod_flags
from bootstrap.components.pods import EtcdJoin, HostView
from bootstrap.components.render import render
from bootstrap.config import HostFacts, load_config
from bootstrap.etcd.learner import (
    AddedLearner,
    add_learner,
    diagnose_local_member,
    existing_etcd_flags,
    initial_cluster,
    initial_cluster_to_render,
    promote_learner,
)
from bootstrap.etcd.leave import leave_cluster, leave_endpoints
from bootstrap.etcd.members import EtcdClient, EtcdError, EtcdTLS, Member, Reason, parse_id
from tests.etcd_cluster import LocalCluster, Node, issue_ca, issue_member_certs


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path)
    try:
        yield local
    finally:
        local.close()


class CountingSleep:
    """A real sleep that counts its calls, to see that a call was retried."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, seconds: float) -> None:
        self.calls += 1
        time.sleep(seconds)


def client_of(*nodes: Node) -> EtcdClient:
    return EtcdClient([n.client_url for n in nodes], nodes[0].tls)


def join(cluster: LocalCluster, client: EtcdClient, node: Node, timeout: float = 20.0) -> AddedLearner:
    """The whole join of ``node``: add as learner, start with the computed cluster, promote."""
    learner = add_learner(client, node.name, node.peer_url, timeout)
    cluster.start(node, learner.initial_cluster, "existing")
    promote_learner(client, learner, node.client_url, timeout, diagnose=lambda: None)
    return learner


def voting(client: EtcdClient) -> dict[str, bool]:
    return {m.name or m.hex_id: not m.is_learner for m in client.members()}


# ---- pure rules ---------------------------------------------------------------------------------------


def test_member_ids_are_uint64_decimal_strings_beyond_float_precision() -> None:
    assert parse_id("18446744073709551615") == 2**64 - 1
    assert parse_id("13668033151171901709") == 13668033151171901709
    for bad in ("", "-1", "0x12", None, 1.5, "18446744073709551616"):
        with pytest.raises(EtcdError):
            parse_id(bad)


def test_initial_cluster_names_the_new_member_and_unstarted_ones_by_hex_id() -> None:
    members = [
        Member(0x2B, "cp2", ("https://10.0.0.2:2380",), ("https://10.0.0.2:2379",), False),
        Member(0xA1, "", ("https://10.0.0.3:2380",), (), True),  # this node, not started yet
        Member(0x1F, "", ("https://10.0.0.4:2380",), (), True),  # someone else's unstarted learner
        Member(0x11, "cp1", ("https://10.0.0.1:2380",), ("https://10.0.0.1:2379",), False),
    ]
    assert initial_cluster(members, "cp3", "https://10.0.0.3:2380") == (
        "1f=https://10.0.0.4:2380,cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380,cp3=https://10.0.0.3:2380"
    )
    assert initial_cluster(reversed(members), "cp3", "https://10.0.0.3:2380") == initial_cluster(
        members, "cp3", "https://10.0.0.3:2380"
    )


def test_a_rerun_keeps_the_initial_cluster_already_written_once_the_member_votes() -> None:
    written = {
        "initial-cluster": "cp1=https://a:2380,cp2=https://b:2380",
        "initial-cluster-state": "existing",
    }
    grown = "cp1=https://a:2380,cp2=https://b:2380,cp3=https://c:2380"
    assert (
        initial_cluster_to_render(written, AddedLearner(1, grown, False, True)) == written["initial-cluster"]
    )
    # still a learner, freshly added, or a manifest of a new cluster: the member list decides
    assert initial_cluster_to_render(written, AddedLearner(1, grown, False, False)) == grown
    assert initial_cluster_to_render(written, AddedLearner(1, grown, True, False)) == grown
    new = {**written, "initial-cluster-state": "new"}
    assert initial_cluster_to_render(new, AddedLearner(1, grown, False, True)) == grown
    assert initial_cluster_to_render(None, AddedLearner(1, grown, False, True)) == grown


def test_a_joining_members_manifest_carries_the_cluster_and_existing_state(tmp_path: Path) -> None:
    import kubernetes_validate

    cfg = load_config(
        None,
        {"node-name": "cp2", "advertise-address": "10.0.0.2", "kubernetes-version": "v1.34.2"},
        host=HostFacts(hostname=lambda: "cp2", default_ipv4=lambda: "10.0.0.2"),
    )
    host = HostView(dir_exists=lambda p: False, proxy_env={})
    value = "cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380"
    joining = dict(pod_flags(render("etcd", cfg, host, etcd_join=EtcdJoin(value)).pod))
    assert joining["initial-cluster"] == value
    assert joining["initial-cluster-state"] == "existing"
    first = dict(pod_flags(render("etcd", cfg, host).pod))
    assert first["initial-cluster"] == "cp2=https://10.0.0.2:2380"
    assert "initial-cluster-state" not in first
    assert {k: v for k, v in joining.items() if not k.startswith("initial-cluster")} == {
        k: v for k, v in first.items() if k != "initial-cluster"
    }
    manifest = tmp_path / "etcd.yaml"
    manifest.write_text(render("etcd", cfg, host, etcd_join=EtcdJoin(value)).text)
    on_disk = existing_etcd_flags(manifest)
    assert on_disk is not None and on_disk["initial-cluster"] == value
    assert existing_etcd_flags(tmp_path / "absent.yaml") is None
    kubernetes_validate.validate(
        render("etcd", cfg, host, etcd_join=EtcdJoin(value)).pod, "1.34.0", strict=True
    )


def test_leave_endpoints_are_this_nodes_then_the_other_peers_hosts_on_the_client_port() -> None:
    flags = {
        "listen-client-urls": "https://127.0.0.1:2379,https://10.0.0.2:2379",
        "advertise-client-urls": "https://10.0.0.2:2379",
        "initial-advertise-peer-urls": "https://10.0.0.2:2380",
        "initial-cluster": "cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380,cp3=https://[fd00::3]:2380",
    }
    assert leave_endpoints(flags) == [
        "https://127.0.0.1:2379",
        "https://10.0.0.2:2379",
        "https://10.0.0.1:2379",
        "https://[fd00::3]:2379",
    ]


# ---- against real etcd ------------------------------------------------------------------------------


def test_join_adds_a_learner_starts_it_and_promotes_it_and_a_rerun_adds_nothing(
    cluster: LocalCluster,
) -> None:
    m1 = cluster.start_first("m1")
    client = client_of(m1)
    [only] = client.members()
    assert (only.name, only.peer_urls, only.client_urls, only.is_learner) == (
        "m1",
        (m1.peer_url,),
        (m1.client_url,),
        False,
    )

    m2 = cluster.node("m2")
    learner = add_learner(client, "m2", m2.peer_url, 10)
    assert learner.added_now and not learner.voting
    assert learner.initial_cluster == f"m1={m1.peer_url},m2={m2.peer_url}"
    [pending] = [m for m in client.members() if m.id == learner.member_id]
    assert pending.is_learner and not pending.started

    cluster.start(m2, learner.initial_cluster, "existing")
    promote_learner(client, learner, m2.client_url, 20, diagnose=lambda: None)
    assert voting(client) == {"m1": True, "m2": True}

    again = add_learner(client, "m2", m2.peer_url, 10)
    assert (again.member_id, again.added_now, again.voting) == (learner.member_id, False, True)
    assert len(client.members()) == 2
    promote_learner(client, again, m2.client_url, 1, diagnose=lambda: "must not be asked")  # a no-op


def test_learner_add_waits_out_the_unhealthy_window_after_a_member_started(cluster: LocalCluster) -> None:
    m1 = cluster.start_first("m1")
    client = client_of(m1)
    join(cluster, client, cluster.node("m2"))
    m3 = cluster.node("m3")
    sleep = CountingSleep()
    learner = add_learner(client, "m3", m3.peer_url, 20, sleep=sleep)
    assert learner.added_now
    assert sleep.calls > 0, "etcd 3.5 refuses a member add for ~5 s after a voter joined"
    cluster.start(m3, learner.initial_cluster, "existing")
    promote_learner(client, learner, m3.client_url, 20, diagnose=lambda: None)
    assert voting(client) == {"m1": True, "m2": True, "m3": True}


def test_a_second_learner_waits_for_the_first_then_fails_naming_it(cluster: LocalCluster) -> None:
    m1 = cluster.start_first("m1")
    client = client_of(m1)
    first = add_learner(client, "m2", cluster.node("m2").peer_url, 10)
    sleep = CountingSleep()
    started = time.monotonic()
    with pytest.raises(EtcdError) as caught:
        add_learner(client, "m3", "https://127.0.0.1:1", 1.5, sleep=sleep)
    assert 1.5 <= time.monotonic() - started < 6
    assert sleep.calls >= 2
    error = caught.value
    assert error.reason is Reason.TOO_MANY_LEARNERS
    assert error.etcd_message == "etcdserver: too many learner members in cluster"
    text = error.format_message()
    assert "\n" not in text
    assert first.hex_id in text and "only one control-plane join can run at a time" in text
    assert len(client.members()) == 2  # nothing added


def test_a_learner_that_never_starts_is_removed_and_the_error_names_the_cause(cluster: LocalCluster) -> None:
    m1 = cluster.start_first("m1")
    client = client_of(m1)
    m2 = cluster.node("m2")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", m2.peer_port))
        squatter.listen()
        learner = add_learner(client, "m2", m2.peer_url, 10)
        cluster.start(m2, learner.initial_cluster, "existing")  # exits: its peer port is taken

        def diagnose() -> str | None:
            return diagnose_local_member(
                client,
                learner.member_id,
                peer_url=m2.peer_url,
                local_endpoint=m2.client_url,
                peer_cert=m2.pki / "etcd" / "peer.crt",
                data_dir=str(m2.data_dir),
                data_dir_was_empty=True,
            )

        started = time.monotonic()
        with pytest.raises(EtcdError) as caught:
            promote_learner(client, learner, m2.client_url, 2.0, diagnose=diagnose)
    assert time.monotonic() - started < 10
    text = caught.value.format_message()
    assert caught.value.reason is Reason.TIMEOUT
    assert "\n" not in text
    assert f"127.0.0.1:{m2.peer_port} is held by another process" in text
    assert "the learner was removed" in text
    assert [m.name for m in client.members()] == ["m1"]
    # the way is free for the next join
    assert add_learner(client, "m3", cluster.node("m3").peer_url, 10).added_now


def test_diagnosis_names_a_peer_cert_without_the_address_and_an_unstarted_member(
    cluster: LocalCluster,
) -> None:
    m1 = cluster.start_first("m1")
    client = client_of(m1)
    m2 = cluster.node("m2")  # certs for 127.0.0.1, never started
    learner = add_learner(client, "m2", m2.peer_url, 10)

    def diagnosis(peer_url: str, was_empty: bool = True) -> str | None:
        return diagnose_local_member(
            client,
            learner.member_id,
            peer_url=peer_url,
            local_endpoint=m2.client_url,
            peer_cert=m2.pki / "etcd" / "peer.crt",
            data_dir=str(m2.data_dir),
            data_dir_was_empty=was_empty,
        )

    assert "lacks this node's advertise address 127.0.0.2 in its IP SANs" in (
        diagnosis(f"https://127.0.0.2:{m2.peer_port}") or ""
    )
    assert f"etcd member {learner.hex_id} never reached the cluster" in (diagnosis(m2.peer_url) or "")
    assert "was not empty before the join" in (diagnosis(m2.peer_url, was_empty=False) or "")


def test_leave_removes_a_member_and_never_the_last_one(cluster: LocalCluster) -> None:
    m1 = cluster.start_first("m1")
    client = client_of(m1)
    m2 = cluster.node("m2")
    first = join(cluster, client, m2)

    def flags(node: Node, initial: str, state: str) -> dict[str, str]:
        return {
            "listen-client-urls": node.client_url,
            "advertise-client-urls": node.client_url,
            "initial-advertise-peer-urls": node.peer_url,
            "initial-cluster": initial,
            "initial-cluster-state": state,
        }

    m2_flags = flags(m2, first.initial_cluster, "existing")
    dry = leave_cluster(m2_flags, m2.tls, dry_run=True)
    assert not dry.removed and dry.member is not None and dry.member.id == first.member_id
    assert dry.notes == [f"would remove etcd member {first.hex_id} (m2, {m2.peer_url})"]
    assert len(client.members()) == 2

    leave = leave_cluster(m2_flags, m2.tls, dry_run=False)  # a live voter: waits out the 5 s window
    assert leave.removed and not leave.keep_data and not leave.warnings
    assert leave.to_dict() == {"id": first.hex_id, "name": "m2", "peerURLs": [m2.peer_url], "removed": True}
    assert [m.name for m in client.members()] == ["m1"]

    last = leave_cluster(flags(m1, f"m1={m1.peer_url}", "new"), m1.tls, dry_run=False)
    assert not last.removed and not last.keep_data
    assert last.notes == [
        f"etcd member {last.member.hex_id if last.member else '?'} is the last member: "
        "not removed (that would end the cluster)"
    ]
    assert [m.name for m in client.members()] == ["m1"]


def test_leave_that_cannot_reach_etcd_keeps_the_data_and_says_the_etcdctl_command(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    issue_ca(ca)
    issue_member_certs(ca, tmp_path / "pki", "cp2")
    flags = {
        "listen-client-urls": "https://127.0.0.1:1",
        "initial-advertise-peer-urls": "https://127.0.0.1:2",
        "initial-cluster": "cp1=https://127.0.0.1:3,cp2=https://127.0.0.1:2",
        "initial-cluster-state": "existing",
    }
    leave = leave_cluster(flags, EtcdTLS.healthcheck(tmp_path / "pki"), dry_run=False)
    assert leave.keep_data and not leave.removed
    [warning] = leave.warnings
    assert "remove this member by hand: etcdctl member remove" in warning and "\n" not in warning


def test_tls_is_verified_a_client_trusting_another_ca_fails_at_once_in_one_line(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    m1 = cluster.start_first("m1")
    other = tmp_path / "other"
    issue_ca(other / "ca")
    issue_member_certs(other / "ca", other / "pki", "intruder")
    stranger = EtcdClient([m1.client_url], EtcdTLS.healthcheck(other / "pki"))
    started = time.monotonic()
    with pytest.raises(EtcdError) as caught:
        add_learner(stranger, "m2", "https://127.0.0.1:1", 30)
    assert time.monotonic() - started < 3, "a TLS failure is not retried"
    assert caught.value.reason is Reason.TLS
    text = caught.value.format_message()
    assert "\n" not in text and "certificate verify failed" in text
    assert not stranger.healthy(m1.client_url)
    # our CA but etcd's client-cert auth refuses a key pair from the other CA
    mixed = EtcdTLS(
        m1.tls.ca,
        other / "pki" / "etcd" / "healthcheck-client.crt",
        other / "pki" / "etcd" / "healthcheck-client.key",
    )
    with pytest.raises(EtcdError) as refused:
        EtcdClient([m1.client_url], mixed).members()
    assert refused.value.reason is Reason.TLS
    assert len(client_of(m1).members()) == 1
