"""``bootstrap token``: create, list, delete and generate bootstrap tokens, as ``kubeadm token``.

The one-command answer to an expired join token is ``bootstrap token create --print-join-command``
on a control-plane node. Bad flags are usage errors (exit 2) found before the API is asked; a
failed API call, an unusable kubeconfig or an unknown token is exit 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from bootstrap.cli import options
from bootstrap.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from bootstrap.cluster.bootstrap_tokens import TokenApi
    from bootstrap.cluster.client import Credentials
    from bootstrap.output import Reporter

DEFAULT_KUBECONFIG = "/etc/kubernetes/admin.conf"
DEFAULT_GROUP = "system:bootstrappers:kubeadm:default-node-token"


def _common(func: Any) -> Any:
    for decorator in reversed(
        [
            click.option(
                "--kubeconfig",
                default=DEFAULT_KUBECONFIG,
                show_default=True,
                help="The kubeconfig to talk to the cluster with (under --rootfs when given).",
            ),
            options.ROOTFS,
            click.option("--dry-run", is_flag=True, help="Change nothing; say what would be done."),
            options.OUTPUT,
            options.VERBOSE,
        ]
    ):
        func = decorator(func)
    return func


def _kubeconfig(rootfs: Path | None, kubeconfig: str) -> Path:
    from pathlib import Path

    from bootstrap.host.fs import Rootfs

    path = Path(kubeconfig)
    return Rootfs(rootfs).path(path) if path.is_absolute() else path


def _token_api(kubeconfig: Path | Credentials) -> TokenApi:
    from bootstrap.cluster.bootstrap_tokens import TokenApi
    from bootstrap.cluster.client import KubeApi

    return TokenApi(KubeApi(kubeconfig))


def _document(kind: str, reporter: Reporter, changed: bool, dry_run: bool, **fields: Any) -> dict[str, Any]:
    from bootstrap import __version__
    from bootstrap.results import RESULT_API_VERSION

    return {
        "apiVersion": RESULT_API_VERSION,
        "kind": kind,
        "version": __version__,
        "dryRun": dry_run,
        "ok": True,
        "changed": changed,
        "warnings": reporter.warnings,
        **fields,
    }


def _split(values: tuple[str, ...]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


@click.group(cls=options.SuggestingGroup)
@options.global_options
def token(output: str, verbose: bool) -> None:
    """Manage bootstrap tokens (what joining nodes authenticate with)."""


@token.command()
@click.argument("token_value", metavar="[TOKEN]", required=False)
@click.option(
    "--ttl",
    default="24h",
    metavar="DURATION",
    show_default=True,
    help="How long the token is valid (0: it never expires).",
)
@click.option(
    "--usages",
    multiple=True,
    metavar="USAGES",
    help="What the token may be used for, comma-separated: signing, authentication (default: both).",
)
@click.option(
    "--groups",
    multiple=True,
    metavar="GROUPS",
    help=f"Extra groups the token authenticates as, comma-separated (default: {DEFAULT_GROUP}).",
)
@click.option("--description", default=None, help="A human description of the token's purpose.")
@click.option(
    "--print-join-command",
    is_flag=True,
    help="Print the whole join command instead of the token alone.",
)
@click.option(
    "--certificate-key",
    default=None,
    metavar="KEY",
    help="With --print-join-command: print the control-plane join command with this key.",
)
@click.option(
    "--reuse-if-valid-for",
    "reuse_for",
    default=None,
    metavar="DURATION",
    help="Print a token made with the same --description, --usages and --groups that is still valid "
    "that long instead of creating one (automation that re-runs: no new token each time).",
)
@_common
def create(
    token_value: str | None,
    ttl: str,
    usages: tuple[str, ...],
    groups: tuple[str, ...],
    description: str | None,
    print_join_command: bool,
    certificate_key: str | None,
    reuse_for: str | None,
    kubeconfig: str,
    rootfs: Path | None,
    dry_run: bool,
    output: str,
    verbose: bool,
) -> None:
    """Create a bootstrap token (TOKEN, or a new random one) and print it."""
    import re

    from bootstrap.cluster import bootstrap_tokens as tokens
    from bootstrap.cluster import objects

    options.expect_kind("TokenCreateResult")
    lifetime = options.duration("--ttl", ttl)
    if lifetime.total_seconds() < 0:
        raise UsageError(f"--ttl: {ttl!r} must not be negative")
    wanted_usages = _split(usages) or list(tokens.USAGES)
    wanted_groups = _split(groups) or ([DEFAULT_GROUP] if "authentication" in wanted_usages else [])
    problems = tokens.token_problems(token_value, wanted_usages, wanted_groups)
    if certificate_key is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", certificate_key):
        problems.append("--certificate-key: must be 64 hex characters (a 32-byte key)")
    if certificate_key is not None and not print_join_command:
        problems.append("--certificate-key: only used with --print-join-command")
    reuse_window = None if reuse_for is None else options.duration("--reuse-if-valid-for", reuse_for)
    if reuse_window is not None and token_value is not None:
        problems.append("--reuse-if-valid-for: not with TOKEN (a given token is created, never reused)")
    if reuse_window is not None and reuse_window.total_seconds() < 0:
        problems.append(f"--reuse-if-valid-for: {reuse_for!r} must not be negative")
    if problems:
        raise UsageError("; ".join(problems))
    reporter = options.reporter(output, verbose, "TokenCreateResult")
    now = datetime.now(UTC).replace(microsecond=0)
    wanted_description = description or tokens.DEFAULT_DESCRIPTION
    cluster = _cluster_of(rootfs, kubeconfig)
    api = _token_api(cluster.credentials)  # the kubeconfig read once
    try:
        reused = (
            None
            if reuse_window is None
            else api.reusable(wanted_usages, wanted_groups, wanted_description, now + reuse_window)
        )
        if reused is not None:
            value, expires = reused[0], reused[1].expires
            reporter.info("token", f'Reusing bootstrap token "{reused[1].token_id}" (valid long enough)')
        else:
            value = token_value or objects.generate_token()
            expires = objects.expiration_for(lifetime, now)
            if dry_run:
                reporter.info(
                    "dryrun", f"Would create Secret kube-system/bootstrap-token-{value.split('.')[0]}"
                )
            else:
                api.create(value, expires, wanted_usages, wanted_groups, wanted_description)
    finally:
        api.close()
    join = _join_command(cluster, value, certificate_key) if print_join_command else None
    if output == "text":
        click.echo(join or value)
    reporter.result(
        _document(
            "TokenCreateResult",
            reporter,
            reused is None and not dry_run,
            dry_run,
            # The user asked for this credential: it is the command's whole answer.
            token=value,
            id=value.split(".")[0],
            expires=None if expires is None else expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            reused=reused is not None,
            caCertHash=cluster.ca_hash,
            joinCommand=join,
        )
    )


@dataclass(frozen=True)
class _Cluster:
    """What a join command names of the kubeconfig's current cluster."""

    kubeconfig: Path
    credentials: Credentials
    endpoint: str
    ca_hash: str | None


def _cluster_of(rootfs: Path | None, kubeconfig: str) -> _Cluster:
    """kubeadm's: the endpoint and CA a join command names come from the kubeconfig's current cluster."""
    from bootstrap.cluster.bootstrap_tokens import ca_hash_of
    from bootstrap.cluster.client import read_kubeconfig

    path = _kubeconfig(rootfs, kubeconfig)
    credentials = read_kubeconfig(path)
    ca_hash = None if credentials.ca_pem is None else ca_hash_of(credentials.ca_pem)
    return _Cluster(path, credentials, credentials.server.removeprefix("https://").rstrip("/"), ca_hash)


def _join_command(cluster: _Cluster, value: str, certificate_key: str | None) -> str:
    from bootstrap.cluster.join_command import JoinCommand
    from bootstrap.errors import PhaseError

    if cluster.ca_hash is None:
        raise PhaseError(
            f"{cluster.kubeconfig}: names no CA, so there is no hash to pin for --print-join-command"
        )
    join = JoinCommand(cluster.endpoint, value, cluster.ca_hash, certificate_key)
    return join.control_plane() if certificate_key else join.worker()


@token.command("list")
@_common
def list_(kubeconfig: str, rootfs: Path | None, dry_run: bool, output: str, verbose: bool) -> None:
    """List the bootstrap tokens (their secret half masked)."""
    options.expect_kind("TokenList")
    reporter = options.reporter(output, verbose, "TokenList")
    now = datetime.now(UTC).replace(microsecond=0)
    api = _token_api(_kubeconfig(rootfs, kubeconfig))
    try:
        found = api.list()
    finally:
        api.close()
    if output == "text":
        click.echo(_table(found, now))
    reporter.result(_document("TokenList", reporter, False, dry_run, tokens=[t.to_dict(now) for t in found]))


def _table(found: list[Any], now: datetime) -> str:
    header = ["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]
    rows = [header]
    for info in found:
        row = info.to_dict(now)
        rows.append(
            [
                row["token"],
                row["ttl"],
                row["expires"] or "<never>",
                ",".join(row["usages"]) or "<none>",
                row["description"] or "<none>",
                ",".join(row["groups"]) or "<none>",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


@token.command()
@click.argument("tokens_", metavar="TOKEN_OR_ID...", nargs=-1, required=True)
@_common
def delete(
    tokens_: tuple[str, ...], kubeconfig: str, rootfs: Path | None, dry_run: bool, output: str, verbose: bool
) -> None:
    """Delete bootstrap tokens, each given by its id or as a whole token."""
    from bootstrap.cluster.bootstrap_tokens import token_id_of
    from bootstrap.errors import PhaseError

    options.expect_kind("TokenDeleteResult")
    ids = []
    for index, value in enumerate(tokens_, 1):
        try:
            ids.append(token_id_of(value))
        except ValueError as exc:
            raise UsageError(f"argument {index}: {exc}") from None  # never echo what may be a secret
    reporter = options.reporter(output, verbose, "TokenDeleteResult")
    api = _token_api(_kubeconfig(rootfs, kubeconfig))
    deleted: list[str] = []
    missing: list[str] = []
    try:
        for token_id in dict.fromkeys(ids):
            if dry_run:
                present = api.exists(token_id)
                if present:
                    reporter.info("dryrun", f'Would delete bootstrap token "{token_id}"')
            else:
                present = api.delete(token_id)
                if present:
                    reporter.info("token", f'Deleted bootstrap token "{token_id}"')
            (deleted if present else missing).append(token_id)
    finally:
        api.close()
    if missing:
        current = options.state()
        if current is not None:
            current.extra["deleted"] = deleted
        raise PhaseError(
            f"no bootstrap token with id {', '.join(missing)} "
            f'(see "bootstrap token list"){"; deleted " + ", ".join(deleted) if deleted else ""}'
        )
    reporter.result(
        _document("TokenDeleteResult", reporter, bool(deleted) and not dry_run, dry_run, deleted=deleted)
    )


@token.command()
@options.OUTPUT
@options.VERBOSE
def generate(output: str, verbose: bool) -> None:
    """Print a new random token; nothing is created (pass it to 'token create' or 'init --token')."""
    from bootstrap.cluster.objects import generate_token

    options.expect_kind("TokenGenerateResult")
    reporter = options.reporter(output, verbose, "TokenGenerateResult")
    value = generate_token()
    if output == "text":
        click.echo(value)
    reporter.result(_document("TokenGenerateResult", reporter, False, False, token=value))
