"""``bootstrap reset`` on a stacked control-plane node: take this node's etcd member out of the cluster.

It runs before the manifests go (the local etcd may still answer). The member is found by the peer URL
in etcd.yaml; the last member is never removed (that would end the cluster, not leave it). When the
removal fails the etcd data is kept, as kubeadm does, and the user is told the etcdctl command.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bootstrap.etcd.members import EtcdClient, EtcdError, EtcdTLS, Member, Reason

REMOVE_TIMEOUT = 15.0  # a live voter is removable only after the leader has seen every voter for 5 s
DEFAULT_CLIENT_PORT = 2379
# What can heal within the deadline: the 5 s window after a member started, a loaded or restarting
# member (kubeadm retries its member remove too). Anything else (TLS, a refusal) is final.
_RETRIED = frozenset({Reason.UNHEALTHY_CLUSTER, Reason.UNREACHABLE, Reason.TIMEOUT})


@dataclass
class Leave:
    """What leaving did: the member removed (or that would be, in a dry run), notes, and whether the
    etcd data must be kept because the member is still in the cluster."""

    member: Member | None = None
    removed: bool = False
    keep_data: bool = False
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object] | None:
        if self.member is None:
            return None
        return {
            "id": self.member.hex_id,
            "name": self.member.name,
            "peerURLs": list(self.member.peer_urls),
            "removed": self.removed,
        }


def _split(value: str | None) -> list[str]:
    return [part for part in (value or "").split(",") if part]


def _peer_urls_of_initial_cluster(value: str | None) -> list[str]:
    return [entry.partition("=")[2] for entry in _split(value) if "=" in entry]


def leave_endpoints(flags: Mapping[str, str]) -> list[str]:
    """Where to reach etcd from this node: its own client URLs, then the other members' client URLs
    derived from ``--initial-cluster`` (their peer hosts on this node's client port)."""
    own = [*_split(flags.get("listen-client-urls")), *_split(flags.get("advertise-client-urls"))]
    own_peers = set(_split(flags.get("initial-advertise-peer-urls")))
    client_port = next((urlsplit(u).port for u in own if urlsplit(u).port), None) or DEFAULT_CLIENT_PORT
    others = []
    for peer in _peer_urls_of_initial_cluster(flags.get("initial-cluster")):
        parts = urlsplit(peer)
        if peer in own_peers or not parts.hostname:
            continue
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        others.append(f"https://{host}:{client_port}")
    return list(dict.fromkeys([*own, *others]))


def client_tls(flags: Mapping[str, str], path: Callable[[str], Path]) -> EtcdTLS:
    """The etcd CA and healthcheck client cert beside etcd's ``--trusted-ca-file``; ``path`` maps a
    host path into the managed filesystem (``--rootfs``)."""
    ca = flags.get("trusted-ca-file") or "/etc/kubernetes/pki/etcd/ca.crt"
    etcd_dir = path(ca).parent
    return EtcdTLS(path(ca), etcd_dir / "healthcheck-client.crt", etcd_dir / "healthcheck-client.key")


def leave_cluster(
    flags: Mapping[str, str],
    tls: EtcdTLS,
    *,
    dry_run: bool,
    timeout: float = REMOVE_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Leave:
    """Remove this node's member (by ``--initial-advertise-peer-urls`` in ``flags``, etcd.yaml's)."""
    leave = Leave()
    peers = _split(flags.get("initial-advertise-peer-urls"))
    if not peers:
        leave.notes.append("etcd.yaml names no --initial-advertise-peer-urls: no etcd member to remove")
        return leave
    peer_url = peers[0]
    # The first control-plane node's etcd.yaml lists only itself, though others may have joined since:
    # ask its own etcd (the loopback URL only, one process serves them all). If that does not answer,
    # nobody else can be found from here, so it is treated as the only member.
    endpoints = leave_endpoints(flags)
    solo = _peer_urls_of_initial_cluster(flags.get("initial-cluster")) == [peer_url]
    client = EtcdClient(endpoints[:1] if solo else endpoints, tls, timeout=min(timeout, 5.0))
    try:
        members = client.members()
    except EtcdError as exc:
        if solo:
            leave.notes.append(
                f"etcd does not answer ({exc}) and etcd.yaml lists no other member: "
                "treated as the only member, not removed"
            )
            return leave
        return _failed(leave, f"cannot list the etcd members to remove this node's ({peer_url}): {exc}", None)
    mine = next((m for m in members if peer_url in m.peer_urls), None)
    if mine is None:
        leave.notes.append(f"no etcd member has the peer URL {peer_url}: already removed")
        return leave
    leave.member = mine
    if len(members) == 1:
        leave.notes.append(
            f"etcd member {mine.hex_id} is the last member: not removed (that would end the cluster)"
        )
        return leave
    if dry_run:
        leave.notes.append(f"would remove etcd member {_named(mine)}")
        return leave
    # Ask the other members first: a member removing itself may drop the connection before it answers,
    # and once it is gone its local endpoint stops answering.
    client.endpoints = list(
        dict.fromkeys([*(u for m in members if m.id != mine.id for u in m.client_urls), *client.endpoints])
    )
    deadline = clock() + timeout
    while True:
        try:
            client.remove(mine.id)
            break
        except EtcdError as exc:
            if exc.reason is Reason.MEMBER_NOT_FOUND:
                break  # an earlier try went through (its answer may have been lost)
            if exc.reason not in _RETRIED or clock() >= deadline:
                return _failed(leave, f"cannot remove etcd member {_named(mine)}: {exc}", mine)
            sleep(0.5)
    leave.removed = True
    leave.notes.append(f"removed etcd member {_named(mine)}")
    return leave


def _named(member: Member) -> str:
    return f"{member.hex_id} ({member.name or 'unstarted'}, {', '.join(member.peer_urls)})"


def _failed(leave: Leave, problem: str, member: Member | None) -> Leave:
    hint = member.hex_id if member is not None else "<hex id from etcdctl member list>"
    leave.keep_data = True
    leave.warnings.append(
        f"{problem}; remove this member by hand: etcdctl member remove {hint}; the etcd data is kept"
    )
    return leave


def leave_by_manifest(manifest: Path, path: Callable[[str], Path], *, dry_run: bool) -> Leave:
    """Leave the cluster as the etcd static pod at ``manifest`` (a path already under the rootfs) says."""
    from bootstrap.components.podfile import load_pod, pod_flags

    pod = load_pod(manifest)
    if pod is None:
        return Leave(notes=[f"{manifest} is unreadable: no etcd member to remove"])
    flags = dict(pod_flags(pod))
    return leave_cluster(flags, client_tls(flags, path), dry_run=dry_run)
