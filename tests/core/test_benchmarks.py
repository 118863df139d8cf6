"""benchmarks/gpu_check.sh: the one device check runs to its end on any machine, and a failing step does not
stop the others. The dry run (slow: a couple of minutes on 2 cores) runs every benchmark's command small on
CPU, so a benchmark that breaks on a library version is seen before a GPU is lent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = ("analysis", "steering", "restart", "equal", "circuit", "index")


def _run(tmp_path: Path, *args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": python}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=1800, cwd=ROOT)


@pytest.mark.slow
def test_the_dry_run_runs_every_step_to_the_end(tmp_path):
    run = _run(tmp_path, "--dry-run")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for step in STEPS:
        assert f"== {step}:" in run.stdout and (tmp_path / "gpu_check" / f"{step}.log").is_file(), step
    assert run.stdout.count("   done in ") == len(STEPS)
    summary = run.stdout.split("== gpu_check summary")[1]
    assert "plain HF generate" in summary and "ours, add, compiled" in summary and "build:" in summary
    assert "circuit:" in summary
    assert "first steer after a restart:" in summary and "compiled step ready" in summary
    assert "equal=False" not in summary and summary.count("equal=True") == 10


def test_a_failing_step_prints_its_error_and_the_others_still_run(tmp_path):
    """A stand-in python: the analysis benchmark fails, every other command succeeds at once."""
    fake = tmp_path / "python"
    fake.write_text('#!/usr/bin/env bash\ncase "$*" in *bench_analysis*) echo "analysis exploded" >&2; exit 3;; '
                    '*) echo "ran $*";; esac\n')
    fake.chmod(0o755)
    run = _run(tmp_path, "--dry-run", python=str(fake))
    assert run.returncode == 1
    assert "analysis exploded" in run.stdout  # the failed step's log tail
    assert "gpu_check: analysis failed" in run.stderr and "failed steps: analysis" in run.stderr
    for step in STEPS[1:]:
        assert f"== {step}:" in run.stdout and f"ran benchmarks/" in (tmp_path / "gpu_check" / f"{step}.log").read_text()
    assert "== gpu_check summary" in run.stdout


def test_without_cuda_it_refuses_in_one_line(tmp_path):
    run = _run(tmp_path)  # no --dry-run, on a machine whose torch sees no CUDA (CI)
    if "gpu_check: NVIDIA" in run.stdout or run.returncode == 0:
        pytest.skip("a CUDA device is visible here")
    assert run.returncode == 2 and "no CUDA device visible to torch" in run.stderr and "--dry-run" in run.stderr
