"""Token text as a person can read it: the bytes of a partial UTF-8 character shown as `<0xF0>`.

A byte-level BPE (GPT-2, Llama 3, Qwen) or a byte-fallback SentencePiece (Gemma, Llama 2) splits an emoji
or a CJK character over several tokens; decoded alone, each of them is `\ufffd`, the same for all.
"""

from __future__ import annotations

from typing import Any


def byte_text(tokenizer: Any, token_id: int) -> str | None:
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
