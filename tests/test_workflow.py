"""The phase tree: filtering, skipping, unknown names and help, on the real PHASES tree and a toy one."""

from __future__ import annotations

import click
import pytest

from bootstrap.phases import PHASES
from bootstrap.workflow.tree import Phase, all_paths, help_tree, normalize_path, plan

TOY = (
    Phase("a", "first", run=lambda rd: []),
    Phase("b", "parent", children=(Phase("x", "bx", run=lambda rd: []), Phase("y", "by", run=lambda rd: []))),
    Phase("c", "last", run=lambda rd: []),
)


def paths(steps: list) -> list[tuple[str, bool]]:
    return [(s.path, s.skipped is None) for s in steps]


def test_plan_without_filter_lists_every_leaf_in_order() -> None:
    assert paths(plan(TOY)) == [("a", True), ("b/x", True), ("b/y", True), ("c", True)]


def test_filter_on_parent_selects_its_subtree_only() -> None:
    assert paths(plan(TOY, only="b")) == [("b/x", True), ("b/y", True)]


def test_filter_on_child_selects_that_child_in_every_spelling() -> None:
    for spelling in ("b/y", "b y", "B/Y"):
        assert paths(plan(TOY, only=spelling)) == [("b/y", True)]
    assert paths(plan(TOY, only="b/all")) == [("b/x", True), ("b/y", True)]


def test_skip_parent_skips_its_subtree() -> None:
    assert paths(plan(TOY, skip=["b"])) == [("a", True), ("b/x", False), ("b/y", False), ("c", True)]


def test_skip_wins_over_filter() -> None:
    steps = plan(TOY, only="b", skip=["b/x"])
    assert paths(steps) == [("b/x", False), ("b/y", True)]
    assert steps[0].skipped == "skipped by --skip-phases b/x"


@pytest.mark.parametrize(("only", "skip"), [("nope", []), (None, ["b/z"]), (None, ["a", "zz"])])
def test_unknown_phase_names_are_usage_errors(only: str | None, skip: list[str]) -> None:
    with pytest.raises(click.UsageError, match="unknown phase name"):
        plan(TOY, only=only, skip=skip)


def test_normalize_path_drops_all_and_slashes() -> None:
    assert normalize_path("certs all") == "certs"
    assert normalize_path("/certs/apiserver/") == "certs/apiserver"


def test_real_tree_has_kubeadm_names_in_kubeadm_order() -> None:
    assert all_paths(PHASES)[:14] == [
        "preflight",
        "certs",
        "certs/ca",
        "certs/apiserver",
        "certs/apiserver-kubelet-client",
        "certs/front-proxy-ca",
        "certs/front-proxy-client",
        "certs/etcd-ca",
        "certs/etcd-server",
        "certs/etcd-peer",
        "certs/etcd-healthcheck-client",
        "certs/apiserver-etcd-client",
        "certs/sa",
        "kubeconfig",
    ]
    assert all_paths(PHASES)[14:19] == [
        "kubeconfig/admin",
        "kubeconfig/super-admin",
        "kubeconfig/kubelet",
        "kubeconfig/controller-manager",
        "kubeconfig/scheduler",
    ]


def test_help_tree_lists_every_phase_once() -> None:
    text = help_tree(PHASES)
    for path in all_paths(PHASES):
        name = path.rsplit("/", 1)[-1]
        assert (f"/{name}" if "/" in path else name) in text
    assert len(text.splitlines()) == len(all_paths(PHASES))
