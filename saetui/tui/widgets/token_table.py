"""TokenTable: one row per prompt token with its top features; a chosen feature colors every token (heat line)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

_HEAT = ["#303030", "#5f3f00", "#8f5f00", "#bf7f00", "#ff9f00"]


def token_label(tok: Any, tokenizer: Any = None) -> str:
    """What a token row shows: escapes (\\n) visible, a whitespace-only token as `␣`, and the bytes of a
    partial UTF-8 character as `<0xF0>` (byte-level BPE pieces decode to `�` alone), never a blank."""
    text = tok.text
    if "\ufffd" in text and tokenizer is not None:
        text = _byte_text(tokenizer, tok.id) or text
    elif text and not text.strip():
        return text.replace(" ", "␣").replace("\n", "\\n").replace("\t", "\\t")
    shown = repr(text)[1:-1]
    return shown or "·"


def _byte_text(tokenizer: Any, token_id: int) -> str | None:
    """The token's bytes, valid UTF-8 kept as text and the rest as `<0xXX>`; None if unknown."""
    import re

    try:
        raw = tokenizer.convert_ids_to_tokens([token_id])[0]
    except Exception:  # noqa: BLE001 - any tokenizer; falls back to the decoded text
        return None
    if not isinstance(raw, str):
        return None
    if re.fullmatch(r"(<0x[0-9A-Fa-f]{2}>)+", raw):  # sentencepiece byte fallback names its bytes
        return raw.upper().replace("<0X", "<0x")
    inverse = _unicode_to_bytes()
    if not all(ch in inverse for ch in raw):
        return None
    data = bytes(inverse[ch] for ch in raw)
    out, i = [], 0
    while i < len(data):
        for j in range(min(len(data), i + 4), i, -1):  # the longest valid character starting at i
            try:
                out.append(data[i:j].decode("utf-8"))
                i = j
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append(f"<0x{data[i]:02X}>")
            i += 1
    return "".join(out)


_INVERSE: dict[str, int] = {}


def _unicode_to_bytes() -> dict[str, int]:
    """GPT-2's byte-to-unicode table, inverted (byte-level BPE writes each byte as one printable char)."""
    if not _INVERSE:
        bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        _INVERSE.update({chr(c): b for b, c in zip(bs, cs)})
    return _INVERSE


class TokenTable(DataTable):
    """Rows: index, token (special tokens marked), its top features as `f:act`, heat of the chosen feature."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns("#", "token", "top features")

    def show(self, result: Any, sae: str, heat: list[float] | None = None, tokenizer: Any = None) -> None:
        """Fill the rows; the cursor stays on the row it was on (as far as the new rows go)."""
        row = self.cursor_row
        self.clear()
        res = result.sae(sae)
        top = max(heat) if heat else 0.0
        for tok, feats in zip(result.tokens, res.per_token):
            text = Text(token_label(tok, tokenizer), style="dim italic" if tok.special else "")
            if heat and top > 0:
                level = min(len(_HEAT) - 1, int(len(_HEAT) * heat[tok.index] / top)) if heat[tok.index] > 0 else 0
                text.stylize(f"on {_HEAT[level]}")
            label = Text(f"{tok.index}{'*' if tok.special else ''}")
            shown = Text("  ".join(f"{f}:{a:.1f}" for f, a in feats[:3]))
            if heat:  # the heat as a number too, not only a colour
                shown = Text.assemble((f"{heat[tok.index]:5.2f}", "bold"), " │ ", shown)
            self.add_row(label, text, shown, key=str(tok.index))
        if self.row_count:
            self.move_cursor(row=min(max(row, 0), self.row_count - 1), scroll=False)
