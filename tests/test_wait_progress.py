"""The wait's progress display: a table redrawn in place on a terminal, a line per change otherwise."""

from __future__ import annotations

import io

from bootstrap.wait.progress import LineProgress, Row, TableProgress, progress_for


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def row(state: str = "waiting", health: str = "connection refused", elapsed: float = 1.0) -> Row:
    return Row("kube-scheduler", "Running", state == "healthy", 0, health, state, elapsed)


def test_line_progress_prints_only_state_changes() -> None:
    out = io.StringIO()
    progress = LineProgress(out)
    progress.update([row(elapsed=1.0)], None)
    progress.update([row(elapsed=2.0)], None)  # only the clock moved
    progress.update([row("healthy", "ok", 3.0)], None)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "kube-scheduler: pod Running, not ready" in lines[0] and "connection refused" in lines[0]
    assert "health ok; healthy after 3.0s" in lines[1]


def test_line_progress_reports_the_api_server_note_once() -> None:
    out = io.StringIO()
    progress = LineProgress(out)
    for _ in range(3):
        progress.update([], "API server not reachable yet: connection refused")
    assert out.getvalue().count("API server not reachable yet") == 1


def test_table_progress_redraws_in_place_on_a_terminal() -> None:
    out = Terminal()
    progress = progress_for(out)
    assert isinstance(progress, TableProgress)
    progress.update([row()], None)
    progress.update([row("healthy", "ok")], None)
    text = out.getvalue()
    assert text.count("COMPONENT") == 2
    assert "\x1b[2F\x1b[J" in text  # moved up over the two lines drawn before, and cleared them
    assert text.rstrip().endswith("1.0s")


def test_not_a_terminal_gets_lines() -> None:
    assert isinstance(progress_for(io.StringIO()), LineProgress)
