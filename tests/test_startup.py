"""Start-up stays light: building the CLI (and so `bootstrap --help`) imports none of the heavy libraries.

Only the commands that need them pay for them (the benchmark measures the time; this checks the cause).
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("kubernetes", "pydantic", "cryptography", "jinja2", "yaml", "urllib3")


def test_building_the_cli_imports_no_heavy_library() -> None:
    script = (
        "import json, sys; from bootstrap.cli import cli;"
        "cli.main(['--help'], standalone_mode=False);"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_phase_help_lists_the_tree_without_heavy_imports() -> None:
    script = (
        "import json, sys; from bootstrap.cli import cli;"
        "cli.main(['phase', 'certs', '--help'], standalone_mode=False);"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "apiserver-etcd-client" in proc.stdout
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
