"""`saetui snapshot`: render the app after its work is done and write the screen as SVG."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from saetui.errors import InputError


async def _render(prompt: str, features: list[str], generate: bool, size: tuple[int, int],
                  model: str | None, saes: list[str] | None, keys: list[str]) -> str:
    from saetui.steering.spec import SteeringSpec
    from saetui.tui.app import SaeTuiApp

    app = SaeTuiApp(model=model, saes=saes, prompt=prompt)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for text in features:
            spec = SteeringSpec.parse(text)
            app.session.specs.append(spec if spec.sae else SteeringSpec(spec.feature, spec.coefficient, spec.mode, app._sae_name))
        if features:
            app.query_one("#specs").show(app.session.specs, app.session.labels)
        if generate:
            app.action_generate()
            await settle(pilot)
        if keys:
            await pilot.press(*keys)
            await settle(pilot)
        return app.export_screenshot()


async def settle(pilot) -> None:
    """Wait until every worker finished (failed ones included) and its messages were handled."""
    from textual.worker import WorkerFailed

    quiet = 0
    while quiet < 2:  # two rounds in a row with no worker running: messages they posted are handled
        busy = any(w.is_running for w in pilot.app.workers)
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerFailed:
            pass  # the app shows the failure; the caller looks at what it shows
        await pilot.pause()
        quiet = 0 if busy else quiet + 1


def snapshot(prompt: str, out: str | Path, *, features: list[str] | None = None, generate: bool = False,
             size: str = "120x40", model: str | None = None, saes: list[str] | None = None,
             keys: list[str] | None = None) -> Path:
    """Run the app headless, do the work, press `keys`, and write the screen to `out` as SVG."""
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError as exc:
        raise InputError(f"--size must be WIDTHxHEIGHT, e.g. 120x40, got {size!r}") from exc
    svg = asyncio.run(_render(prompt, features or [], generate, (width, height), model, saes, keys or []))
    path = Path(out)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(svg, encoding="utf-8")
    os.replace(tmp, path)
    return path
