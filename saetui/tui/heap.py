"""Keep Python's garbage collector from stopping the app for a quarter of a second.

A loaded model brings ~500k Python objects (torch, transformers, the tokenizer, their modules). CPython's
oldest-generation collection walks every one of them, about 250 ms on a 2-core machine with the event loop
stopped, whenever enough new objects have survived (streamed text, analyses, tables): a key that lands then
repaints a quarter second late. After each load, what is alive is collected once and frozen (`gc.freeze`:
out of the collector's sight; reference counting still frees it), so later collections walk only what the app
made since. Only the app's own process does this (`saetui` with no command): a library user's process and
the tests keep the collector as they set it.
"""

from __future__ import annotations

import gc


def settle_after_load() -> None:
    """Collect once and freeze what survives. Called again after a later load (a model replaced), it first lets
    the collector see the frozen objects, so the replaced model's reference cycles are freed."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
