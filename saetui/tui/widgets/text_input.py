"""Input and TextArea whose editing keys (backspace, arrows, ctrl+k...) run in order with the characters typed.

Textual inserts a typed character in the focused widget's `_on_key`, but runs a bound key (backspace is a binding
of both) only once its Key event has bubbled from the widget up to the app. Keys that arrive in one read, as they
do over a slow SSH link or from a paste-like burst, are each forwarded to the widget before the first has bubbled
up, so `6 4 backspace backspace 3 0` became "0" in the max-tokens box: the character after a backspace went in
before the backspace ran (Textual issue #6605, open; pull request #6631 proposes this same fix upstream).

Here the widget's own non-priority bindings run inside `_on_key`, through the app's `run_action` as the app
would run them. Priority bindings are checked by the app before the key reaches the widget, and the focused
widget is the first namespace of the binding chain anyway, so which action a key runs does not change, only
when. Used for every text box saetui shows (import these in place of textual.widgets'), the command palette's
included (saetui/tui/commands.py puts CommandInput in it).
"""

from __future__ import annotations

from textual import events
from textual.command import CommandInput as _CommandInput
from textual.widgets import Input as _Input
from textual.widgets import TextArea as _TextArea


class _KeysInOrder:
    """Mixin: run the widget's own non-priority binding for a key in `_on_key`, before the next key arrives."""

    async def _on_key(self, event: events.Key) -> None:
        widget = self  # an Input or a TextArea (the mixin comes first in their bases)
        bindings = widget._bindings
        if widget.app._keymap:  # as Screen._binding_chain applies the app's keymap (to a copy)
            bindings = bindings.copy()
            bindings.apply_keymap(widget.app._keymap)
        for binding in bindings.key_to_bindings.get(event.key, ()):
            if not binding.priority and await widget.app.run_action(binding.action, widget):
                event.stop()
                event.prevent_default()  # the app must not run it a second time when the event bubbles up
                widget._restart_blink()
                return
        await super()._on_key(event)  # type: ignore[misc]


class Input(_KeysInOrder, _Input):
    """textual.widgets.Input, editing keys in order with typed characters; out of focus, it shows its value from
    the start."""

    def on_blur(self) -> None:
        # Textual keeps the view where typing left it: "0.75" in a 4-cell box read ".75" (the cursor cell after it
        # took one). Only the view moves: the cursor stays, so typing after the terminal regains focus goes on
        # where it was.
        self.scroll_to(x=0, animate=False, immediate=True)
        self.refresh()  # the scroll alone did not repaint the line


class TextArea(_KeysInOrder, _TextArea):
    """textual.widgets.TextArea, editing keys in order with typed characters."""


class CommandInput(_KeysInOrder, _CommandInput):
    """textual.command.CommandInput (the command palette's box), editing keys in order with typed characters."""
