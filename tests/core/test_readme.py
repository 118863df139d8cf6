"""The README's commands run as written, on the bundled demo: every `saetui ...` line of its fenced blocks
(`$ saetui ...` in shown sessions too) that needs no Hub model, no file of the user's and no placeholder.

Run in order, in one folder, with the saetui state (saved vectors, labels, the app's session) in a fresh
place: a command may use what an earlier one saved (`contrast --save-vector` then `steer --vector`). The
README's `printf ... > FILE` lines (the prompt sets its examples read) run first, as a reader would. A command
that fails, or prints nothing, fails the test with its one-line error.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
PLACEHOLDERS = ("--model", "...", "[", "FILE", "TEXT", "SPEC", "RELEASE", "./", "<", "N ")
NO_RUN = ("saetui download", "saetui saes")  # the Hub's registry and downloads: tested in test_hub/test_discover


def readme_commands(program: str = "saetui ") -> list[str]:
    """`program` command lines of the README's fenced blocks, continuation lines joined, comments dropped."""
    commands, in_block, pending = [], False, ""
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_block, pending = not in_block, ""
            continue
        if not in_block:
            continue
        line = pending + line.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        line = line[2:] if line.startswith("$ ") else line
        if line.startswith(program):
            commands.append(line.split("  #")[0].split(" # ")[0].strip())
    return commands


def runnable(command: str) -> bool:
    return not command.startswith(NO_RUN) and not any(p in command for p in PLACEHOLDERS)


def test_the_readme_has_commands_to_run():
    runs = [c for c in readme_commands() if runnable(c)]
    assert len(runs) >= 8, runs  # the parser found them: a README reshuffle must not silently skip them all


@pytest.mark.slow
def test_every_demo_command_of_the_readme_runs_as_written(tmp_path):
    for line in readme_commands("printf "):  # the files the examples read
        subprocess.run(["bash", "-c", line], cwd=tmp_path, check=True)
    assert (tmp_path / "colors.txt").is_file()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    failed = []
    for command in filter(runnable, readme_commands()):
        argv = shlex.split(command)
        proc = subprocess.run([sys.executable, "-m", "saetui", *argv[1:]], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        if proc.returncode != 0 or not proc.stdout.strip():
            failed.append(f"{command}\n  -> exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    assert not failed, "\n".join(failed)


def python_block_after(heading: str) -> str:
    """The first ```python block after the README's `heading` line."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index(f"\n{heading}\n"):]
    start = after.index("```python\n") + len("```python\n")
    return after[start:after.index("```", start)]


@pytest.mark.slow
def test_the_readme_discover_block_runs_as_written(tmp_path):
    """The Python API's Discover example on the demo, as a reader pastes it (its vector_spec was refused: the demo's
    contrast saves a vector at two hook points, and the example named none)."""
    code = python_block_after("### Discover")
    assert "session.contrast(" in code and "session.vector_spec(" in code
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code + "\nlist(pieces)\nprint('ran to the end')"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "ran to the end" in proc.stdout, proc.stderr[-800:]
