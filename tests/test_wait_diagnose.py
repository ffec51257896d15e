"""The diagnosis decides on typed reasons (the pod's problem kind, the API failure's reason), not on
the wording of messages."""

from __future__ import annotations

from bootstrap.cluster.apierror import ApiError, Reason
from bootstrap.wait.diagnose import Context, diagnose
from bootstrap.wait.status import PodView, Problem, judge


def context(api_error: ApiError | None) -> Context:
    return Context(kubelet_error=None, kubelet_watches=None, manifest_dir="/m", api_error=api_error)


def test_a_stale_pod_is_recognised_by_its_kind_whatever_its_text() -> None:
    view = PodView(present=True, phase="Running", ready=True)
    view.flag(Problem.STALE, "reworded: the old one is still there")
    cause = diagnose("kube-scheduler", "kube-scheduler-cp1", view, "https://x", None, [], context(None))
    assert "has not switched to the new manifest" in cause.likely_cause


def test_text_alone_does_not_make_a_pod_stale() -> None:
    view = PodView(present=True, phase="Running", ready=True)
    view.flag(Problem.NOT_READY, "the previous manifest is mentioned here but is not the problem")
    cause = diagnose("kube-scheduler", "kube-scheduler-cp1", view, "https://x", None, [], context(None))
    assert "new manifest" not in cause.likely_cause


def test_judge_marks_a_missing_pod_with_its_kind() -> None:
    view = judge(None, "cp1", None)
    assert view.problem_kind is Problem.MISSING and not view.ok


def test_an_api_server_that_answers_5xx_is_not_called_not_serving() -> None:
    missing = judge(None, "cp1", None)
    failing = context(ApiError("HTTP 503: etcd is not ready", 503))
    assert failing.api_error is not None and failing.api_error.reason is Reason.SERVER_ERROR
    cause = diagnose("kube-apiserver", "kube-apiserver-cp1", missing, "https://x", None, [], failing)
    assert "answers but fails requests (HTTP 503" in cause.likely_cause
    assert "not serving" not in cause.likely_cause


def test_an_unreachable_api_server_is_not_serving() -> None:
    missing = judge(None, "cp1", None)
    refused = context(ApiError("connection refused"))
    cause = diagnose("etcd", "etcd-cp1", missing, "http://x", None, [], refused)
    assert cause.likely_cause.startswith("kube-apiserver is not serving (connection refused)")
    assert "fix kube-apiserver first" in cause.likely_cause


def test_image_pull_events_name_the_image_before_the_mirror_pod_exists() -> None:
    # A slow kubelet may not have published the mirror pod yet; its events already say what fails.
    missing = judge(None, "cp1", None)
    image = "registry.k8s.io/kube-controller-manager:v1.34.1"
    events = [
        {"type": "Normal", "reason": "Pulling", "message": f'Pulling image "{image}"'},
        {"type": "Warning", "reason": "Failed", "message": f'Failed to pull image "{image}": not found'},
        {"type": "Warning", "reason": "Failed", "message": "Error: ErrImagePull"},
    ]
    cause = diagnose("kube-controller-manager", "kcm-cp1", missing, "https://x", None, events, context(None))
    assert cause.likely_cause.startswith(f"the image {image} cannot be pulled")


def test_a_warning_without_an_image_is_still_a_rejected_manifest() -> None:
    missing = judge(None, "cp1", None)
    events = [{"type": "Warning", "reason": "FailedCreate", "message": "invalid pod spec"}]
    cause = diagnose("kube-scheduler", "ks-cp1", missing, "https://x", None, events, context(None))
    assert cause.likely_cause == "the kubelet rejected the manifest: invalid pod spec"
