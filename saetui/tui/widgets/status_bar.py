"""StatusBar: the latest note, then model, SAEs, device, dtype, GPU memory, how steering decodes (on a GPU: its
step compiling or compiled) and the last analysis latency, on one line."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static


class StatusBar(Static):
    note: str = ""  # the note shown now (kept when the rest is refreshed)

    def show(self, status: dict[str, Any], note: str = "") -> None:
        self.note = note
        if not status.get("model"):
            self.update(note or "no model loaded")
            return
        # The note (what just happened) comes first, so a narrow terminal cuts the static part, not it.
        parts = [note] if note else []
        parts += [status["model"], ", ".join(status["saes"]) or "no SAE", f"{status['device']} {status['dtype']}"]
        if status.get("gpu_gib") is not None:
            parts.append(f"GPU {status['gpu_gib']:.1f} GiB")
        if status.get("decoding") in ("compiling", "compiled"):
            parts.append("decode compiling…" if status["decoding"] == "compiling" else "decode compiled")
        if status.get("latency_ms") is not None:
            parts.append(f"analysis {status['latency_ms']:.0f} ms")
        self.update(" | ".join(parts))
