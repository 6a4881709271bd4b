"""Live SLURM integration test (tests/slurm/run_local_slurm_test.sh) as a pytest test.

It installs and starts a one-node SLURM cluster on localhost (root, apt), so it only runs when
asked for: ``pytest -m slurm tests/test_slurm.py`` or ``HRSA_SLURM_TEST=1``. It is skipped, with
the reason, when SLURM cannot be installed or started here. CI calls tests/slurm/ci.sh directly.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "slurm" / "run_local_slurm_test.sh"
SKIPPED = 77  # the script's exit status when SLURM cannot be installed or started


def _requested(config) -> bool:
    return os.environ.get("HRSA_SLURM_TEST") == "1" or "slurm" in (
        config.getoption("markexpr") or ""
    )


@pytest.mark.slurm
@pytest.mark.slow
def test_workflow_runs_on_a_live_slurm_cluster(request, tmp_path):
    if not _requested(request.config):
        pytest.skip(
            "live SLURM test: run `pytest -m slurm tests/test_slurm.py` or tests/slurm/ci.sh"
        )
    if os.geteuid() != 0:
        pytest.skip(
            "live SLURM test needs root (installs slurm-wlm/munge, starts slurmctld/slurmd)"
        )
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.skip("live SLURM test: no sbatch and no apt-get to install SLURM")
    env = {**os.environ, "HRSA_SLURM_WORKDIR": str(tmp_path / "work")}
    proc = subprocess.run(
        ["timeout", "-k", "30", os.environ.get("HRSA_SLURM_TEST_TIMEOUT", "1800"), str(SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
    )
    out = proc.stdout + proc.stderr
    if proc.returncode == SKIPPED:
        pytest.skip("SLURM cannot be installed or started here:\n" + out[-2000:])
    assert proc.returncode == 0, out[-8000:]
    assert "PASSED" in out
