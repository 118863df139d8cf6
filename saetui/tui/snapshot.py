"""`saetui snapshot`: render the app after its work is done and write the screen as SVG."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from saetui.errors import InputError
from saetui.files import atomic_write, can_write_in


async def _render(prompt: str, features: list[str], generate: bool, size: tuple[int, int],
                  model: str | None, saes: list[str] | None, keys: list[str], errors: list[str] | None = None,
                  chat: bool = False) -> str:
    from dataclasses import replace

    from saetui.steering.draft import Draft
    from saetui.steering.spec import SteeringSpec
    from saetui.tui.app import SaeTuiApp

    app = SaeTuiApp(model=model, saes=saes, prompt=prompt)
    if errors is not None:  # collect what the app shows as errors, for callers that must not exit 0 on one
        shown = app.notify

        def notify(message, *args, **kwargs):  # type: ignore[no-untyped-def]
            if kwargs.get("severity") == "error":
                errors.append(" ".join(str(message).split()))
            return shown(message, *args, **kwargs)

        app.notify = notify  # type: ignore[method-assign]
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        if chat:  # as Ctrl+T: the prompt becomes a user turn in the model's chat template, analyzed again
            app.action_toggle_chat()
            await settle(pilot)
        specs = [SteeringSpec.parse(text) for text in features]
        if specs:
            app.draft = Draft(tuple(s if s.sae else replace(s, sae=app.sae_name) for s in specs))
            await pilot.pause()
        if generate:
            await app.action_generate()
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
             keys: list[str] | None = None, fail_on_error: bool = False, chat: bool = False) -> Path:
    """Run the app headless, do the work, press `keys`, and write the screen to `out` as SVG; with `chat`,
    in chat mode (the prompt is a user turn in the model's chat template).

    With `fail_on_error`, an error the app shows (a failed load or generation) raises InputError
    and nothing is written: a picture of an error is not a successful snapshot.
    """
    width, height = parse_size(size)
    check_out_file(Path(out))
    errors: list[str] | None = [] if fail_on_error else None
    svg = asyncio.run(_render(prompt, features or [], generate, (width, height), model, saes, keys or [], errors, chat))
    if errors:
        raise InputError(f"the app showed an error, no SVG written: {errors[0]}")
    return atomic_write(out, svg)


MIN_SIZE, MAX_SIZE = (40, 10), (1000, 500)


def parse_size(size: str) -> tuple[int, int]:
    """`WIDTHxHEIGHT` in ASCII digits, within what the app can draw."""
    match = re.fullmatch(r"([0-9]+)[xX]([0-9]+)", size.strip())
    if match is None:
        raise InputError(f"--size must be WIDTHxHEIGHT, e.g. 120x40, got {size!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if not (MIN_SIZE[0] <= width <= MAX_SIZE[0] and MIN_SIZE[1] <= height <= MAX_SIZE[1]):
        raise InputError(f"--size {size}: width must be {MIN_SIZE[0]}..{MAX_SIZE[0]} and height {MIN_SIZE[1]}..{MAX_SIZE[1]}")
    return width, height


def check_out_file(path: Path) -> None:
    """The SVG can be written: its folder exists and is writable, and the path is not a folder."""
    if path.is_dir():
        raise InputError(f"--out {path} is a folder: give a file name, e.g. {path / 'screen.svg'}")
    folder = path.parent
    if not folder.is_dir():
        raise InputError(f"--out {path}: folder {folder} does not exist")
    if not can_write_in(folder):
        raise InputError(f"--out {path}: cannot write in {folder}")
