"""Keys that open a dialog (or move the focus) run in order with the keys typed around them (a part of SaeTuiApp).

Keys that arrive in one read (tmux send-keys, a paste-like burst, typing ahead over a slow SSH link) are each
forwarded by the app to the focused widget as they arrive, and a list's keys run only once their Key event has
bubbled back up to the app. So in `l mylabel Enter`, the `l` opened the label box after the letters had reached the
list behind it: `a` added a spec, `Enter` opened the feature's detail, and the box came up empty. `t Paris Enter` in
why? did the same with the token picker.

Such keys (`in_order=True` in saetui/tui/actions.py: those that open a dialog, and Escape, which moves the focus
to the prompt: `Escape End` moved the list, and the letters typed after it were lost) are priority bindings
whose action is `in_order(ACTION, KEY)`:

1. as the key arrives, the app holds every key read after it, and sends a marker (`KeysCaughtUp`) to the focused
   widget. It bubbles up the same queues as the keys sent there before it, so it reaches the app after they have
   run (`Down l` labels the row Down moved to);
2. then the app runs ACTION (which pushes a dialog, or posts the intent that makes the app push it) and sends a
   second marker behind what the action posted;
3. when that one arrives, the app waits for the dialog it pushed to be mounted, and lets the held keys go: they go
   to the dialog's box. A key held that opens a dialog too starts the same again, the rest held behind it.

Where a key before it moved the focus elsewhere (`Escape l`), the key is not the list's any more: it goes, in its
turn, to the new focus, as the keys after it do. A marker that cannot arrive (its widget was removed on the way)
lets the keys go after `STUCK_S` rather than hold them for good (a slow one, on a loaded machine, is waited for
a few periods more).
"""

from __future__ import annotations

import ast
import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from textual import events
from textual.actions import SkipAction
from textual.binding import Binding
from textual.dom import DOMNode
from textual.message import Message
from textual.widget import AwaitMount

STUCK_S = 2.0  # a marker not back by then, from a widget gone, was lost: the held keys go on without it


class KeysCaughtUp(Message):
    """A marker sent down to the focused widget: it comes back up to the app behind the keys sent there before."""

    def __init__(self, token: int, step: int) -> None:
        super().__init__()
        self.token, self.step = token, step


@dataclass
class _Wait:
    token: int
    namespace: DOMNode   # where the binding was found: its action runs there
    action: str          # Textual action string, e.g. "label" or "pick('target')"
    key: str             # the key that asked for it, given to the new focus if the focus moved before it ran
    origin: Any          # the widget focused when the key arrived
    step: int = 1
    patience: int = 4    # STUCK_S periods more to wait while its widget is there (or its dialog mounting)
    held: list[events.Event] = field(default_factory=list)  # keys read after it, in order


def _character(key: str) -> str | None:
    return key if len(key) == 1 else {"enter": "\r", "space": " ", "tab": "\t"}.get(key)


class KeyOrder:
    """Mixin for the App: `in_order` and the key holding it needs (see the module docstring)."""

    _waiting: _Wait | None = None
    _opening: AwaitMount | None = None  # the mount of the last screen pushed
    _mounting: asyncio.Task[None] | None = None  # waits for it, then lets the held keys go
    _tokens = itertools.count(1)

    def action_in_order(self, action: str, key: str) -> None:
        """An app-scope binding made with in_order=True (Escape: back to the prompt). Under a dialog the key is the
        dialog's own (Escape closes it): skipped here, it goes on to the dialog's binding."""
        app: Any = self
        if app.screen is not app.screen_stack[0]:
            raise SkipAction()
        self.in_order(app, action, key)

    def in_order(self, namespace: DOMNode, action: str, key: str) -> None:
        """Run `action` in `namespace` after the keys read before `key`, and give it the keys read after."""
        app: Any = self
        wait = _Wait(next(self._tokens), namespace, action, key, app.focused)
        if self._waiting is not None:  # not expected (held keys are not run): keep what the other one holds
            wait.held = self._waiting.held
        self._waiting = wait
        self._send(wait)
        app.set_timer(STUCK_S, lambda: self._unstick(wait))

    def push_screen(self, *args: Any, **kwargs: Any) -> Any:
        result = super().push_screen(*args, **kwargs)  # type: ignore[misc]
        if isinstance(result, AwaitMount):
            self._opening = result
        return result

    async def on_event(self, event: events.Event) -> None:
        if (self._waiting is not None and isinstance(event, (events.Key, events.Paste))
                and not event.is_forwarded):  # read from the terminal while a key waits for its turn
            self._waiting.held.append(event)
            return
        await super().on_event(event)  # type: ignore[misc]

    async def on_keys_caught_up(self, message: KeysCaughtUp) -> None:
        message.stop()
        wait, app = self._waiting, self
        if wait is None or wait.token != message.token or wait.step != message.step:
            return  # let go already (stuck), or an older marker
        if wait.step == 1:
            # a focus change asked by those keys is a callback the app runs next (Widget.focus): after it
            app.call_later(self._in_turn, wait)
            return
        opening, self._opening = self._opening, None
        if opening is None:
            await self._let_go()
            return

        async def mounted() -> None:  # not awaited here: the screen's mount can need the app's own queue
            await opening
            app.call_later(self._let_go, wait)  # the dialog mounted, its box focused: the held keys go to it

        self._mounting = asyncio.create_task(mounted())

    async def _in_turn(self, wait: _Wait) -> None:
        app: Any = self
        if self._waiting is not wait:
            return
        if app.focused is not wait.origin:  # a key before it moved the focus: it is the new focus's key now
            wait.held.insert(0, events.Key(wait.key, _character(wait.key)))
            await self._let_go()
            return
        self._opening = None
        await app.run_action(wait.action, wait.namespace)
        wait.step = 2
        self._send(wait)  # behind what the action posted (an intent the app turns into a dialog)

    def _send(self, wait: _Wait) -> None:
        app: Any = self
        target = wait.origin if wait.origin is not None else app.screen
        if not target.post_message(KeysCaughtUp(wait.token, wait.step)):  # closing: it would not come back
            app.post_message(KeysCaughtUp(wait.token, wait.step))

    async def _unstick(self, wait: _Wait) -> None:
        if self._waiting is not wait:
            return
        app: Any = self
        alive = wait.origin is None or (wait.origin.is_attached and wait.origin.is_running)  # its marker will come
        mounting = self._mounting is not None and not self._mounting.done()
        if (alive or mounting) and wait.patience > 0:  # slow (a loaded machine), not lost: wait on
            wait.patience -= 1
            app.set_timer(STUCK_S, lambda: self._unstick(wait))
            return
        if wait.step == 1:  # the keys before it are as run as they will be: its turn now
            wait.patience = 4
            await self._in_turn(wait)
            if self._waiting is wait:  # its second marker may not come either
                app.set_timer(STUCK_S, lambda: self._unstick(wait))
            return
        await self._let_go()

    async def _let_go(self, wait: _Wait | None = None) -> None:
        """The held keys, in order, as if read now; one that waits in turn holds the rest again. `wait`: only if
        that is still the one waiting."""
        if wait is not None and self._waiting is not wait:
            return
        held = self._waiting.held if self._waiting is not None else []
        self._waiting = None
        while held:
            await self.on_event(held.pop(0))
            if self._waiting is not None:
                self._waiting.held.extend(held)
                return


class InOrderKeys:
    """Mixin for a widget or screen whose bindings include `in_order=True` actions (their action is `in_order`)."""

    def action_in_order(self, action: str, key: str) -> Any:
        node: Any = self
        if not _runs(node, action) or _inner_takes(node, key):
            # as plain bindings: Textual goes on to the next namespace, and priority ones it tries from the screen
            # in, so the focused list's `l` must be left to it
            raise SkipAction()
        if isinstance(node.app, KeyOrder):
            node.app.in_order(node, action, key)
            return None
        return node.run_action(action)  # an app without the mixin (a widget test's): as a plain binding


def _inner_takes(namespace: Any, key: str) -> bool:
    """Whether a node between the focused widget and `namespace` has an in_order binding for `key`: it comes first,
    as a plain binding would (in the feature detail, `l` on its neighbours list labels the neighbour, not the
    feature shown)."""
    node = namespace.app.focused
    while node is not None and node is not namespace:
        for b in getattr(type(node), "BINDINGS", []):
            if isinstance(b, Binding) and b.key == key and b.action.startswith("in_order("):
                action, _ = ast.literal_eval(b.action.removeprefix("in_order"))
                if _runs(node, action):
                    return True
        node = node.parent
    return False


def _runs(node: Any, action: str) -> bool:
    """Whether `node` has the method of Textual action string `action` (`pick('target')`: action_pick)."""
    return callable(getattr(node, f"action_{action.split('(')[0]}", None))
