"""The shared run data every phase sees, built lazily once per run.

Dry-run lives here, not in the phases: in dry-run the filesystem root points at a temporary
directory (seeded with the files that already exist, so the plan shows what would really change),
and phases write there exactly as they would for real.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrap.fsutil import Rootfs
from bootstrap.output import Reporter

if TYPE_CHECKING:
    from bootstrap.config import Config
    from bootstrap.pki import KeySource, PkiSettings

KUBERNETES_DIR = "/etc/kubernetes"
DRYRUN_DIR_ENV = "BOOTSTRAP_DRYRUN_DIR"


@dataclass
class RunOptions:
    """What the command line asked for; everything else is derived from it."""

    config_file: Path | None = None
    overrides: dict[str, object] = field(default_factory=dict)
    rootfs: Path | None = None
    dry_run: bool = False
    output: str = "text"
    verbose: bool = False
    ignore_preflight_errors: list[str] = field(default_factory=list)


class RunData:
    """Config, paths, key source and reporter for one run; each built on first use."""

    def __init__(self, options: RunOptions, reporter: Reporter | None = None) -> None:
        self.options = options
        self.reporter = reporter or Reporter(options.output, verbose=options.verbose)
        self.started = datetime.now(UTC).replace(microsecond=0)
        self._keys: KeySource | None = None

    @property
    def dry_run(self) -> bool:
        return self.options.dry_run

    @cached_property
    def config(self) -> Config:
        from bootstrap.config import load_config

        cfg = load_config(self.options.config_file, self.options.overrides)
        for warning in cfg.warnings:
            self.reporter.warn(warning)
        return cfg

    @cached_property
    def real_fs(self) -> Rootfs:
        """The filesystem a real run would touch (``--rootfs`` or /)."""
        return Rootfs(self.options.rootfs)

    @cached_property
    def fs(self) -> Rootfs:
        """Where this run reads and writes: the real filesystem, or the dry-run directory."""
        if not self.dry_run:
            return self.real_fs
        return Rootfs(self.dry_run_dir)

    @cached_property
    def dry_run_dir(self) -> Path:
        base = os.environ.get(DRYRUN_DIR_ENV)
        if base:
            root = Path(base)
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
        else:
            root = Path(tempfile.mkdtemp(prefix="bootstrap-init-dryrun-"))
        for host_dir in (KUBERNETES_DIR, self.config.cert_dir):
            self._seed(host_dir, root)
        self.reporter.info("dryrun", f"Writing files to {root} instead of the real paths")
        return root

    def _seed(self, host_dir: str, root: Path) -> None:
        """Copy what exists at ``host_dir`` so dry-run sees existing certs as existing."""
        source = self.real_fs.path(host_dir)
        target = Rootfs(root).path(host_dir)
        if source.is_dir() and not target.exists():
            shutil.copytree(source, target, symlinks=True)

    def host_path(self, host: str | Path) -> Path:
        """Where a host path lives for this run (rootfs and dry-run applied)."""
        return self.fs.path(host)

    @property
    def kubernetes_dir(self) -> Path:
        return self.host_path(KUBERNETES_DIR)

    @property
    def cert_dir(self) -> Path:
        return self.host_path(self.config.cert_dir)

    @cached_property
    def pki_settings(self) -> PkiSettings:
        from bootstrap.pki_settings import pki_settings_from_config

        return pki_settings_from_config(self.config, self.started)

    @property
    def keys(self) -> KeySource:
        if self._keys is None:
            from bootstrap.pki import KeySource

            self._keys = KeySource(self.pki_settings.encryption_algorithm)
        return self._keys

    def close(self) -> None:
        if self._keys is not None:
            self._keys.close()
            self._keys = None
