"""A non-editable install carries the config schema: it validates a config from anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_installed_wheel_validates_the_paper_config_from_another_directory(tmp_path):
    # build from a copy: an in-tree build would leave build/ in the checkout
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("hrsa-*.whl")
    assert "hrsa/schemas/config.schema.yaml" in zipfile.ZipFile(wheel).namelist()
    target = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import sys, yaml, hrsa, hrsa.config as c\n"
        f"assert hrsa.__file__.startswith({str(target)!r}), hrsa.__file__\n"
        f"cfg = yaml.safe_load(open({str(ROOT / 'config' / 'paper.yaml')!r}))\n"
        "c.validate_config(cfg)\n"
        "print(cfg['hrsa']['permutations'], cfg['evaluation']['mteb_seed'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["50", "1016"]  # paper.yaml's value, then a schema default
