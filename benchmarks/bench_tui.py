"""App responsiveness, measured headless with Textual's pilot against lower bounds in the same process.

    first paint     launch -> first frame in a fresh interpreter, vs a bare Textual app with one Static, runs of
                    the two interleaved, both from cached bytecode (see `first_paint`); the model loads in a
                    worker after the first paint (target <= 1.5x the bare app's)
    key latency     p95 from a key event to the screen repainted with the token table's cursor moved, and with
                    the side list of the token's features, idle and while text streams at 200 tokens/s, vs a
                    bare Textual app with two tables of the same size and rows (`_Bound`; target <= 1.5x)
    streaming       pieces/s the generation columns take in when fed as fast as possible (target >= 200)
    long prompt     rendering a 1,000-token table, and p95 key latency on it afterwards
    quit            Ctrl+Q to the process having exited, in a real process, while idle, loading the
                    model, analyzing and generating, vs a bare Textual app quitting (target <= 0.5 s)

    python benchmarks/bench_tui.py [--keys 60] [--rounds 3] [--quit-runs 3] [--sizes 120x40,80x24] [--skip-processes]
                                   [--paint-runs 10] [--first-paint-only]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import threading
import time

FIRST_PAINT = """
import time, asyncio
t0 = time.perf_counter()
{imports}
async def main():
    app = {make}
    async with app.run_test(size=(100, 30)) as pilot:
        while getattr(app, "first_paint", None) is None:  # set in on_ready: the first frame is displayed
            await asyncio.sleep(0.001)
        while hasattr(app, "panes_in") and app.panes_in is None:  # ours: the panes, mounted after the first frame
            await asyncio.sleep(0.001)
        print(app.first_paint - t0, getattr(app, "panes_in", app.first_paint) - t0)
asyncio.run(main())
"""


FIRST_PAINT_BARE = ("from textual.app import App\nfrom textual.widgets import Static\n"
                    "import time\nclass Bare(App):\n    first_paint = None\n    def compose(self):\n        yield Static('x')\n"
                    "    def on_ready(self):\n        self.first_paint = time.perf_counter()", "Bare()")
FIRST_PAINT_OURS = ("from saetui.tui.app import SaeTuiApp", "SaeTuiApp(restore=False, persist=False)")


def first_paint(sides: dict[str, tuple[str, str]], runs: int = 10,
                bytecode: bool = True) -> dict[str, tuple[float, float]]:
    """Each side's (imports, make) as medians over `runs` fresh interpreters: (seconds to the first frame, seconds
    until the panes are in). The sides take turns run by run, so a drift in the machine's load falls on both.

    `bytecode`: both run from cached bytecode, as an installed package does (pip compiles it; Python writes it on
    the first import). Where PYTHONDONTWRITEBYTECODE is set, Textual still runs from the bytecode pip wrote into
    site-packages, but saetui (an editable install) would be compiled from source at every start: the children
    get a bytecode folder of their own (PYTHONPYCACHEPREFIX, for both sides alike), written by one unmeasured run
    of each side. False: the environment as it is.
    """
    import os
    import tempfile

    codes = {name: FIRST_PAINT.format(imports=imports, make=make) for name, (imports, make) in sides.items()}
    times: dict[str, list[list[float]]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory() as pycache:
        env = dict(os.environ)
        if bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = pycache

        def once(code: str) -> list[float]:
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
            return [float(v) for v in out.stdout.split()[-2:]]

        if bytecode:
            for code in codes.values():
                once(code)
        for _ in range(runs):
            for name, code in codes.items():
                times[name].append(once(code))
    return {name: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)) for name, ts in times.items()}


def print_first_paint(runs: int) -> None:
    import os

    for bytecode in (True, False) if os.environ.get("PYTHONDONTWRITEBYTECODE") else (True,):
        paints = first_paint({"ours": FIRST_PAINT_OURS, "bare": FIRST_PAINT_BARE}, runs, bytecode)
        (ours, ours_panes), (bare, _unused) = paints["ours"], paints["bare"]
        if bytecode:
            print(f"first paint: ours {ours * 1e3:.0f} ms, bare Textual app {bare * 1e3:.0f} ms, ratio {ours / bare:.2f}x "
                  f"(target <= 1.5x); the panes in at {ours_panes * 1e3:.0f} ms ({ours_panes / bare:.2f}x; the model "
                  f"loads after that); medians of {runs} interleaved runs from cached bytecode")
        else:
            print(f"  without cached bytecode (PYTHONDONTWRITEBYTECODE is set: saetui compiled at each start, Textual "
                  f"not): ours {ours * 1e3:.0f} ms, bare {bare * 1e3:.0f} ms, {ours / bare:.2f}x")


def p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(0.95 * len(values)))]


async def key_latencies(app, pilot, keys: int, side: list[float] | None = None, seed: int = 0) -> list[float]:
    """Seconds from a key event to the first screen update that shows the table's cursor moved, for `keys` up/down
    presses.

    With `side` given, also appends the seconds until the first update that shows the side list filled with the new
    token's features (it follows the cursor one frame later, so a held arrow key only fills it where it rests).
    Updates are timed where the app hands a rendered frame to the terminal driver (`App._display`, after the
    compositor has rendered it), with the cursor row and the side list's rows at that moment; a frame counts for a
    key only once it holds the key's effect. (Waiting for `call_after_refresh` instead timed whatever ran after
    the frame too, in an order that depended on how far each app's messages bubble.) The key is injected like a
    terminal's (simulate_key) rather than with pilot.press, which waits for the message queue to drain and never
    does while text streams in.

    Between keys: 10 ms and a random part of a frame period, the same sequence for both apps (`seed`). A screen
    repaints only on Textual's 60 Hz grid of frame slots, so a key waits 0-16.7 ms for the next slot, set by where
    it lands in the period. With a fixed gap that phase followed each app's own rhythm (its side-list frame, then
    10 ms), the same keys of a round kept landing just after a slot or just before one, and a sub-frame p95 was
    a count of how many of them fell just after (ours 3.8 ms vs 2.1 ms one run, 2.2 vs 2.4 the next); a random
    phase gives both apps the same spread of waits, as keys from a person (or key repeat) do.
    """
    from textual.screen import UPDATE_PERIOD

    rng = random.Random(seed)
    table = app.query_one("#token-table")
    features = app.query_one("#token-features")
    table.focus()
    await pilot.pause()
    frames: list[tuple[float, int, object]] = []  # (when, cursor row, side-list rows) of each frame displayed
    display = app._display

    def timed_display(screen, renderable) -> None:
        display(screen, renderable)
        if renderable is not None:
            frames.append((time.perf_counter(), table.cursor_row, features._rows))

    app._display = timed_display

    async def first_frame(after: float, shows) -> float:
        while True:
            for when, row, rows in frames:
                if when >= after and shows(row, rows):
                    return when
            await asyncio.sleep(0.0002)

    out = []
    try:
        for i in range(keys):
            before, rows = table.cursor_row, features._rows  # show() replaces the list: a new one means filled again
            frames.clear()
            start = time.perf_counter()
            app.simulate_key("down" if i % 10 < 5 else "up")
            out.append(await first_frame(start, lambda row, _: row != before) - start)
            if side is not None:
                side.append(await first_frame(start, lambda _, shown: shown is not rows) - start)
            await asyncio.sleep(0.01 + rng.random() * UPDATE_PERIOD)
    finally:
        app._display = display
    return out


class _Bound:
    """The lower bound the key figures are divided by: a bare Textual app with a DataTable of the same size and
    rows as our token table and a second table beside it (the side list), refilled from a precomputed list when
    the cursor moves, one frame after it, as ours is; while streaming, two text columns below take the same
    200 pieces/s, repainted at most REFRESH_HZ times a second."""

    @staticmethod
    def make(table_rows: list[tuple], side_rows: list[list[tuple]], sizes: dict[str, tuple[int, int]]):
        from rich.text import Text
        from textual.app import App
        from textual.containers import Horizontal
        from textual.message import Message
        from textual.widgets import DataTable, Static

        from saetui.tui.widgets.steering_panel import GenerationColumn

        class Piece(Message):
            def __init__(self, row: int, text: str) -> None:
                super().__init__()
                self.row, self.text = row, text

        class Side(DataTable):
            _rows: list = []

        def css(name: str) -> str:
            w, h = sizes[name]
            return f"#{name} {{ width: {w}; height: {h}; }}"

        class Bare(App):
            CSS = "\n".join(css(n) for n in sizes) + "\nHorizontal { height: auto; }"
            streaming = False

            def compose(self):
                with Horizontal():
                    yield DataTable(id="token-table", cursor_type="row", zebra_stripes=True)
                    yield Side(id="token-features", cursor_type="row")
                with Horizontal():
                    yield Static(id="gen-a")
                    yield Static(id="gen-b")

            def on_mount(self) -> None:
                table = self.query_one("#token-table", DataTable)
                table.add_columns("#", "token", "top features")
                table.add_rows(table_rows)
                self.query_one(Side).add_columns("feature", "act", "about")
                self._texts, self._dirty = [Text(), Text()], False
                self._columns = [self.query_one("#gen-a", Static), self.query_one("#gen-b", Static)]
                self.set_interval(1 / GenerationColumn.REFRESH_HZ, self._flush)
                self._pending = False

            def on_data_table_row_highlighted(self, event) -> None:
                if event.data_table.id == "token-table" and not self._pending:
                    self._pending = True
                    self.call_after_refresh(self._refill)

            def _refill(self) -> None:
                self._pending = False
                side = self.query_one(Side)
                rows = side_rows[self.query_one("#token-table", DataTable).cursor_row % len(side_rows)]
                side.clear()
                side.add_rows(rows)
                side._rows = list(rows)

            def on_piece(self, message: Piece) -> None:  # noqa: D102
                self._texts[message.row].append(message.text)
                self._dirty = True

            def _flush(self) -> None:
                if self._dirty:
                    self._dirty = False
                    for column, text in zip(self._columns, self._texts):  # held, not queried: it may tick at exit
                        column.update(text.copy())

            def start_streaming(self) -> threading.Event:
                stop = threading.Event()

                def feed() -> None:
                    while not stop.is_set():
                        for row in (0, 1):
                            self.post_message(Piece(row, " tok"))
                        time.sleep(1 / 200)

                threading.Thread(target=feed, daemon=True).start()
                return stop

        return Bare()


def _rows_of(app) -> tuple[list[tuple], list[list[tuple]], dict[str, tuple[int, int]]]:
    """Our token table's rows and every token's side-list rows, as plain cells, and the two tables' sizes."""
    table = app.query_one("#token-table")
    rows = [tuple(table.get_row_at(i)) for i in range(table.row_count)]
    result, labels = app.session.last, app.session.labels
    tagged = len(result.saes) > 1
    side = [[(f"{s.name}/{f}" if tagged else str(f), f"{a:.2f}", labels.get((s.name, f), ""))
             for s in result.saes for f, a in s.per_token[i]] for i in range(len(result.tokens))]
    sizes = {name: tuple(app.query_one(f"#{name}").outer_size) for name in ("token-table", "token-features")}
    return rows, side, sizes


async def _bound_round(rows, side, sizes, size, keys: int, streaming: bool, seed: int) -> tuple[list[float], list[float]]:
    app = _Bound.make(rows, side, sizes)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        stop = app.start_streaming() if streaming else None
        if stop is not None:
            await pilot.pause(0.2)
        side_times: list[float] = []
        times = await key_latencies(app, pilot, keys, side_times, seed)
        if stop is not None:
            stop.set()
    return times, side_times


async def measure(keys: int, size: tuple[int, int], rounds: int) -> dict[str, tuple[float, float]]:
    """Each key figure as (ours, the bound's), p95s over `rounds` interleaved rounds of `keys` keys, median of rounds."""
    from saetui.session import Session
    from saetui.steering.generate import Piece
    from saetui.tui.app import SaeTuiApp
    from saetui.tui.messages import GenerationPiece
    from saetui.tui.snapshot import settle

    class Streaming(Session):
        """Generation at a fixed 200 tokens/s per column until stopped."""

        def generate(self, prompt, rows=None, *, stop_event=None, **settings):
            while not stop_event.is_set():
                for row in (0, 1):
                    yield Piece(row, 7, " tok")
                time.sleep(1 / 200)

    figures: dict[str, list[tuple[float, float]]] = {}

    def add(name: str, ours: list[float], bound: list[float]) -> None:
        figures.setdefault(name, []).append((p95(ours) * 1e3, p95(bound) * 1e3))

    session = Streaming()
    for round_ in range(rounds):
        # freeze_heap as `saetui` runs it: a full collection walking the model's ~500k objects is a 250 ms stop
        app = SaeTuiApp(session, prompt="The capital of France is Paris. Anna has a red cat.", restore=False, freeze_heap=True)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            rows, side, sizes = _rows_of(app)
            side_idle: list[float] = []
            idle = await key_latencies(app, pilot, keys, side_idle, round_)
            await app.action_generate()
            await pilot.pause(0.2)
            side_busy: list[float] = []
            busy = await key_latencies(app, pilot, keys, side_busy, round_)
            app.action_stop()
            await settle(pilot)
            steer = app.steer
            if round_ == 0:
                # Streaming throughput: 2,000 pieces posted from a thread as fast as possible.
                steer.generated = [[], []]
                n = 2000
                run = steer._run  # the current generation's pieces are the ones taken in
                start = time.perf_counter()
                threading.Thread(target=lambda: [steer.post_message(GenerationPiece(i % 2, " tok", 7, run)) for i in range(n)]).start()
                while len(steer.generated[0]) + len(steer.generated[1]) < n:
                    await pilot.pause(0.01)
                figures["streaming pieces/s"] = [(n / (time.perf_counter() - start), 200.0)]

            # A 1,000-token prompt's table (the demo's context is 256, so the rows are a real result repeated).
            from saetui.sae.analyzer import AnalysisResult, SAEResult

            base = app.session.last
            reps = 1000 // len(base.tokens) + 1
            tokens = [type(t)(i, t.id, t.text, t.special) for i, t in enumerate(base.tokens * reps)][:1000]
            s0 = base.saes[0]
            long = AnalysisResult("long", tokens, [SAEResult(s0.name, s0.hook, s0.d_sae, (s0.per_token * reps)[:1000],
                                                              s0.top_features, (s0.reconstruction * reps)[:1000], s0.fvu, s0.mean_l0)])
            start = time.perf_counter()
            app.query_one("#token-table").show(long, s0.name)
            await pilot.pause()
            long_render = time.perf_counter() - start
            long_keys = await key_latencies(app, pilot, keys, [], round_)  # each key waits for the side list, as the bound's
            long_rows = [tuple(app.query_one("#token-table").get_row_at(i)) for i in range(1000)]
        b_idle, b_side_idle = await _bound_round(rows, side, sizes, size, keys, streaming=False, seed=round_)
        b_busy, b_side_busy = await _bound_round(rows, side, sizes, size, keys, streaming=True, seed=round_)
        b_long, _unused = await _bound_round(long_rows, side, sizes, size, keys, streaming=False, seed=round_)
        add("key p95 idle ms", idle, b_idle)
        add("side list p95 idle ms", side_idle, b_side_idle)
        add("key p95 streaming ms", busy, b_busy)
        add("side list p95 streaming ms", side_busy, b_side_busy)
        add("key p95 on 1000-token table ms", long_keys, b_long)
        # Medians beside: under a frame, a p95 is the few keys whose frame took longest, which moves with the machine
        for name, ours, bound in (("key median idle ms", idle, b_idle), ("key median on 1000-token table ms", long_keys, b_long)):
            figures.setdefault(name, []).append((statistics.median(ours) * 1e3, statistics.median(bound) * 1e3))
        figures.setdefault("1000-token table render ms", []).append((long_render * 1e3, float("nan")))
    import gc

    gc.unfreeze()  # what a full collection would cost with the model's objects in sight, and as the app runs
    start = time.perf_counter()
    gc.collect()
    unfrozen = time.perf_counter() - start
    gc.freeze()
    start = time.perf_counter()
    gc.collect()
    figures["full collection ms"] = [((time.perf_counter() - start) * 1e3, unfrozen * 1e3)]
    return {name: (statistics.median(o for o, _ in pairs), statistics.median(b for _, b in pairs))
            for name, pairs in figures.items()}


QUIT = """
import sys, time
{setup}
async def quit_now():
    print(time.time(), flush=True)  # the moment Ctrl+Q is pressed
    await app.run_action("quit")
app = make()
app.run(headless=True, size=(80, 24))
finish()
"""

QUIT_SAETUI = """
from saetui.tui import app as m

STATE = {state!r}
class App(m.SaeTuiApp):
    CSS_PATH = m.__file__.rsplit("/", 1)[0] + "/saetui.tcss"  # a class made in `python -c` has no file to be relative to

    def on_ready(self):
        super().on_ready()
        if STATE == "loading":
            self.set_timer(0.3, quit_now)  # the demo takes seconds to load

    async def on_analyzed(self, message):
        super().on_analyzed(message)
        if getattr(self, "_quitting", False):
            return
        self._quitting = True
        if STATE == "idle":
            self.set_timer(0.2, quit_now)
        elif STATE == "analyzing":
            self.query_one("#prompt").text = " ".join(["Anna has a red cat and Tom has a blue dog."] * 20)
            self.action_analyze()
            self.set_timer(0.01, quit_now)
        elif STATE == "generating":
            self.query_one("#max-tokens").value = "200"
            await self.action_generate()
            self.set_timer(0.3, quit_now)

def make():
    return App(prompt="The capital of France is Paris. Anna has a", restore=False)

def finish():
    m.finish(0)
"""

QUIT_BARE = """
from textual.app import App
from textual.widgets import Static

class Bare(App):
    def compose(self):
        yield Static("x")
    def on_ready(self):
        self.set_timer(0.2, quit_now)

def make():
    return Bare()

def finish():
    pass  # a plain interpreter exit
"""


def quit_latency(setup: str, runs: int) -> float:
    """Median seconds from the quit key to the process having exited (measured from outside it)."""
    import os
    import tempfile

    times = []
    env = {**os.environ}
    with tempfile.TemporaryDirectory() as home:  # never the user's saved session
        env.update(XDG_CONFIG_HOME=f"{home}/config", XDG_CACHE_HOME=f"{home}/cache")
        for _ in range(runs):
            proc = subprocess.Popen([sys.executable, "-c", QUIT.format(setup=setup)], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True, env=env)
            line = proc.stdout.readline()  # blocks until the child presses quit
            proc.wait(timeout=120)
            end = time.time()
            times.append(end - float(line))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of ours and the bound (medians)")
    parser.add_argument("--quit-runs", type=int, default=3)
    parser.add_argument("--sizes", default="120x40,80x24", help="terminal sizes, comma-separated")
    parser.add_argument("--skip-processes", action="store_true", help="only the in-process key figures")
    parser.add_argument("--paint-runs", type=int, default=10, help="fresh interpreters per side for the first paint")
    parser.add_argument("--first-paint-only", action="store_true", help="only the first paint")
    args = parser.parse_args()
    if args.first_paint_only:
        print_first_paint(args.paint_runs)
        return
    if not args.skip_processes:
        bare_quit = quit_latency(QUIT_BARE, args.quit_runs)
        for state in ("idle", "loading", "analyzing", "generating"):
            ours_quit = quit_latency(QUIT_SAETUI.format(state=state), args.quit_runs)
            print(f"quit while {state}: {ours_quit * 1e3:.0f} ms to the shell prompt, bare Textual app {bare_quit * 1e3:.0f} ms "
                  f"({ours_quit / bare_quit:.2f}x; target <= 500 ms)")
        print_first_paint(args.paint_runs)
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        results = asyncio.run(measure(args.keys, (w, h), args.rounds))
        print(f"{w}x{h}, {args.keys} keys x {args.rounds} interleaved rounds; the bound: a bare Textual app with two DataTables "
              f"of the same size and rows, the second refilled from a precomputed list (target <= 1.5x):")
        for name, (ours, bound) in results.items():
            if name == "full collection ms":
                print(f"  a full garbage collection: {ours:.1f} ms with the loaded objects frozen, {bound:.0f} ms without")
            elif name == "streaming pieces/s":
                print(f"  {name}: {ours:.0f} ({ours / bound:.1f}x the 200/s needed)")
            elif bound != bound:  # no bound for this one
                print(f"  {name}: {ours:.0f}")
            else:
                print(f"  {name}: ours {ours:.1f}, bound {bound:.1f}, {ours / bound:.2f}x")


if __name__ == "__main__":
    main()
