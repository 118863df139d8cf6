"""`saetui snapshot`: render the app after its work is done and write the screen as SVG.

The app it renders neither reads nor writes the user's saved session (a script taking a snapshot must not change
what the next `saetui` opens): it shows the demo, or the Session it is given."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable

from saetui.errors import InputError, one_line
from saetui.files import atomic_write
from saetui.inputs import check_out_file, parse_size

if TYPE_CHECKING:
    from saetui.session import Session


async def _render(prompt: str, features: list[str], generate: bool, size: tuple[int, int],
                  model: str | None, saes: list[str] | None, keys: list[str], errors: list[str] | None = None,
                  chat: bool = False, session: Session | None = None) -> str:
    from saetui.steering.draft import Draft
    from saetui.steering.spec import parse_spec
    from saetui.tui.app import SaeTuiApp

    app = SaeTuiApp(session, model=model, saes=saes, prompt=prompt, restore=False, persist=False)
    if errors is not None:  # collect what the app shows as errors, for callers that must not exit 0 on one
        shown = app.notify

        def notify(message, *args, **kwargs):  # type: ignore[no-untyped-def]
            if kwargs.get("severity") == "error":
                errors.append(one_line(message))
            return shown(message, *args, **kwargs)

        app.notify = notify  # type: ignore[method-assign]
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        if chat:  # as Ctrl+T: the prompt becomes a user turn in the model's chat template, analyzed again
            app.action_toggle_chat()
            await settle(pilot)
        specs = [parse_spec(text, "feature") for text in features]
        if specs:
            app.draft = Draft(tuple(s if s.sae else s.on_sae(app.sae_name) for s in specs))
            await pilot.pause()
        if generate:
            await app.action_generate()
            await settle(pilot)
        if keys:
            await pilot.press(*keys)
            await settle(pilot)
        return app.export_screenshot()


async def settle(pilot) -> None:
    """Wait until the app is up (its panes mounted and its first load started), every worker finished (failed
    ones included), its messages were handled, and the screen stopped changing (for at most ~100 frames: an
    animation never stops)."""
    from textual.worker import WorkerFailed, WorkerState

    while getattr(pilot.app, "panes_in", 0) is None and pilot.app.is_running:  # before on_ready: no worker yet
        await pilot.pause(0.01)
    quiet = 0
    while quiet < 2:  # two rounds in a row with no worker started or running: messages they posted are handled
        # (a worker a handler has just made is PENDING until the loop starts it: it counts as busy)
        busy = any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in pilot.app.workers)
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerFailed:
            pass  # the app shows the failure; the caller looks at what it shows
        await pilot.pause()
        quiet = 0 if busy else quiet + 1
    # Widgets finish some work frames after the message that asked for it: a DataTable widens its columns when idle,
    # and a new width can resize and refill it. A picture taken (or a modal pushed) before then shows the table with
    # its columns as wide as their headers. Two pictures a pause apart that agree: the screen is done.
    shot = pilot.app.export_screenshot()
    for _ in range(100):
        await pilot.pause()
        again = pilot.app.export_screenshot()
        if again == shot:
            return
        shot = again


async def _as_interrupted(job: Awaitable[str]) -> str:
    """`job`, where Ctrl+C stays a Ctrl+C: asyncio.run answers it by cancelling this task, and the app being torn
    down mid-load could raise its own error instead (a widget query finding none: `internal error: NoMatches`)."""
    try:
        return await job
    except Exception:
        task = asyncio.current_task()
        if task is not None and getattr(task, "cancelling", lambda: 0)():  # (Python 3.11+; 3.10 raises the Ctrl+C)
            raise asyncio.CancelledError from None  # asyncio.run turns it into KeyboardInterrupt
        raise


def snapshot(prompt: str, out: str | Path, *, features: list[str] | None = None, generate: bool = False,
             size: str = "120x40", model: str | None = None, saes: list[str] | None = None,
             keys: list[str] | None = None, fail_on_error: bool = False, chat: bool = False,
             session: Session | None = None) -> Path:
    """Run the app headless, do the work, press `keys`, and write the screen to `out` as SVG; with `chat`,
    in chat mode (the prompt is a user turn in the model's chat template). `session`: show this Session (one
    already loaded is shown as it is), else the app loads `model` and `saes` (default: the demo).

    With `fail_on_error`, an error the app shows (a failed load or generation) raises InputError
    and nothing is written: a picture of an error is not a successful snapshot.
    """
    width, height = parse_size(size)
    check_out_file(Path(out))
    errors: list[str] | None = [] if fail_on_error else None
    svg = asyncio.run(_as_interrupted(_render(prompt, features or [], generate, (width, height), model, saes,
                                              keys or [], errors, chat, session)))
    if errors:
        raise InputError(f"the app showed an error, no SVG written: {errors[0]}")
    return atomic_write(out, svg)
