"""Create-or-update against objects that appear and vanish between our calls (the 409 race)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.cluster.apply import APPLY_ATTEMPTS, ApiApplier
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
