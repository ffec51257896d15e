"""Adapter for join's ``etcd-join`` phase: add this control-plane node to the stacked etcd cluster.

Wired to the etcd member helper (``bootstrap.etcd``) once that lands; until then a control-plane join
stops here with a clear message rather than writing an etcd manifest that would start a second,
separate etcd cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase

if TYPE_CHECKING:
    from bootstrap.workflow.rundata import RunData


def _run(rd: RunData) -> list[Outcome]:
    from bootstrap.errors import PhaseError

    raise PhaseError("joining the stacked etcd cluster is not available in this build yet")


def _external(rd: RunData) -> str | None:
    return "external etcd: no local etcd member" if rd.config.external_etcd else None


ETCD_JOIN = Phase(
    name="etcd-join",
    help="Add a new local etcd member as a learner, start it, and promote it to a voting member",
    run=_run,
    skip_if=_external,
)
