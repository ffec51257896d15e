"""``bootstrap token create|list|delete|generate`` against a cluster made by ``bootstrap init`` on the
stand-ins: the Secrets they write, that a created token really authenticates (and a deleted one no
longer does), that listings never show a secret half, and the one-line errors with their exit codes.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import CoreV1Api

from bootstrap.cluster.objects import TOKEN_RE
from tests.conftest import CliRunner
from tests.standin.harness import admin_client, kubelet_once_configured
from tests.test_init_e2e import Node, make_node, run_init

KEY = "ab" * 32


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, dict[str, Any]]]:
    node = make_node(tmp_path_factory.mktemp("tokens"))
    with kubelet_once_configured(node.rootfs):
        code, doc, stderr = run_init(node)
        assert code == 0, stderr
        yield node, doc


def rootfs_args(node: Node) -> list[str]:
    # admin.conf is the default --kubeconfig: under --rootfs it is the node's own.
    return ["--rootfs", str(node.rootfs)]


def stored(node: Node, token_id: str) -> dict[str, str] | None:
    core = CoreV1Api(admin_client(node.rootfs))
    secrets = {s.metadata.name: s for s in core.list_namespaced_secret("kube-system").items}
    found = secrets.get(f"bootstrap-token-{token_id}")
    if found is None:
        return None
    assert found.type == "bootstrap.kubernetes.io/token" and not (found.metadata.labels or {})
    return {k: base64.b64decode(v).decode() for k, v in found.data.items()}


def status_with_token(node: Node, token: str) -> int:
    """The HTTP status the API server answers a bootstrap-token request with (403: known but not
    allowed to list pods; 401: not a valid token)."""
    admin = yaml.safe_load((node.rootfs / "etc/kubernetes/admin.conf").read_text())
    server = admin["clusters"][0]["cluster"]["server"]
    context = ssl.create_default_context(cafile=str(node.rootfs / "etc/kubernetes/pki/ca.crt"))
    request = urllib.request.Request(
        f"{server}/api/v1/namespaces/default/pods", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_create_writes_kubeadms_token_secret_and_prints_only_the_token(
    cluster: tuple[Node, dict[str, Any]], cli: CliRunner
) -> None:
    node, _ = cluster
    result = cli("token", "create", *rootfs_args(node))
    assert result.code == 0, result.stderr
    token = result.stdout.strip()
    assert TOKEN_RE.match(token)
    token_id, secret_part = token.split(".")
    data = stored(node, token_id)
    assert data is not None
    assert data["token-id"] == token_id and data["token-secret"] == secret_part
    assert data["usage-bootstrap-authentication"] == data["usage-bootstrap-signing"] == "true"
    assert data["auth-extra-groups"] == "system:bootstrappers:kubeadm:default-node-token"
    expires = datetime.fromisoformat(data["expiration"].replace("Z", "+00:00"))
    assert timedelta(hours=23, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=24)
    assert secret_part not in result.stderr
    assert status_with_token(node, token) == 403  # authenticated, merely not allowed to list pods


def test_create_with_a_given_token_and_flags(cluster: tuple[Node, dict[str, Any]], cli: CliRunner) -> None:
    node, _ = cluster
    token = "tok123.0123456789abcdef"
    result = cli(
        "token", "create", token, "--ttl", "0", "--usages", "signing", "--description", "for ci",
        *rootfs_args(node), "-o", "json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    doc = result.json()
    assert (doc["kind"], doc["token"], doc["expires"], doc["changed"]) == (
        "TokenCreateResult",
        token,
        None,
        True,
    )
    data = stored(node, "tok123")
    assert data == {
        "token-id": "tok123",
        "token-secret": "0123456789abcdef",
        "description": "for ci",
        "usage-bootstrap-signing": "true",
    }
    again = cli("token", "create", token, *rootfs_args(node))
    assert again.code == 1
    assert 'a token with id "tok123" already exists' in again.stderr
    assert "0123456789abcdef" not in again.stderr


def test_print_join_command_pins_the_clusters_ca(
    cluster: tuple[Node, dict[str, Any]], cli: CliRunner
) -> None:
    node, doc = cluster
    details = next(p for p in doc["phases"] if p["path"] == "show-join-command")["details"]
    worker = cli("token", "create", "--print-join-command", *rootfs_args(node))
    assert worker.code == 0, worker.stderr
    command = worker.stdout.strip()
    token = command.split("--token ")[1].split()[0]
    assert command == (
        f"bootstrap join {details['endpoint']} --token {token} "
        f"--discovery-token-ca-cert-hash {details['caCertHash']}"
    )
    assert stored(node, token.split(".")[0]) is not None
    control = cli("token", "create", "--print-join-command", "--certificate-key", KEY, *rootfs_args(node))
    assert control.code == 0, control.stderr
    assert control.stdout.strip().endswith(f"--control-plane --certificate-key {KEY}")


def test_list_masks_the_secret_half(cluster: tuple[Node, dict[str, Any]], cli: CliRunner) -> None:
    node, _ = cluster
    made = cli("token", "create", "--description", "listed", *rootfs_args(node)).stdout.strip()
    token_id, secret_part = made.split(".")
    as_json = cli("token", "list", *rootfs_args(node), "-o", "json")
    assert as_json.code == 0, as_json.stderr
    rows = {t["id"]: t for t in as_json.json()["tokens"]}
    assert rows[token_id]["token"] == f"{token_id}.<redacted>"
    assert rows[token_id]["description"] == "listed" and rows[token_id]["ttl"] in ("23h", "24h")
    assert rows[token_id]["usages"] == ["signing", "authentication"]
    as_text = cli("token", "list", *rootfs_args(node))
    assert as_text.stdout.splitlines()[0].split() == [
        "TOKEN",
        "TTL",
        "EXPIRES",
        "USAGES",
        "DESCRIPTION",
        "EXTRA",
        "GROUPS",
    ]
    assert f"{token_id}.<redacted>" in as_text.stdout
    as_yaml = cli("token", "list", *rootfs_args(node), "-o", "yaml")

    def ids(document: dict[str, Any]) -> list[tuple[str, str]]:
        return [(t["token"], t["expires"]) for t in document["tokens"]]  # ttl ticks between calls

    assert ids(yaml.safe_load(as_yaml.stdout)) == ids(as_json.json())
    for output in (as_json, as_text, as_yaml):
        assert secret_part not in output.stdout + output.stderr


def test_delete_by_id_or_token_and_the_token_stops_working(
    cluster: tuple[Node, dict[str, Any]], cli: CliRunner
) -> None:
    node, _ = cluster
    first = cli("token", "create", *rootfs_args(node)).stdout.strip()
    second = cli("token", "create", *rootfs_args(node)).stdout.strip()
    result = cli("token", "delete", first.split(".")[0], second, *rootfs_args(node), "-o", "json")
    assert result.code == 0, result.stderr
    assert result.json()["deleted"] == [first.split(".")[0], second.split(".")[0]]
    assert stored(node, first.split(".")[0]) is None and stored(node, second.split(".")[0]) is None
    assert status_with_token(node, first) == 401
    assert second.split(".")[1] not in result.stdout + result.stderr


def test_deleting_an_unknown_token_fails_naming_it(
    cluster: tuple[Node, dict[str, Any]], cli: CliRunner
) -> None:
    node, _ = cluster
    result = cli("token", "delete", "zzzzzz", *rootfs_args(node), "-o", "json")
    assert result.code == 1
    assert (
        "no bootstrap token with id zzzzzz" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    )
    assert result.json()["ok"] is False


def test_dry_run_creates_and_deletes_nothing(cluster: tuple[Node, dict[str, Any]], cli: CliRunner) -> None:
    node, _ = cluster
    made = cli("token", "create", "dryrun.0123456789abcdef", "--dry-run", *rootfs_args(node))
    assert made.code == 0 and "Would create" in made.stderr
    assert stored(node, "dryrun") is None
    real = cli("token", "create", *rootfs_args(node)).stdout.strip().split(".")[0]
    gone = cli("token", "delete", real, "--dry-run", *rootfs_args(node))
    assert gone.code == 0 and "Would delete" in gone.stderr
    assert stored(node, real) is not None


def test_reuse_prints_a_token_of_the_same_purpose_while_it_lasts(
    cluster: tuple[Node, dict[str, Any]], cli: CliRunner
) -> None:
    node, doc = cluster
    details = next(p for p in doc["phases"] if p["path"] == "show-join-command")["details"]

    def create(*extra: str, ttl: str = "1h") -> dict[str, Any]:
        args = ("token", "create", "--description", "reuse test", "--ttl", ttl, *extra)
        result = cli(*args, *rootfs_args(node), "-o", "json")
        assert result.code == 0, result.stderr
        return result.json()

    first = create("--reuse-if-valid-for", "30m")
    assert (first["reused"], first["changed"]) == (False, True)
    assert first["caCertHash"] == details["caCertHash"]
    assert stored(node, first["id"]) is not None
    again = create("--reuse-if-valid-for", "30m")
    assert (again["reused"], again["changed"], again["token"]) == (True, False, first["token"])
    assert again["expires"] == first["expires"]
    planned = create("--reuse-if-valid-for", "30m", "--dry-run")
    assert (planned["reused"], planned["changed"], planned["token"]) == (True, False, first["token"])
    # Not valid long enough (1h token, 2h wanted): a new one; a dry run only says it would make one.
    too_short = create("--reuse-if-valid-for", "2h", "--dry-run")
    assert (too_short["reused"], too_short["changed"]) == (False, False)
    assert too_short["token"] != first["token"] and stored(node, too_short["id"]) is None
    renewed = create("--reuse-if-valid-for", "2h", ttl="3h")
    assert renewed["reused"] is False and renewed["token"] != first["token"]
    # Another purpose (usages) is never reused.
    other = create("--reuse-if-valid-for", "1m", "--usages", "signing")
    assert other["reused"] is False and other["token"] not in (first["token"], renewed["token"])
    # The latest-expiring of the matching tokens (3h against 1h) is the one reused.
    assert create("--reuse-if-valid-for", "1m")["token"] == renewed["token"]


def test_generate_prints_a_token_and_creates_nothing(
    cluster: tuple[Node, dict[str, Any]], cli: CliRunner
) -> None:
    node, _ = cluster
    result = cli("token", "generate")
    token = result.stdout.strip()
    assert result.code == 0 and TOKEN_RE.match(token)
    assert stored(node, token.split(".")[0]) is None
    assert cli("token", "generate").stdout.strip() != token


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("create", "--ttl", "5"), "--ttl"),
        (("create", "--ttl", "-1h"), "--ttl"),
        (("create", "--usages", "signing,bogus"), "--usages"),
        (("create", "--groups", "system:masters"), "--groups"),
        (("create", "--usages", "signing", "--groups", "system:bootstrappers:x"), "--groups"),
        (("create", "NotAToken.secretsecretsecre"), "TOKEN"),
        (("create", "--certificate-key", "xyz", "--print-join-command"), "--certificate-key"),
        (("create", "--certificate-key", KEY), "--print-join-command"),
        (("delete", "not-an-id-secretpart"), "argument 1"),
        (("create", "abcdef.secretsecretsecre", "--reuse-if-valid-for", "1h"), "--reuse-if-valid-for"),
        (("create", "--reuse-if-valid-for", "-1h"), "--reuse-if-valid-for"),
        (("create", "--reuse-if-valid-for", "10"), "--reuse-if-valid-for"),
    ],
)
def test_bad_arguments_are_usage_errors_that_do_not_echo_secrets(
    tmp_path: Path, cli: CliRunner, args: tuple[str, ...], says: str
) -> None:
    result = cli("token", *args, "--rootfs", str(tmp_path))
    assert result.code == 2, result.stderr
    assert says in result.stderr
    assert "secretsecre" not in result.stderr and "secretpart" not in result.stderr


def test_an_unusable_kubeconfig_is_one_line_exit_1(tmp_path: Path, cli: CliRunner) -> None:
    result = cli("token", "list", "--rootfs", str(tmp_path), "-o", "json")
    assert result.code == 1
    assert result.stderr.strip() == f"error: {tmp_path}/etc/kubernetes/admin.conf: no such file"
    assert json.loads(result.stdout)["error"]["exitCode"] == 1
