"""Create-or-update against objects that appear and vanish between our calls (the 409 race)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bootstrap.cluster.apply import APPLY_ATTEMPTS, ApiApplier, covers, replacement
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


def _cluster_info(kubeconfig: str, **extra: str) -> dict[str, Any]:
    obj = config_map("cluster-info", "kube-public", {"kubeconfig": kubeconfig, **extra})
    obj["metadata"]["resourceVersion"] = "9"
    return obj


def test_the_bootstrap_signers_keys_in_cluster_info_are_neither_compared_nor_dropped() -> None:
    desired = config_map("cluster-info", "kube-public", {"kubeconfig": "new\n"})
    signed = _cluster_info("new\n", **{"jws-kubeconfig-abcdef": "sig"})
    assert covers(signed, desired)  # a re-run with the same kubeconfig changes nothing
    stale = _cluster_info("old\n", **{"jws-kubeconfig-abcdef": "sig", "extra": "x"})
    assert not covers(stale, desired)
    body = replacement(stale, desired)
    # Ours replaced (an unknown key of ours goes), the signer's kept, the write guarded by the version.
    assert body["data"] == {"kubeconfig": "new\n", "jws-kubeconfig-abcdef": "sig"}
    assert body["metadata"]["resourceVersion"] == "9"
