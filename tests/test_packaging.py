"""The wheel: templates ship inside it and are found by a normal install run outside the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    (built,) = out.glob("kube_bootstrap-*.whl")
    return built


def test_wheel_contains_the_package_and_every_template(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "bootstrap/cli/main.py" in names
    templates = sorted(p.name for p in (REPO / "templates").glob("*.j2"))
    assert templates
    for template in templates:
        assert f"bootstrap/templates/{template}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "bootstrap = bootstrap.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_finds_its_templates_outside_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import bootstrap, bootstrap.components.template_dir as t;"
        "assert bootstrap.__file__.startswith(sys.argv[1]), bootstrap.__file__;"
        "print(t.templates_dir())"
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", script, str(target)],
        cwd=work,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == target / "bootstrap" / "templates"
    render = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from bootstrap.cli.main import main; main(['phase', 'manifests', '--output-dir', sys.argv[2],"
        " '--node-name', 'cp1', '--advertise-address', '10.0.0.1'])"
    )
    out = tmp_path / "manifests"
    proc = subprocess.run(
        [sys.executable, "-c", render, str(target), str(out)], cwd=work, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "etcd.yaml",
        "kube-apiserver.yaml",
        "kube-controller-manager.yaml",
        "kube-scheduler.yaml",
    ]
