"""Joining a stacked etcd member as a learner, so that a failed join never leaves a broken cluster.

The member is added as a learner (it does not count for quorum), started with the member list it was
added into, and promoted once the leader says it is in sync. A learner that never starts would block
every later join (etcd 3.5 allows one learner at a time), so one that this run added is removed again
when the deadline passes, and the error says why it did not start.

etcd 3.5 refuses ``member add`` with ``unhealthy cluster`` until its leader has been connected to every
voter for 5 s (so right after a member started), and with ``too many learner members`` while another
join is in progress; both are waited out, bounded.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bootstrap.etcd.members import EtcdClient, EtcdError, Member, Reason

POLL_INTERVAL = 0.5  # kubeadm polls etcd membership calls every 500 ms too

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass
class AddedLearner:
    """This node's member: its id, the ``--initial-cluster`` to start it with, whether this run added
    it (else an earlier run did) and whether it already votes."""

    member_id: int
    initial_cluster: str
    added_now: bool
    voting: bool

    @property
    def hex_id(self) -> str:
        return f"{self.member_id:x}"


def initial_cluster(members: Iterable[Member], name: str, peer_url: str) -> str:
    """``--initial-cluster`` for a member joining as ``name`` at ``peer_url``.

    The joining member gets its own name, the others keep theirs, and a member that was added but never
    started (no name yet) is named by its hex id. Entries are sorted by name, then URL, so the value
    does not depend on the order etcd lists members in.
    """
    entries: list[tuple[str, str]] = []
    for member in members:
        if peer_url in member.peer_urls:
            entries.append((name, peer_url))
            continue
        label = member.name or member.hex_id
        entries += [(label, url) for url in member.peer_urls]
    if (name, peer_url) not in entries:
        entries.append((name, peer_url))
    return ",".join(f"{label}={url}" for label, url in sorted(entries))


def _ours(members: Iterable[Member], peer_url: str) -> Member | None:
    return next((m for m in members if peer_url in m.peer_urls), None)


def _describe(member: Member) -> str:
    label = member.name or "unstarted"
    return f"{label} ({member.hex_id}, {', '.join(member.peer_urls)})"


def add_learner(
    client: EtcdClient,
    name: str,
    peer_url: str,
    timeout: float,
    *,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> AddedLearner:
    """Add ``peer_url`` as a learner, or find it already a member (a re-run): never adds it twice."""
    deadline = clock() + timeout
    while True:
        members = client.members()
        mine = _ours(members, peer_url)
        if mine is not None:
            return AddedLearner(mine.id, initial_cluster(members, name, peer_url), False, not mine.is_learner)
        try:
            added, after = client.add_learner(peer_url)
        except EtcdError as exc:
            if exc.reason is Reason.PEER_URL_EXISTS and clock() < deadline:
                continue  # added by a concurrent call or a lost answer: the next list shows it
            if exc.reason not in (Reason.UNHEALTHY_CLUSTER, Reason.TOO_MANY_LEARNERS):
                raise
            if clock() >= deadline:
                raise _add_refused(exc, members, peer_url, timeout) from exc
            sleep(POLL_INTERVAL)
            continue
        return AddedLearner(added.id, initial_cluster(after, name, peer_url), True, False)


def _add_refused(exc: EtcdError, members: list[Member], peer_url: str, timeout: float) -> EtcdError:
    if exc.reason is Reason.TOO_MANY_LEARNERS:
        others = [m for m in members if m.is_learner and peer_url not in m.peer_urls]
        who = ", ".join(_describe(m) for m in others) or "another member"
        hint = f"etcdctl member remove {others[0].hex_id}" if others else "etcdctl member remove <id>"
        return EtcdError(
            f"cannot add this node to etcd: etcd member {who} is still a learner after {timeout:g}s "
            f"({exc.etcd_message}); only one control-plane join can run at a time: wait for that join "
            f"to finish, or if it failed remove its member ({hint}) and join again",
            Reason.TOO_MANY_LEARNERS,
            exc.etcd_message,
        )
    return EtcdError(
        f"cannot add this node to etcd: refused for {timeout:g}s with {exc.etcd_message!r} (etcd adds a "
        "member only once its leader has reached every voting member for 5 s): check that every "
        "etcd member is running",
        exc.reason,
        exc.etcd_message,
    )


def promote_learner(
    client: EtcdClient,
    learner: AddedLearner,
    local_endpoint: str,
    timeout: float,
    *,
    diagnose: Callable[[], str | None],
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> None:
    """Wait until the local member answers healthy, then promote it, retrying while it catches up.

    On failure (the deadline, or an error etcd will not get over) the learner is removed when this run
    added it, or when it is an unstarted learner anyway, so the next join is not blocked; then the
    error says what ``diagnose`` found.
    """
    if learner.voting:
        return
    deadline = clock() + timeout
    started = False
    last = "not tried yet"
    failure: EtcdError | None = None
    while True:
        if client.healthy(local_endpoint):
            started = True
            try:
                client.promote(learner.member_id)
                return
            except EtcdError as exc:
                if exc.reason is Reason.NOT_A_LEARNER:
                    return  # promoted already (an earlier try whose answer was lost)
                last = exc.etcd_message or str(exc)
                if exc.reason is not Reason.LEARNER_NOT_IN_SYNC:
                    failure = exc
                    break
        else:
            last = f"the local etcd at {local_endpoint} does not answer healthy"
        if clock() >= deadline:
            break
        sleep(POLL_INTERVAL)
    raise _give_up(client, learner, timeout, started, last, failure, diagnose)


def _give_up(
    client: EtcdClient,
    learner: AddedLearner,
    timeout: float,
    started: bool,
    last: str,
    failure: EtcdError | None,
    diagnose: Callable[[], str | None],
) -> EtcdError:
    what = (
        f"could not be promoted ({last})"
        if failure is not None
        else (
            f"was not promoted within {timeout:g}s ({last})"
            if started
            else f"did not start within {timeout:g}s"
        )
    )
    cause = diagnose() or (
        "see the etcd container's log on this node (crictl logs) for why it did not reach the cluster"
    )
    cleanup = _remove_stale(client, learner)
    if started and cleanup.startswith("the learner was removed"):
        # a removed member's data dir is refused by etcd ever after
        cleanup += "; empty this node's etcd data dir (bootstrap reset) before joining again"
    return EtcdError(
        f"etcd learner {learner.hex_id} {what}: {cause}; {cleanup}",
        failure.reason if failure is not None else Reason.TIMEOUT,
        failure.etcd_message if failure is not None else None,
    )


def _remove_stale(client: EtcdClient, learner: AddedLearner) -> str:
    """Remove our learner when it is safe and ours to remove; say what happened, in one clause."""
    hand = f"remove it by hand (etcdctl member remove {learner.hex_id}) before the next join"
    try:
        mine = next((m for m in client.members() if m.id == learner.member_id), None)
    except EtcdError as exc:
        return f"could not list the members to remove the learner ({exc}): {hand}"
    if mine is None:
        return "the learner is no longer a member"
    if not mine.is_learner:
        return "the member votes already and was kept"
    if not (learner.added_now or not mine.started):
        return f"the learner was kept (an earlier run added it and it has started): {hand}"
    try:
        client.remove(learner.member_id)
    except EtcdError as exc:
        if exc.reason is Reason.MEMBER_NOT_FOUND:
            return "the learner is no longer a member"
        return f"could not remove the learner ({exc}): {hand}"
    return "the learner was removed from the cluster, so the next join is not blocked"


def _peer_cert_lacks(peer_cert: Path, address: str) -> str | None:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(peer_cert.read_bytes())
    except (OSError, ValueError) as exc:
        return f"etcd's peer cert {peer_cert} is unreadable ({exc}): re-run the certs phase"
    try:
        wanted = ipaddress.ip_address(address)
    except ValueError:
        return None  # a host name: etcd checks DNS SANs, which we cannot resolve as etcd would
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = sans.get_values_for_type(x509.IPAddress)
    except x509.ExtensionNotFound:
        ips = []
    if wanted in ips:
        return None
    return (
        f"etcd's peer cert {peer_cert} lacks this node's advertise address {address} in its IP SANs, so "
        "the other members refuse its peer connections: delete it and peer.key and re-run the certs "
        "phase of the join with this node's address"
    )


def _port_squatted(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "held"
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def diagnose_local_member(
    client: EtcdClient,
    member_id: int,
    *,
    peer_url: str,
    local_endpoint: str,
    peer_cert: Path,
    data_dir: str,
    data_dir_was_empty: bool,
) -> str | None:
    """Why the local etcd member did not join, from what this node can see without the API server.

    ``data_dir_was_empty`` is what the join saw before it started etcd. Returns one line with the fix,
    or None when nothing here explains it.
    """
    if not data_dir_was_empty:
        return (
            f"the etcd data dir {data_dir} was not empty before the join, so etcd started from old data "
            "instead of joining: run bootstrap reset on this node (or empty the dir) and join again"
        )
    parts = urlsplit(peer_url)
    host, port = parts.hostname or "", parts.port or 2380
    local_answers = client.healthy(local_endpoint)
    if not local_answers and _port_squatted(host, port):
        return (
            f"the etcd peer port {host}:{port} is held by another process while the local etcd does not "
            f"answer: stop that process (ss -ltnp 'sport = :{port}') and join again"
        )
    lacking = _peer_cert_lacks(peer_cert, host)
    if lacking:
        return lacking
    try:
        mine = next((m for m in client.members() if m.id == member_id), None)
    except EtcdError:
        return None
    if mine is not None and not mine.started:
        return (
            f"etcd member {mine.hex_id} never reached the cluster (still unstarted): check "
            "--initial-cluster in etcd.yaml and the peer TLS, and the etcd container's log on this node"
        )
    return None


def initial_cluster_to_render(
    existing_manifest_flags: Mapping[str, str] | None, learner: AddedLearner
) -> str:
    """The ``--initial-cluster`` for this node's etcd.yaml: a re-run keeps the one already written.

    Once this node's member votes and its manifest says ``--initial-cluster-state=existing``, the member
    list may have grown since (later joins); rewriting the flag would change the manifest and restart
    etcd for nothing, so the value on disk stays.
    """
    flags = existing_manifest_flags or {}
    kept = flags.get("initial-cluster")
    if kept and flags.get("initial-cluster-state") == "existing" and learner.voting and not learner.added_now:
        return kept
    return learner.initial_cluster


def existing_etcd_flags(manifest: Path) -> dict[str, str] | None:
    """The flags of our etcd static pod at ``manifest`` (the last value of each name), None when absent."""
    from bootstrap.components.podfile import our_manifest, pod_flags

    pod = our_manifest("etcd", manifest)
    return dict(pod_flags(pod)) if pod is not None else None
