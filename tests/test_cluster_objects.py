"""The control-plane taints and the bootstrap token choice, decided from plain values (no run, no API)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bootstrap.cluster.objects import (
    CONTROL_PLANE_TAINT,
    TOKEN_RE,
    choose_token,
    control_plane_taints,
    token_secret,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OURS = "abcdef.0123456789abcdef"
OTHER = "ghijkl.0123456789abcdef"


@dataclass
class Taint:
    key: str
    effect: str
    value: str = ""


def secret(token: str, expiration: datetime | None) -> dict[str, Any]:
    return token_secret(token, expiration, ["authentication"], [], "test")


def test_without_configured_taints_the_node_gets_kubeadms_control_plane_taint() -> None:
    assert control_plane_taints(None) == [CONTROL_PLANE_TAINT]


def test_an_empty_taint_list_means_no_taints() -> None:
    assert control_plane_taints([]) == []


def test_configured_taints_replace_the_default_and_an_empty_value_is_left_out() -> None:
    configured = [Taint("dedicated", "NoExecute", "infra"), Taint("example.com/cp", "PreferNoSchedule")]
    assert control_plane_taints(configured) == [
        {"key": "dedicated", "value": "infra", "effect": "NoExecute"},
        {"key": "example.com/cp", "effect": "PreferNoSchedule"},
    ]


def test_a_valid_token_of_ours_is_reused_with_its_expiration() -> None:
    expires = NOW + timedelta(hours=1)
    assert choose_token([secret(OURS, expires)], None, NOW, []) == (OURS, expires)


def test_a_token_without_expiration_is_reused() -> None:
    assert choose_token([secret(OURS, None)], None, NOW, []) == (OURS, None)


def test_an_expired_token_is_not_reused() -> None:
    token, expiration = choose_token([secret(OURS, NOW - timedelta(seconds=1))], None, NOW, [])
    assert token != OURS and TOKEN_RE.match(token) and expiration is None


def test_a_token_another_spec_of_this_run_took_is_not_reused() -> None:
    existing = [secret(OURS, None), secret(OTHER, None)]
    assert choose_token(existing, None, NOW, [OURS]) == (OTHER, None)


def test_a_configured_token_is_chosen_and_keeps_its_existing_expiration() -> None:
    expires = NOW + timedelta(days=1)
    existing = [secret(OURS, None), secret(OTHER, expires)]
    assert choose_token(existing, OTHER, NOW, []) == (OTHER, expires)
    assert choose_token([], OTHER, NOW, []) == (OTHER, None)  # not there yet: created


def test_secrets_that_hold_no_token_are_ignored() -> None:
    token, expiration = choose_token([{"data": {}}, {}], None, NOW, [])
    assert TOKEN_RE.match(token) and expiration is None
