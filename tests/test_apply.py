"""Create-or-update against objects that appear and vanish between our calls (the 409 race)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from bootstrap.cluster.apply import APPLY_ATTEMPTS, ApiApplier, covers
from bootstrap.cluster.client import ApiError, KubeApi
from bootstrap.cluster.objects import config_map
from tests.scripted_api import Answer, ScriptedApi, serving

WANTED = config_map("kubeadm-config", "kube-system", {"ClusterConfiguration": "kind: X\n"})
PATH = "/api/v1/namespaces/kube-system/configmaps"


def created() -> Answer:
    return Answer(201, {**WANTED, "metadata": {**WANTED["metadata"], "resourceVersion": "7"}})


def test_an_object_deleted_after_a_409_is_created_again(tmp_path: Path) -> None:
    # GET: absent; POST: 409 (someone created it); GET: absent again (deleted); POST: created.
    script = {
        "GET": [Answer.failure(404), Answer.failure(404)],
        "POST": [Answer.failure(409, "already exists"), created()],
    }
    with serving(ScriptedApi(script)) as api:
        applier = ApiApplier(KubeApi(api.kubeconfig(tmp_path / "kubeconfig")), deadline_seconds=5)
        outcome = applier.apply(WANTED)
    assert outcome.changed and outcome.message == "Created ConfigMap kube-system/kubeadm-config"
    assert [m for m, _ in api.requests] == ["GET", "POST", "GET", "POST"]
    assert api.requests[1][1] == PATH


def test_an_object_that_keeps_vanishing_fails_after_a_bounded_number_of_creates(tmp_path: Path) -> None:
    script = {"GET": [Answer.failure(404)], "POST": [Answer.failure(409, "already exists")]}
    with serving(ScriptedApi(script)) as api:
        applier = ApiApplier(KubeApi(api.kubeconfig(tmp_path / "kubeconfig")), deadline_seconds=5)
        with pytest.raises(ApiError) as raised:
            applier.apply(WANTED)
    assert "ConfigMap kube-system/kubeadm-config" in str(raised.value)
    assert sum(1 for m, _ in api.requests if m == "POST") == APPLY_ATTEMPTS


def test_an_object_deleted_before_the_replace_is_created_again(tmp_path: Path) -> None:
    stale = {**WANTED, "data": {"ClusterConfiguration": "old"}, "metadata": {**WANTED["metadata"]}}
    stale["metadata"]["resourceVersion"] = "3"
    script = {
        "GET": [Answer(200, stale), Answer.failure(404)],
        "PUT": [Answer.failure(404)],
        "POST": [created()],
    }
    with serving(ScriptedApi(script)) as api:
        applier = ApiApplier(KubeApi(api.kubeconfig(tmp_path / "kubeconfig")), deadline_seconds=5)
        outcome = applier.apply(WANTED)
    assert outcome.changed and outcome.message.startswith("Created ConfigMap")
    assert [m for m, _ in api.requests] == ["GET", "PUT", "GET", "POST"]


class _OneObjectApi:
    """Holds one object in memory and records what replaces it (the applier's calls, nothing more)."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.replaced: list[dict[str, Any]] = []

    def call_with_retry(self, func: Callable[[], Any], deadline: float) -> Any:
        return func()

    def read(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        return self.obj

    def replace(self, kind: str, namespace: str | None, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.replaced.append(body)
        self.obj = body
        return body


def _cluster_info(data: dict[str, str]) -> dict[str, Any]:
    stored = config_map("cluster-info", "kube-public", data)
    stored["metadata"]["resourceVersion"] = "5"
    return stored


def test_cluster_info_update_writes_our_key_and_keeps_the_signers() -> None:
    api = _OneObjectApi(_cluster_info({"kubeconfig": "old", "jws-kubeconfig-abcdef": "sig"}))
    applier = ApiApplier(cast(KubeApi, api), deadline_seconds=5)
    outcome = applier.apply(config_map("cluster-info", "kube-public", {"kubeconfig": "new"}))
    assert outcome.changed
    assert [body["data"] for body in api.replaced] == [{"kubeconfig": "new", "jws-kubeconfig-abcdef": "sig"}]


def test_cluster_info_with_only_foreign_keys_added_is_up_to_date() -> None:
    api = _OneObjectApi(_cluster_info({"kubeconfig": "same", "jws-kubeconfig-abcdef": "sig"}))
    applier = ApiApplier(cast(KubeApi, api), deadline_seconds=5)
    outcome = applier.apply(config_map("cluster-info", "kube-public", {"kubeconfig": "same"}))
    assert not outcome.changed and api.replaced == []


def test_other_config_maps_are_still_compared_whole() -> None:
    stored = config_map("kubeadm-config", "kube-system", {"ClusterConfiguration": "x", "stray": "y"})
    assert not covers(stored, config_map("kubeadm-config", "kube-system", {"ClusterConfiguration": "x"}))
    shared = _cluster_info({"kubeconfig": "x", "jws-kubeconfig-abcdef": "sig"})
    assert covers(shared, config_map("cluster-info", "kube-public", {"kubeconfig": "x"}))
    assert not covers(shared, config_map("cluster-info", "kube-public", {"kubeconfig": "y"}))
