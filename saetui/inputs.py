"""Every user input read and checked once: prompt text, files of texts, .jsonl fields, label files, numbers,
sizes, spans, feature and token references, devices and dtypes, output paths, chat options.

The CLI checks its options here before any model loads, the app checks what is typed here, and the core reads
corpora through `read_texts`, so a prompt, a file of prompts or a corpus is accepted or refused the same way
everywhere. Each check returns the value (normalised) or raises one InputError line; a message that quotes
what the user typed quotes it exactly (repr), never with its whitespace changed.

A text input is a string, a file (a .txt file: one text a line; a .jsonl file: one JSON object a line, the
text in a named field; a .json file: an array of texts or of such objects), or `-` for standard input (one text a
line). Regular files and pipes (`<(...)`) are
read; folders and devices (/dev/null, /dev/tty) are refused, since reading a device either finds nothing or
never ends.

Ground floor: nothing here imports torch at import time, or any part of saetui but `errors` and `files`.
"""

from __future__ import annotations

import json
import math
import operator
import os
import re
import stat
import sys
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from saetui.errors import InputError, ModelLoadError

MAX_PROMPT_CHARS = 20_000
STDIN = "-"  # a text input read from standard input


# ---------------------------------------------------------------------- text
def check_text(text: str, what: str = "prompt") -> str:
    """`text` if it is usable as a prompt (or query), else a one-line InputError: empty, too long, or
    not text (undecodable bytes reach Python from argv or a paste as lone surrogates; a script's None or number)."""
    if not isinstance(text, str):
        raise InputError(f"the {what} must be text, got {type(text).__name__} {text!r:.40}")
    if not text.strip():
        raise InputError(f"empty {what}: type some text first")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"{what} is {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
    return check_utf8(text, what)


def check_utf8(text: str, what: str, *, argv: bool = True) -> str:
    """`text` if it can be encoded as UTF-8, else a one-line InputError naming the byte (undecodable bytes reach
    Python from argv or a paste as lone surrogates U+DC80..U+DCFF) or, for text that did not come as bytes
    (`argv=False`: a JSON escape in a file), the lone surrogate; and where."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        encoding = sys.getfilesystemencoding()
        if encoding.lower().replace("-", "") != "utf8" and _utf8_under(text, encoding):
            # an ASCII locale (LC_ALL=C with Python's UTF-8 mode off) hands UTF-8 argv to Python as escapes
            raise InputError(f"the {what} is UTF-8 but this terminal's locale reads {encoding}: set a UTF-8 locale "
                             "(e.g. LC_ALL=C.UTF-8) or PYTHONUTF8=1") from None
        char = ord(text[exc.start])
        byte = argv and 0xDC80 <= char <= 0xDCFF
        bad = f"invalid UTF-8 byte 0x{char - 0xDC00:02x}" if byte else f"a lone surrogate U+{char:04X}"
        raise InputError(f"the {what} has {bad} at character {exc.start}: give UTF-8 text") from None
    return text


def _utf8_under(text: str, encoding: str) -> bool:
    """Whether the bytes behind `text` (decoded with `encoding` and surrogateescape, as argv is) are valid UTF-8."""
    try:
        text.encode(encoding, "surrogateescape").decode("utf-8")
        return True
    except (UnicodeEncodeError, UnicodeDecodeError, LookupError):
        return False


# ---------------------------------------------------------------------- files
def file_kind(path: Path) -> str | None:
    """None for something we read (a regular file or a pipe), else what it is ("a folder", "a character
    device", ...). A missing path raises FileNotFoundError."""
    mode = path.stat().st_mode
    if stat.S_ISREG(mode) or stat.S_ISFIFO(mode):
        return None
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def check_input_file(value: str | Path, what: str = "file", hint: str = "") -> Path | None:
    """The file `value` names, checked before any long work: it exists and is a regular file or a pipe.
    `-` (standard input) gives None. `hint` follows the error (e.g. which option takes what)."""
    if str(value) == STDIN:
        return None
    path = Path(value).expanduser()
    tail = f": {hint}" if hint else ""
    try:
        kind = file_kind(path)
    except FileNotFoundError:
        raise InputError(f"no {what} at {value}{tail}") from None
    except OSError as exc:
        raise InputError(f"cannot read {value}: {exc.strerror or type(exc).__name__}") from None
    if kind is not None:
        raise InputError(f"no {what} at {value}: it is {kind}{tail}")
    return path


def read_input(value: str | Path, what: str = "file") -> str:
    """The UTF-8 text of a file, a pipe or standard input (`-`), checked as `check_input_file` does."""
    from saetui.files import decode_text, read_text

    path = check_input_file(value, what)
    if path is None:
        text = decode_text(sys.stdin.buffer.read(), "<stdin>")
        return text[1:] if text.startswith("\ufeff") else text  # a BOM is dropped, as read_text drops it
    return read_text(path, what)


def read_texts(source: str | Path | Sequence[str], field: str = "text", what: str = "dataset file") -> list[str]:
    """The non-blank texts of `source`: a list of strings, a .txt file (one text a line), a .jsonl file (the
    string in `field` of each line's object), a .json file (an array of texts or of such objects; or JSON Lines,
    which `datasets`' to_json writes under .json) or `-` (standard input, one text a line).

    Files must be UTF-8 (invalid bytes are refused with the file and the line); a .jsonl line that is not an
    object with `field`, or whose `field` is null, a number, a list or an object, is refused naming the line."""
    if not isinstance(source, (str, Path)):
        texts = list(source)
        for i, t in enumerate(texts):
            if not isinstance(t, str):  # str() read None as the text "None"
                raise InputError(f"text {i} of the list is {type(t).__name__}, not text: {t!r:.40}")
    else:
        content = read_input(source, what)
        path = Path(source)
        suffix = path.suffix.lower()  # (.JSONL too: read as text, each line was a JSON record)
        if field != "text" and suffix not in (".jsonl", ".json"):  # asked for, and it would silently not be used
            warnings.warn(f"field {field!r} is not read: {source} is not .jsonl (one text a line)", stacklevel=2)
        array = _json_array(content, path, field) if suffix == ".json" else None  # as lines of text it was garbage
        if array is not None:
            texts = [check_utf8(item, f"text at {path} item {i}", argv=False) if isinstance(item, str)
                     else _record_text(item, field, f"{path} item {i}") for i, item in enumerate(array)]
        else:
            texts = []
            for lineno, line in enumerate(content.splitlines(), 1):
                if not line.strip():
                    continue
                if suffix in (".jsonl", ".json"):
                    texts.append(_jsonl_text(line, field, f"{path}:{lineno}"))
                else:
                    texts.append(line)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise InputError(f"dataset {source if isinstance(source, (str, Path)) else '(list)'} has no text")
    return texts


def documents_within(counts: Sequence[int], budget: int) -> int:
    """How many of a corpus's next documents `--max-tokens` takes, given each one's positions (`counts`) and the
    positions left (`budget`): the fewest whose sum reaches it, or all. Documents, never batches: the same documents
    whatever the batch size (a budget checked once a batch read 4,394 positions of 100 at 64 a batch, 200 at 1)."""
    total = 0
    for n, count in enumerate(counts, 1):
        total += count
        if total >= budget:
            return n
    return len(counts)


def _json_array(content: str, path: Path, field: str) -> list | None:
    """A .json file's array; None where the file is JSON Lines (one object a line) instead."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return None  # JSON Lines (or damaged: its lines say where)
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        if field in data:
            return None  # one object: a file of one JSON line
        # a whole file as one object (`{"data": [...]}`): `path:1 has no field` read as a JSON Lines message
        keys = ", ".join(repr(k) for k in list(data)[:5]) + (", ..." if len(data) > 5 else "")
        raise InputError(f"{path} is one JSON object with no field {field!r} (its keys: {keys or 'none'}): a corpus "
                         "is an array of texts or of objects with a text field, or one object a line")
    raise InputError(f"{path} is a JSON {'null' if data is None else type(data).__name__}: a corpus is an array of "
                     "texts or of objects with a text field, or one object a line")


def _jsonl_text(line: str, field: str, where: str) -> str:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{where} is not valid JSON: {exc}") from exc
    return _record_text(record, field, where)


def _record_text(record: Any, field: str, where: str) -> str:
    """The text in `field` of one corpus record (a JSON object), or an InputError naming `where`."""
    if not isinstance(record, dict):
        kind = "null" if record is None else type(record).__name__
        raise InputError(f"{where} is a JSON {kind}, not an object with a field {field!r}")
    if field not in record:
        raise InputError(f"{where} has no field {field!r}")
    if not isinstance(record[field], str):  # null, a number or a list is not a text: never "None"
        kind = "null" if record[field] is None else type(record[field]).__name__
        raise InputError(f"{where}: field {field!r} is {kind}, not text")
    return check_utf8(record[field], f"text at {where}", argv=False)  # a JSON escape of half a character


def read_prompt_set(values: Sequence[str], which: str = "A") -> list[str]:
    """The prompts of one set from TEXT or FILE values: a value naming an existing file (or `-`) is read (a .txt
    file: one prompt a line; .jsonl: the `text` field of each line), any other value is a prompt itself. A value
    that names a folder or a device, or looks like a file name (.txt/.jsonl, no spaces) but is not a file, is an
    error, as is an empty set."""
    prompts: list[str] = []
    for value in values:
        path = Path(value).expanduser() if value and "\n" not in value and len(value) < 4096 else None
        try:
            kind = file_kind(path) if path is not None and value != STDIN else None
            exists = value == STDIN or (path is not None and path.exists())
        except OSError:  # a name too long for the file system, a path through a file: a prompt
            kind, exists = None, False
        if kind is not None:
            raise InputError(f"set {which}: {value} is {kind}, not a file of prompts")
        if exists:
            try:
                texts = read_texts(value)
            except InputError as exc:
                if "has no text" in str(exc):
                    raise InputError(f"set {which}: {value} holds no prompts") from None
                raise InputError(f"set {which}: {exc}") from None
            prompts.extend(check_text(t, "prompt") for t in texts)
        elif path is not None and path.suffix.lower() in (".txt", ".jsonl", ".json") and " " not in value:
            raise InputError(f"set {which}: no file at {value}")
        else:
            prompts.append(check_text(value, "prompt"))
    if not prompts:
        raise InputError(f"set {which} is empty: give at least one prompt or file of prompts")
    return prompts


def read_prompt_sets(a: Sequence[str], b: Sequence[str]) -> tuple[list[str], list[str]]:
    """Both sets of a contrast (see `read_prompt_set`); standard input can feed one of them only."""
    if [*a, *b].count(STDIN) > 1:
        raise InputError("standard input ('-') can be read once: give it to one set")
    return read_prompt_set(a, "A"), read_prompt_set(b, "B")


def read_labels(value: str | Path) -> dict[int, str]:
    """Feature labels from a Neuronpedia explanations export (JSON list or JSONL of objects with `index` and
    `description`) or a CSV with columns `feature,label`. The file must be UTF-8 (else an InputError
    with the line number); a row or record without a feature number or label is an InputError naming it."""
    import csv
    import io

    path = Path(value)
    text = read_input(value, "labels file")
    labels: dict[int, str] = {}

    def feature_number(value: object, where: str) -> int:
        s = str(value).strip()
        if isinstance(value, bool) or not (isinstance(value, int) or (s.isascii() and s.isdigit())):
            raise InputError(f"{where}: feature {value!r} is not a non-negative integer")
        return ascii_int(s)

    def label_text(value: object, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where}: no label")
        # a JSON escape of half a character is refused; a newline or an escape sequence's ESC becomes a space
        return one_line_text(check_utf8(value, f"label at {where}", argv=False)).strip()

    try:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(io.StringIO(text, newline=""))  # a quoted label may hold a line break
            if not reader.fieldnames or not {"feature", "label"} <= set(reader.fieldnames):
                raise InputError(f"{path}: a labels CSV needs the columns feature,label (got {reader.fieldnames})")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                labels[feature_number(row.get("feature"), where)] = label_text(row.get("label"), where)
        else:
            if path.suffix.lower() == ".jsonl":
                records = [(f"{path}:{n}", json.loads(line)) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
            else:
                data = json.loads(text)
                records = [(f"{path} record {n}", r) for n, r in enumerate(data if isinstance(data, list) else [data], 1)]
            for where, rec in records:
                if not isinstance(rec, dict):
                    raise InputError(f"{where}: not a JSON object")
                key = next((k for k in ("index", "feature", "featureIndex") if k in rec), None)
                desc = next((k for k in ("description", "label", "explanation") if k in rec), None)
                if key is None or desc is None:
                    raise InputError(f"{where}: expected Neuronpedia JSON/JSONL (index, description) or CSV (feature,label)")
                labels[feature_number(rec[key], where)] = label_text(rec[desc], where)
    except (ValueError, RecursionError, csv.Error) as exc:
        raise InputError(f"cannot read labels from {path}: expected Neuronpedia JSON/JSONL (index, description) "
                         f"or CSV (feature,label) ({type(exc).__name__}: {exc})") from exc
    return labels


def check_out_dir(out: str | Path, what: str = "index folder", option: str = "--out") -> Path:
    """A folder we can create or write into, checked before the model loads (and not created: a run that fails on
    its input leaves no empty folder)."""
    from saetui.files import check_creatable

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{option} {out} is a file, not a folder")
    return check_creatable(out, what)


def check_out_file(path: str | Path, option: str = "--out") -> Path:
    """A file can be written at `path`: its folder exists and is writable, and the path is not a folder."""
    from saetui.files import can_write_in

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder: give a file name, e.g. {path / 'screen.svg'}")
    if path.exists() and not path.is_file():  # (through links) a device, pipe or socket: a new file would replace it
        raise InputError(f"{option} {path} is not a regular file (a device, pipe or socket): give a file name")
    folder = Path(os.path.realpath(path)).parent  # through a link: where the file it points to is written
    if not folder.is_dir():
        raise InputError(f"{option} {path}: folder {folder} does not exist")
    if not can_write_in(folder):
        raise InputError(f"{option} {path}: cannot write in {folder}")
    return path


_NAME_RE = re.compile(r"[\w.-]{1,64}")


def check_name(name: str, what: str) -> str:
    """A name the user gives something saved as a file or folder (a "vector", a "preset"): letters, digits, '.',
    '-' or '_', at most 64, not only dots. Vectors are shared between machines, so their names are ASCII."""
    ascii_only = what == "vector"
    if (not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name.strip(".") == "" or name.startswith("-")
            or (ascii_only and not name.isascii())):  # `-v` would read as an option: `--vector -v@1:2` failed
        letters = "ASCII letters" if ascii_only else "letters"
        raise InputError(f"{what} name {name!r}: use {letters}, digits, '.', '-' or '_' (at most 64, not only dots, "
                         "not starting with '-')")
    return name


# ---------------------------------------------------------------------- numbers and small forms
_ASCII_INT = re.compile(r"[+-]?[0-9]+")


def one_line_text(text: str) -> str:
    """`text` with its control characters (newlines, tabs, ESC and BEL of terminal sequences) and line separators as
    spaces: a label is one line of every list that shows it, and never drives the terminal it is printed on."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)


def check_label(label: object, feature: int) -> str:
    """A feature's label as a script gives it (set_label, add_labels): text that can be saved (UTF-8; an empty one
    removes the label; control characters become spaces), else a one-line InputError naming the feature."""
    if not isinstance(label, str):
        raise InputError(f"a label is text, got {label!r:.40} for feature {feature} (an empty one removes it)")
    return one_line_text(check_utf8(label, f"label of feature {feature}", argv=False))


def not_blank(text: str) -> str:
    """An option's text that must say something: "" or spaces are refused (not taken as the option left out)."""
    if not text.strip():
        raise InputError("is empty: give a value, or leave the option out for its default")
    return text


def as_int(value: object) -> int | None:
    """`value` as an int where it is a whole number of an integer type (int, numpy integers, a one-element
    integer tensor: what np.argmax and tensor.argmax give), else None (a bool, a float, a string)."""
    if isinstance(value, bool) or str(getattr(value, "dtype", "")) in ("bool", "torch.bool"):  # they have __index__
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def check_int(value: object, what: str, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number (see as_int) within [minimum, maximum], as an int; else a one-line InputError naming `what`."""
    number = as_int(value)
    if number is None or number < minimum or (maximum is not None and number > maximum):
        within = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise InputError(f"{what} must be {within} (a whole number), got {value!r}")
    return number


def ascii_int(digits: str) -> int:
    """int() of a string already checked to be ASCII digits (a sign allowed), refusing in one line one longer than
    Python converts (sys.get_int_max_str_digits(): 4300 by default), which int() refuses with a ValueError."""
    limit = sys.get_int_max_str_digits()
    if limit and len(digits.strip().lstrip("+-")) > limit:
        raise InputError(f"a number is too long (over {limit} digits): {digits.strip()[:12]}…")
    return int(digits)


_ASCII_FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE)


def ascii_float(text: str) -> float:
    """float() of a number as typed in ASCII (`1.5`, `-2e3`; inf and nan are left to the caller's finiteness
    check); ValueError otherwise: float() also takes `1_0` and other scripts' digits (`١`), which nothing else in
    saetui reads as numbers."""
    if not _ASCII_FLOAT.fullmatch(text.strip()):
        raise ValueError(f"not a number: {text!r}")
    return float(text)


def whole_number(text: str, minimum: int, what: str, maximum: int | None = None) -> int:
    """A whole number in ASCII digits within [minimum, maximum]; `what` says what is wanted ("must be ...")."""
    if not _ASCII_INT.fullmatch(text.strip()):
        raise InputError(f"{what}, got {text!r}")
    value = ascii_int(text)
    if value < minimum or (maximum is not None and value > maximum):
        raise InputError(f"{what}, got {text!r}")
    return value


def finite_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise InputError(f"must be a finite number, got {text!r}")
    return value


# the smallest terminal the app draws (below it, a 'terminal too small' notice: no picture worth a snapshot)
MIN_SIZE, MAX_SIZE = (40, 12), (1000, 500)


def share(text: str) -> float:
    """A share from 0 up to (not including) 1, as `--held-out 0.25`."""
    value = finite_number(text)
    if not 0 <= value < 1:
        raise InputError(f"must be a share from 0 up to (not including) 1, got {text!r}")
    return value


def parse_size(size: str) -> tuple[int, int]:
    """`WIDTHxHEIGHT` in ASCII digits, within what the app can draw."""
    match = re.fullmatch(r"([0-9]+)[xX]([0-9]+)", size.strip())
    if match is None:
        raise InputError(f"--size must be WIDTHxHEIGHT, e.g. 120x40, got {size!r}")
    width, height = ascii_int(match.group(1)), ascii_int(match.group(2))
    if not (MIN_SIZE[0] <= width <= MAX_SIZE[0] and MIN_SIZE[1] <= height <= MAX_SIZE[1]):
        raise InputError(f"--size {size}: width must be {MIN_SIZE[0]}..{MAX_SIZE[0]} and height {MIN_SIZE[1]}..{MAX_SIZE[1]}")
    return width, height


_SPAN_RE = re.compile(r"([0-9]+):([0-9]+)")


def parse_span(text: str) -> tuple[int, int]:
    """`START:END` (ASCII digits, END exclusive, START < END)."""
    match = _SPAN_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InputError(f"span must be START:END in token positions (ASCII digits, END exclusive), got {text!r}")
    start, end = ascii_int(match.group(1)), ascii_int(match.group(2))
    if start >= end:
        raise InputError(f"span {text} is empty: START must be less than END (END is exclusive)")
    return start, end


@dataclass(frozen=True)
class SweepValue:
    """One coefficient of a sweep, as typed. Unit "raw" (a plain number): the spec's coefficient itself, what its
    `coef` column holds (add: how much of the feature's decoder row; clamp: the activation held; a steering
    vector: multiples of the saved direction). Unit "max" (a number ending in `x`: `2x`, also `2×` or `2xmax`):
    that many times the feature's max activation, read from its feature index when the spec is used."""

    value: float
    unit: str = "raw"

    def __post_init__(self) -> None:
        if self.unit not in ("raw", "max"):
            raise InputError(f"sweep unit must be raw or max, got {self.unit!r}")

    def __str__(self) -> str:
        """As typed: `2x` or `14`."""
        return f"{self.value:g}" + ("x" if self.unit == "max" else "")


_SWEEP_RE = re.compile(r"\s*(?P<num>[^x×]*?)\s*(?P<x>[x×](?:\s*max)?)?\s*", re.IGNORECASE)


def parse_sweep(text: str, what: str = "--sweep", limit: float = 1e4) -> list[SweepValue]:
    """`0,4,8.5` (raw coefficients) or `0,1x,2x` (times the feature's max activation), mixed if wished: the
    coefficients of a sweep, finite and within ±limit (the steering coefficient's), as SweepValue."""
    usage = f"{what} takes numbers separated by commas (raw coefficients; 2x = 2 times the max activation)"
    values = []
    items = text.split(",")
    if len(items) > 1 and not items[-1].strip():  # one comma left at the end (the box while typing): nothing missing
        items.pop()
    if len(items) > 1 and any(not item.strip() for item in items):  # `0,,1`, `,0`: a number left out, not a 0
        raise InputError(f"{what} has an empty place before a comma (a number left out?), got {text!r}")
    for item in (v for v in items if v.strip()):
        match = _SWEEP_RE.fullmatch(item)
        try:
            if match is None or not match.group("num"):
                raise ValueError
            values.append(SweepValue(ascii_float(match.group("num")), "max" if match.group("x") else "raw"))
        except ValueError:
            raise InputError(f"{usage}, got {text!r}") from None
    if not values or not all(math.isfinite(v.value) for v in values):
        raise InputError(f"{what} takes finite numbers separated by commas, got {text!r}")
    if any(abs(v.value) > limit for v in values):
        raise InputError(f"{what} coefficients must be within ±{limit:g}, got {text!r}")
    return values


def feature_ref(text: str) -> tuple[str | None, int]:
    """`[SAE/]FEATURE` with FEATURE in ASCII digits."""
    sae, _, number = text.strip().rpartition("/")
    if not (number.isascii() and number.isdigit()):
        raise InputError(f"cannot read feature {text!r}: expected [SAE/]FEATURE, FEATURE in ASCII digits")
    return sae or None, ascii_int(number)


def token_ref(text: str | None, option: str) -> int | str | None:
    """A token named by its id (ASCII digits) or by its text (checked against the tokenizer later)."""
    if text is None:
        return None
    if text == "":
        raise InputError(f"{option} is empty: give a token's text or its id")
    return ascii_int(text) if text.isascii() and text.isdigit() else text


def word_token(word: str, tokenizer: Any) -> str:
    """A bare word typed in the app (the palette's `circuit Paris`, why?'s picker) as the token it names: the word as
    it follows a space (`Paris` -> ' Paris'), the way a word mid-sentence is one token, when that is one token; else
    as typed (the library then says what is wrong). Quoted text is taken exactly by the callers, before this."""
    spaced = " " + word
    return spaced if len(tokenizer.encode(spaced, add_special_tokens=False)) == 1 else word


def target_and_versus(target: str | None, versus: str | None) -> tuple[int | str | None, int | str | None]:
    """attribute's --target and --versus as token refs; the same token for both is refused (the difference is 0)."""
    t, v = token_ref(target, "--target"), token_ref(versus, "--versus")
    if t is not None and t == v:
        raise InputError(f"--versus is --target itself ({target!r}): the difference would be 0")
    return t, v


# ---------------------------------------------------------------------- devices and dtypes
_DEVICE_RE = re.compile(r"cpu|mps|cuda(?::([0-9]+))?")
_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}


def check_device_name(requested: str) -> str:
    """`requested` if it names a device this machine has (cpu, cuda, cuda:N, mps), else a one-line error."""
    import torch

    name = requested.strip().lower()
    match = _DEVICE_RE.fullmatch(name)
    if match is None:
        raise ModelLoadError(f"unknown device {requested!r}: use cpu, cuda, cuda:N or mps")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device {requested!r} requested but CUDA is not available")
        if match.group(1) is not None and ascii_int(match.group(1)) >= torch.cuda.device_count():
            raise ModelLoadError(f"device {requested!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                                 f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ModelLoadError("device 'mps' requested but MPS is not available")
    return name


def normalize_dtype(requested: str) -> str:
    """float32/fp32, bfloat16/bf16 or float16/fp16 (or auto) as its full name, else a one-line error."""
    name = requested.strip().lower()
    if name == "auto":
        return name
    if name not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {requested!r}: use one of float32 (fp32), bfloat16 (bf16), float16 (fp16)")
    return _DTYPES[name]


# ---------------------------------------------------------------------- chat
def check_chat_options(chat: bool, *, system: str | None = None, include_template: bool = False,
                       steer_template: bool = False) -> None:
    """Options that only mean something with --chat are refused without it; a system prompt is checked as text."""
    if system is not None:
        check_text(system, "system prompt")
    if chat:
        return
    for option, given in (("--system", system is not None), ("--include-template", include_template),
                          ("--steer-template", steer_template)):
        if given:
            raise InputError(f"{option} needs --chat")
