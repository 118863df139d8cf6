"""The one registry of the app's actions: key, description, where it applies.

Every key binding, the footer, the F1 help and the command palette are made from `ACTIONS`, so they
cannot disagree. A widget takes its bindings with `bindings("features")`; the app with `bindings("app")`.
An action's `action` is the Textual action string run on the widget of its scope (the app for "app").
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Action:
    action: str         # Textual action string, run on the scope's widget: "analyze", "show_tab('search')"
    keys: str           # Textual key list: "f5,ctrl+r"
    description: str    # short, for the footer
    help: str           # one line for F1 and the palette
    scope: str = "app"  # "app" | "tokens" | "features" | "search" | "specs" | "detail"
    show: bool = True   # in the footer (the 80-column footer has room for a few)
    priority: bool = False  # before the focused widget's own keys (the prompt is a TextArea)
    key_display: str | None = None
    palette: bool = True    # app-scope actions offered in the command palette
    in_order: bool = False  # opens a dialog or moves the focus: runs after the keys read before it, and those
                            # after go where it leaves the focus (saetui/tui/key_order.py; the scope's class mixes
                            # in InOrderKeys, the app KeyOrder)


SCOPES = {
    "app": "everywhere",
    "tokens": "token table (F2)",
    "features": "feature lists (features of a token, search results)",
    "search": "search box (F3)",
    "specs": "steering specs (F4)",
    "detail": "feature detail",
    "why": "why? (the features behind a prediction)",
    "circuit": "circuit (how the features behind a prediction connect across SAEs)",
    "rows": "every list (tokens, features, specs, why?)",
    "pick": "token picker (t / v in why?)",
}

ACTIONS: list[Action] = [
    Action("analyze", "f5,ctrl+r", "Analyze", "analyze the prompt", priority=True),
    Action("focus_prompt", "escape", "Prompt", "back to the prompt box, from any pane", show=False, palette=False,
           in_order=True),
    # Textual binds Tab on the screen, run once the key has bubbled up from the focused widget: the keys read with it
    # (Tab End, over a slow link) went to the widget focused before. A priority binding here, it runs in order with
    # the keys around it (app.action_focus_step): those before it where they were typed, those after where it moved.
    Action("focus_step(1)", "tab", "Next", "next box or list", show=False, priority=True, palette=False),
    Action("focus_step(-1)", "shift+tab", "Previous", "previous box or list", show=False, priority=True, palette=False),
    Action("history(-1)", "ctrl+up", "Older prompt", "previous analyzed prompt", show=False, priority=True, palette=False),
    Action("history(1)", "ctrl+down", "Newer prompt", "next analyzed prompt, then the text being typed", show=False,
           priority=True, palette=False),
    # The tab headers name their keys; the footer keeps its 80 columns for the rest.
    Action("show_tab('tokens')", "f2", "Tokens", "tokens tab: per-token features", show=False),
    Action("show_tab('search')", "f3", "Search", "search tab: features by number, label, or promotes WORD", show=False),
    Action("show_tab('steer')", "f4", "Steer", "steering tab: specs and generations", show=False),
    Action("generate", "ctrl+g", "Generate", "generate baseline and steered text side by side", priority=True),
    # Not a priority binding: in the prompt and the other text boxes Ctrl+W deletes the word before the cursor, as in
    # a shell (it swept there); the sweep box binds it to its Enter (panes/steer.py SweepBox).
    Action("sweep", "ctrl+w", "Sweep", "generate one row per coefficient of the sweep box, for the highlighted spec "
           "(in a text box it deletes a word; in the sweep box it sweeps)", show=False),
    Action("stop", "ctrl+s", "Stop", "stop the generation, or a download (finished files are kept)", priority=True),
    Action("toggle_chat", "ctrl+t", "Chat", "chat mode on/off: the prompt is a user turn in the model's chat template",
           show=False, priority=True),
    Action("continue_chat(0)", "f6", "Keep baseline", "chat: keep the baseline reply as the assistant's turn; type the next user turn",
           show=False, priority=True),
    Action("continue_chat(1)", "f7", "Keep steered", "chat: keep the steered reply as the assistant's turn; type the next user turn",
           show=False, priority=True),
    Action("next_sae", "ctrl+n", "Next SAE", "show the next loaded SAE's features", show=False, priority=True),
    Action("health", "f8", "Health", "SAE health on a corpus: L0, FVU, the loss with each SAE spliced in, dead/dense latents",
           show=False, priority=True),
    Action("help", "f1", "Help", "this list of keys"),
    Action("quit", "ctrl+q", "Quit", "save the session and quit", priority=True, palette=False),
    # token table
    Action("next_sae_here", "s", "SAE", "show the next loaded SAE's features", scope="tokens"),
    Action("extend(1)", "shift+down", "Span", "select a span of tokens: its features from every SAE, by max over the span",
           scope="tokens", show=False),
    Action("extend(-1)", "shift+up", "Span", "extend the span upwards (a plain arrow key ends the span)", scope="tokens", show=False),
    Action("why", "w", "Why?", "which features drive the model's prediction after this token (attribution, "
           "checked by ablation)", scope="tokens", in_order=True),
    Action("heat", "h", "Heat", "heat line of this token's strongest feature in the shown SAE (h on it again: off)",
           scope="tokens"),
    Action("dense", "d", "Dense", "dense features (fire on > 10% of indexed tokens) in place in the side list, or moved last and dimmed",
           scope="tokens", show=False),
    # feature lists
    Action("open", "enter", "Open", "open the feature's detail", scope="features", show=False, in_order=True),
    Action("steer", "a", "Add", "add the feature to steering", scope="features"),
    Action("heat", "h", "Heat", "heat line: the feature's activation on every token (h again: off)", scope="features"),
    Action("dense", "d", "Dense", "token's features: dense ones (fire on > 10% of indexed tokens) in place, or moved last and dimmed",
           scope="features", show=False),
    Action("label", "l", "Label", "label the feature (saved beside its index)", scope="features", in_order=True),
    # search box
    Action("results", "down", "Results", "move to the results", scope="search", show=False, in_order=True),
    # steering specs
    Action("toggle", "space", "On/off", "switch the spec on/off", scope="specs", key_display="␣"),
    Action("nudge(1)", "plus,equals_sign", "Coef", "raise the coefficient by one step (a quarter of the max activation when an index knows it)",
           scope="specs", key_display="+/-"),
    Action("nudge(-1)", "minus", "Coef -", "lower the coefficient by one step", scope="specs", show=False),
    Action("cycle_mode", "m", "Mode", "cycle add / clamp / ablate", scope="specs", show=False),
    Action("cycle_scope", "o", "Scope", "cycle the scope: all / prompt / generated tokens", scope="specs", show=False),
    Action("remove", "delete,backspace", "Remove", "remove the spec", scope="specs", key_display="del", show=False),
    Action("undo", "u,ctrl+z", "Undo", "undo the last change to the specs (a removal, toggle, coefficient, mode, scope, "
           "added feature or preset)", scope="specs", show=False),
    # feature detail
    Action("steer", "a", "Add", "add the feature to steering", scope="detail"),
    Action("label", "l", "Label", "label the feature (saved beside its index)", scope="detail", in_order=True),
    Action("close", "escape,q", "Close", "close the detail", scope="detail"),
    # why? screen
    Action("open", "enter", "Open", "open the feature's detail", scope="why", show=False, in_order=True),
    Action("pick('target')", "t", "Target", "choose the token to explain: one of the model's top predictions there, "
           "or type one", scope="why", in_order=True),
    Action("pick('versus')", "v", "Versus", "explain logit(target) - logit(versus): choose the versus token (none: "
           "the target alone)", scope="why", in_order=True),
    Action("steer(1)", "a", "Push up", "add the feature to steering signed to push the explained value up (the measured "
           "ablation's way where it disagrees with attribution); again: unchanged", scope="why"),
    Action("steer(-1)", "A", "Push down", "add it signed to push the explained value down (a feature already in "
           "steering is turned around)", scope="why"),
    Action("close", "escape,q", "Close", "close", scope="why"),
    Action("circuit", "c", "Circuit", "the feature circuit of this prediction across the SAEs (its target and versus)",
           scope="why", in_order=True),
    # circuit screen
    Action("move('up')", "up", "Up", "the node above: in the cell, then in the SAE before", scope="circuit", show=False),
    Action("move('down')", "down", "Down", "the node below: in the cell, then in the SAE after", scope="circuit", show=False),
    Action("move('left')", "left", "Left", "the nearest node at an earlier token", scope="circuit", show=False),
    Action("move('right')", "right", "Right", "the nearest node at a later token", scope="circuit", show=False),
    Action("ablate", "x", "Ablate", "ablate the selected node alone: the metric's measured change", scope="circuit"),
    Action("open", "enter", "Open", "open the feature's detail", scope="circuit", show=False, in_order=True),
    Action("close", "escape,q", "Close", "close (a circuit still being found is dropped)", scope="circuit"),
    # every list with a row cursor (saetui/tui/widgets/row_table.py); PageUp/PageDown are DataTable's own
    # (Up/Down stay DataTable's own, not priority bindings: a priority key runs as it arrives and overtakes the keys
    # typed before it that are still bubbling up to the app, e.g. Home, Down, Down sent at once ended on row 0)
    Action("scroll_top", "home", "First", "first row (PageUp/PageDown: a page)", scope="rows", show=False),
    Action("scroll_bottom", "end", "Last", "last row", scope="rows", show=False),
    # token picker (why?: t / v)
    # priority: run as the key arrives, before an Enter read with it submits the box (Down Enter picked the old one)
    Action("move(1)", "down", "Next", "next prediction", scope="pick", show=False, priority=True),
    Action("move(-1)", "up", "Previous", "previous prediction", scope="pick", show=False, priority=True),
    Action("choose", "enter", "Choose", "the token typed, or else the highlighted prediction", scope="pick"),
    Action("close", "escape", "Cancel", "keep the current choice", scope="pick"),
]


def bindings(scope: str) -> list[Binding]:
    """The key bindings of one scope, for a widget's (or the app's) BINDINGS."""
    out = []
    for a in ACTIONS:
        if a.scope != scope:
            continue
        if a.in_order:  # one binding per key: in_order is told which key asked (key_order.py)
            out += [Binding(key, f"in_order({a.action!r}, {key!r})", a.description, show=a.show and i == 0,
                            priority=True, key_display=a.key_display) for i, key in enumerate(a.keys.split(","))]
        else:
            out.append(Binding(a.keys, a.action, a.description, show=a.show, priority=a.priority,
                               key_display=a.key_display))
    return out


def key_text(keys: str) -> str:
    """`f5,ctrl+r` -> `F5 / Ctrl+R`, as the help screen shows keys."""
    def one(key: str) -> str:
        names = {"plus": "+", "equals_sign": "=", "minus": "-", "space": "Space", "enter": "Enter",
                 "escape": "Esc", "delete": "Del", "backspace": "Backspace", "down": "Down", "up": "Up",
                 "home": "Home", "end": "End", "left": "Left", "right": "Right"}
        parts = key.split("+")  # a letter after a modifier in capitals, as keyboards print it: Ctrl+R
        return "+".join(names.get(part, part.capitalize() if len(part) > 1 or len(parts) > 1 else part)
                        for part in parts)

    return " / ".join(one(k) for k in keys.split(","))


def help_rows() -> list[tuple[str, list[tuple[str, str]]]]:
    """(scope title, [(keys, help), ...]) for every scope, in registry order."""
    out = []
    for scope, title in SCOPES.items():
        rows = [(key_text(a.keys), a.help) for a in ACTIONS if a.scope == scope]
        if rows:
            out.append((title, rows))
    return out


def palette_actions() -> list[Action]:
    """The app-scope actions the command palette offers (by their description and help)."""
    return [a for a in ACTIONS if a.scope == "app" and a.palette]
