"""Runs a planned list of phases against one RunData and produces the result document."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import click

from bootstrap import __version__
from bootstrap.errors import BootstrapError, InternalError
from bootstrap.results import RESULT_API_VERSION, rootfs_field
from bootstrap.workflow.rundata import RunData
from bootstrap.workflow.tree import PhaseReport, PlannedPhase


def _not_applicable(rd: RunData, step: PlannedPhase) -> str | None:
    if step.skipped:
        return step.skipped
    return step.phase.skip_if(rd) if step.phase.skip_if else None


def run_phases(rd: RunData, command: str, make_steps: Callable[[], Sequence[PlannedPhase]]) -> dict[str, Any]:
    """Run the planned steps in order; return the result document.

    On failure the document is still emitted (JSON mode) and the error is re-raised, prefixed
    with the phase path. Planning is inside so that a config error also yields a document.
    """
    reports: list[PhaseReport] = []
    error: click.ClickException | None = None
    try:
        # Plan and validate first: bad input must leave nothing behind, not even a lock.
        steps = make_steps()
        reports += [PhaseReport(step.path, "not-run") for step in steps]
        rd.validate()
        _run_steps(rd, steps, reports)
        if rd.dry_run:
            from bootstrap.workflow import dryrun

            plan = dryrun.summary(rd, reports)
            rd.dry_run_summary = plan
            if rd.options.output == "text" and not rd.options.diff:  # with --diff, the diffs are the output
                rd.reporter.text(dryrun.render(plan))
    except click.ClickException as exc:
        error = exc
        raise
    except Exception as exc:  # a bug: the document must still say the run failed
        error = BootstrapError(f"internal error: {type(exc).__name__}: {exc}")
        raise
    finally:
        rd.close()
        document = result_document(rd, command, reports, error)
        rd.reporter.result(document)
    return document


def _run_steps(rd: RunData, steps: Sequence[PlannedPhase], reports: list[PhaseReport]) -> None:
    """Prefetch the keys the plan needs, then run each step, filling ``reports`` as it goes.

    Preflight only reads: it runs before the lock and the ledger exist, so a host that fails a
    check is left exactly as it was. The session (lock and ledger) starts with the first phase
    that may write, and only when one applies.
    """
    from bootstrap.host.ledger import recorded_run, refuse_if_locked

    if not rd.dry_run:  # a dry run takes no lock: fail fast, creating nothing, when another run holds it
        refuse_if_locked(rd.real_fs)
    applicable = [(i, s) for i, s in enumerate(steps) if _not_applicable(rd, s) is None]
    wanted = sum(s.phase.keys_needed(rd) for _, s in applicable if s.phase.keys_needed)
    if wanted > 1:
        rd.keys.prefetch(wanted - rd.keys.pending)
    # By path, not by the PREFLIGHT object: the workflow sits below the phases and must not import them.
    first_write = next((i for i, s in enumerate(steps) if s.path != "preflight"), len(steps))
    writes = any(i >= first_write for i, _ in applicable)
    try:
        for index in range(first_write):
            _run_step(rd, steps, index, reports[index])
        # A dry run writes nothing real, so it takes no lock; its ledger is in its directory, as its files.
        lock_fs = None if rd.dry_run else rd.real_fs
        with recorded_run(lock_fs, rd.fs, rd.reporter.warn) if writes else nullcontext():
            for index in range(first_write, len(steps)):
                _run_step(rd, steps, index, reports[index])
    finally:
        rd.leave_group()  # a summary a failed phase cut short is still worth saying


def _run_step(rd: RunData, steps: Sequence[PlannedPhase], index: int, report: PhaseReport) -> None:
    step = steps[index]
    reason = _not_applicable(rd, step)
    if reason is not None:
        report.status, report.skip_reason = "skipped", reason
        rd.reporter.debug(f"phase {step.path} skipped: {reason}")
    else:
        _run_phase(rd, step, report)
    if index + 1 == len(steps) or steps[index + 1].label != step.label:
        rd.leave_group(step.label)


def _run_phase(rd: RunData, step: PlannedPhase, report: PhaseReport) -> None:
    assert step.phase.run is not None
    try:
        outcomes = step.phase.run(rd)
    except BootstrapError as exc:
        report.status = "failed"
        report.details = exc.details
        exc.phase = step.path
        raise
    except Exception as exc:  # a bug: still one line, naming the phase and the input
        report.status = "failed"
        raise InternalError.of(exc, step.path, rd.options.config_file) from exc
    report.status = "ran"
    for outcome in outcomes:
        rd.reporter.info(step.label, outcome.message)
        report.messages.append(outcome.message)
        report.changed = report.changed or outcome.changed
        report.files += [rd.reported_path(f) for f in outcome.files]
        if outcome.details is not None:
            report.details = {**(report.details or {}), **outcome.details}
        if outcome.would_fail is not None:
            # Only a dry run goes past what would stop a real run; its plan must not call it fine.
            # The first such outcome is the one a real run stops at.
            report.status = "would-fail"
            if "wouldFail" not in (report.details or {}):
                report.details = {**(report.details or {}), "wouldFail": outcome.would_fail}


def result_document(
    rd: RunData, command: str, reports: list[PhaseReport], error: click.ClickException | None
) -> dict[str, Any]:
    """The run's JSON document. Every path in it is a host path; ``rootfs`` says where they live."""
    doc: dict[str, Any] = {
        "apiVersion": RESULT_API_VERSION,
        "kind": "RunResult",
        "version": __version__,
        "command": command,
        "rootfs": rootfs_field(rd.options.rootfs),
        "dryRun": rd.dry_run,
        "ok": error is None,
        "changed": any(r.changed for r in reports),
        "phases": [r.to_dict() for r in reports],
        "warnings": rd.reporter.warnings,
    }
    if rd.dry_run and "dry_run_dir" in rd.__dict__ and not rd.options.diff:
        doc["dryRunDir"] = str(rd.dry_run_dir)
    if rd.dry_run_summary is not None:
        doc["dryRunPlan"] = rd.dry_run_summary
    if error is not None:
        doc["error"] = {"message": error.format_message(), "exitCode": error.exit_code}
    return doc
