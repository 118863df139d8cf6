"""Regenerate screenshots/ from the real app on the bundled demo: `python scripts/export_screenshots.py`."""

from __future__ import annotations

from pathlib import Path

from saetui.tui.snapshot import snapshot

OUT = Path(__file__).resolve().parent.parent / "screenshots"
PROMPT = "The capital of France is Paris. Anna has a"
COLOR = "demo-late/416"  # the demo's most color-promoting feature (tests/demo_facts.py derives it from the weights)

SHOTS = {
    "tokens-80x24.svg": dict(size="80x24"),
    "tokens.svg": dict(size="120x40", keys=["down", "down", "down", "down"]),
    "search.svg": dict(size="120x40", keys=["f3", *"promotes Paris"]),
    "steering.svg": dict(size="120x40", features=[f"{COLOR}:6"], generate=True),
    "detail.svg": dict(size="120x40", keys=["f2", "tab", "down", "enter"]),
    "sweep.svg": dict(size="120x40", features=[f"{COLOR}:14"], keys=["f4", "ctrl+w"]),
    # the default sweep, 0,1x,2x,4x: each row titled with its coefficient in both units and its KL from the baseline
    "sweep-80x24.svg": dict(size="80x24", features=[f"{COLOR}:14"], keys=["f4", "ctrl+w"]),
    # why? after ' is' with a chosen target and a versus (typed: the keys are pressed before the predictions come)
    "why.svg": dict(size="120x40", keys=["f2", *["down"] * 5, "w", "t", *" Cairo", "enter", "v", *" Rome", "enter"]),
    # the README's circuit: Ctrl+P `circuit Paris Rome` on the capital prompt, then x on the strongest node
    "circuit-80x24.svg": dict(size="80x24", prompt="The capital of France is",
                              keys=["ctrl+p", *"circuit Paris Rome", "enter", "x"]),
}

if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, kwargs in SHOTS.items():
        kwargs = dict(kwargs)
        print(snapshot(kwargs.pop("prompt", PROMPT), OUT / name, **kwargs))
