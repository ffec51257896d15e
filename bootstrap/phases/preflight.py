"""Adapter for the ``preflight`` phase."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bootstrap import preflight
from bootstrap.results import Outcome
from bootstrap.workflow import Phase

if TYPE_CHECKING:
    from bootstrap.rundata import RunData


def _run(rd: RunData) -> list[Outcome]:
    checks = [
        preflight.Check("IsPrivilegedUser", preflight.privileged_user),
        preflight.Check("NumCPU", preflight.num_cpu),
        preflight.Check("Mem", preflight.memory),
    ]
    ignored = preflight.normalize_ignored(
        [*rd.options.ignore_preflight_errors, *rd.config.init.node_registration.ignore_preflight_errors]
    )
    for warning in preflight.run_checks(checks, ignored):
        rd.reporter.warn(warning)
    return [Outcome(False, "Running pre-flight checks: passed")]


PREFLIGHT = Phase(name="preflight", help="Run pre-flight checks", run=_run)
