"""Locating the real tools the tests use; a missing tool is a failure, never a skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def tool(name: str) -> str:
    """The path of ``name``: next to this Python (the venv's console scripts) first, then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is not installed; .ci/test installs it")
    return found


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def openssl_subject(cert_pem: bytes) -> str:
    """The subject line as ``openssl x509 -noout -subject -nameopt RFC2253`` prints it."""
    proc = subprocess.run(
        [tool("openssl"), "x509", "-noout", "-subject", "-nameopt", "RFC2253"],
        input=cert_pem,
        capture_output=True,
        check=True,
    )
    return proc.stdout.decode().strip().removeprefix("subject=")


# What `bootstrap` imports outside the standard library on a dry run (kubernetes is imported lazily,
# only by commands that talk to an API server).
RUNTIME_MODULES = (
    "bootstrap",
    "click",
    "jinja2",
    "markupsafe",
    "yaml",
    "_yaml",
    "cryptography",
    "cffi",
    "_cffi_backend",
    "pydantic",
    "pydantic_core",
    "typing_extensions",
    "annotated_types",
    "typing_inspection",
)
SYSTEM_PYTHON = "/usr/bin/python3"


def unprivileged_runtime(base: Path) -> list[str]:
    """A `bootstrap` command line that the user nobody can run.

    The interpreter and packages of this test run may live where only root can read (a pyenv or a
    venv under /root), so the modules `bootstrap` needs are copied to ``base`` and run with the
    system Python (same minor version, so the compiled extensions load), isolated from its own
    site-packages.
    """
    import importlib.util
    import shutil as sh

    site = base / "site"
    site.mkdir(parents=True)
    for name in RUNTIME_MODULES:
        spec = importlib.util.find_spec(name)
        assert spec is not None, f"{name} is not installed in the test environment"
        if spec.origin in (None, "built-in"):
            continue
        origin = Path(spec.origin)
        if spec.submodule_search_locations:
            sh.copytree(origin.parent, site / name, ignore=sh.ignore_patterns("__pycache__"))
        else:
            sh.copy2(origin, site / origin.name)
    templates = Path(__file__).resolve().parent.parent / "templates"
    if templates.is_dir() and not (site / "bootstrap/templates").exists():
        sh.copytree(templates, site / "bootstrap/templates")
    for path in [base, *base.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert Path(SYSTEM_PYTHON).exists(), f"{SYSTEM_PYTHON} is missing; .ci/test installs python3"
    return [
        SYSTEM_PYTHON,
        # -I -S: nothing from the system Python's own site-packages (which may hold click, yaml,
        # pydantic ...): every module must come from the copies above, as on a fresh machine.
        "-I",
        "-S",
        "-c",
        f"import sys; sys.path.insert(0, {str(site)!r}); from bootstrap.cli.main import main; main()",
    ]


def wait_for(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``condition`` until it returns something truthy (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or condition}; last error: {last!r}"
            )
        time.sleep(interval)


# Scratch for runs that write many small files and fsync each (certificates, the ledger): on tmpfs
# fsync costs nothing, on a disk about a millisecond. Only for tests where durability across a power
# loss is not what is checked (a SIGKILLed process loses nothing of what it wrote either way).
MEMORY_FS = Path("/dev/shm")
MEMORY_FS_MIN_FREE = 256 << 20


def memory_scratch_root() -> Path | None:
    """A tmpfs directory to make scratch directories in, or None (then use the usual temp dir)."""
    try:
        if MEMORY_FS.is_dir() and os.access(MEMORY_FS, os.W_OK | os.X_OK):
            stats = os.statvfs(MEMORY_FS)
            if stats.f_bavail * stats.f_frsize >= MEMORY_FS_MIN_FREE:
                return MEMORY_FS
    except OSError:
        pass
    return None


def run_dry_run_keeping(args: list[str], kept: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``args`` (a ``bootstrap … --dry-run``) with ``BOOTSTRAP_DRYRUN_DIR=kept``: the files the run
    would write stay there, at their host paths, for the test to read."""
    env = {**os.environ, "BOOTSTRAP_DRYRUN_DIR": str(kept)}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)


def live_processes(matches: Callable[[Path, list[str]], bool]) -> list[int]:
    """Pids of the live (not zombie) processes for which ``matches(/proc/PID, stat fields after the
    command name)`` holds: state, ppid, pgrp, ..."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] not in ("Z", "X") and matches(entry, fields):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found
