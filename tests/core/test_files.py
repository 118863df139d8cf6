"""saetui.files and everything saved: atomic writes leave no temporaries, bad files are set aside with
timestamps (never over an earlier copy), saved state is checked field by field, unwritable folders give
one-line errors. Session, preset and labels files are fuzzed with Hypothesis."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saetui import files, state
from saetui.errors import InputError
from saetui.paths import config_dir
from saetui.inputs import read_labels
from saetui.sae.search import LABELS_FILE, load_labels
from saetui.steering.spec import SteeringSpec

BAK = re.compile(r"\.bak-\d{8}-\d{6}(-\d+)?$")
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
good_spec = st.builds(lambda f, c, m, e: {"feature": f, "coefficient": c, "mode": m, "enabled": e},
                      st.integers(0, 10_000), st.floats(-50, 50), st.sampled_from(["add", "clamp", "ablate"]), st.booleans())
bad_spec = st.sampled_from([{"feature": 1.7}, {"feature": 3, "enabled": "no"}, {"feature": "x"}, {"feature": -1},
                            {"feature": True}, {"feature": 2, "mode": "boost"}, {"feature": 2, "coefficient": "4"},
                            {"feature": 2, "coefficient": 10**400}, {"feature": 2, "scope": 5}, 7, None, []])
session_like = st.fixed_dictionaries({}, optional={
    "model": st.none() | st.text(max_size=8) | json_values,
    "saes": st.lists(st.text(max_size=8), max_size=3) | json_values,
    "prompt": st.text(max_size=20) | json_values,
    "history": st.lists(st.text(max_size=8), max_size=5) | json_values,
    "specs": st.lists(good_spec | bad_spec, max_size=4) | json_values,
})


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def backups(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.glob(path.name + ".bak*"))


def clear(folder: Path) -> None:
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_file():
                p.unlink()


# ---------------------------------------------------------------------------------------------- files
def test_atomic_write_cleans_up_on_any_failure(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    files.write_json_atomic(target, {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        files.atomic_write(target, boom)
    assert json.loads(target.read_text()) == {"x": 1} and no_temporaries(tmp_path)

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        files.atomic_write(target, b"new")
    assert json.loads(target.read_text()) == {"x": 1} and no_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_read_only_folder_or_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """`saetui labels` into a read-only config folder, or an index onto a full disk, was 'internal error: OSError'
    (exit 1). A write that fails is a FolderError (an InputError: one line, exit 2) naming the file; nothing of it
    is kept and the old file stays."""
    import errno
    from types import SimpleNamespace

    from saetui.cli import main

    target = tmp_path / "a.json"
    files.write_json_atomic(target, {"x": 1})

    def full(fh):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(files.FolderError, match=r"cannot write .*a\.json: No space left on device"):
        files.atomic_write(target, full)
    assert json.loads(target.read_text()) == {"x": 1} and no_temporaries(tmp_path)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files, "tempfile", SimpleNamespace(mkstemp=read_only, mkdtemp=read_only))  # saetui's writes only
    with pytest.raises(files.FolderError, match="Read-only file system"):
        files.atomic_write(target, b"new")
    with pytest.raises(files.FolderError, match="Read-only file system"):
        with files.atomic_folder(tmp_path / "index"):
            pass
    labels = tmp_path / "ok.csv"
    labels.write_text("feature,label\n3,red things\n")
    assert main(["labels", str(labels)]) == 2  # one line, not an internal error
    assert json.loads(target.read_text()) == {"x": 1}


def test_atomic_write_goes_through_a_link_and_never_replaces_a_device_or_pipe(tmp_path):
    """`--out link.svg` replaced the link by a file (its target unchanged), and `--out /dev/full` made the device a
    file: a write through a link replaces the file it points to, and a device or pipe is refused."""
    from saetui.inputs import check_out_file

    real, link = tmp_path / "real.svg", tmp_path / "link.svg"
    real.write_text("old")
    link.symlink_to(real)
    assert files.atomic_write(link, "new") == link
    assert link.is_symlink() and real.read_text() == "new" and no_temporaries(tmp_path)
    assert check_out_file(link) == link
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        check_out_file(Path("/dev/null"))  # (only checked: a regression must not make /dev/null a file)
    for bad in (fifo, tmp_path / "to-pipe"):
        if bad.name == "to-pipe":
            bad.symlink_to(fifo)
        with pytest.raises(InputError, match="not a regular file"):
            check_out_file(bad)
        with pytest.raises(InputError, match="not a regular file"):
            files.atomic_write(bad, "x")
    assert fifo.exists() and not fifo.is_file()
    assert no_temporaries(tmp_path)


def test_atomic_folder_replaces_whole_or_not_at_all(tmp_path):
    out = tmp_path / "out"
    with files.atomic_folder(out) as tmp:
        (tmp / "one").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_folder(out) as tmp:
            (tmp / "two").write_text("2")
            raise KeyboardInterrupt
    assert [p.name for p in out.iterdir()] == ["one"]
    with files.atomic_folder(out) as tmp:
        (tmp / "three").write_text("3")
    assert [p.name for p in out.iterdir()] == ["three"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary or old sibling left


def test_set_aside_never_overwrites_an_earlier_copy(tmp_path):
    files.take_notices()
    path = tmp_path / "labels.json"
    seen = []
    for content in ("{one", "{two", "{three"):
        path.write_text(content)
        seen.append(files.set_aside(path, "is broken"))
    assert not path.exists()
    assert len(set(seen)) == 3 and all(BAK.search(p.name) for p in seen)
    assert [p.read_text() for p in seen] == ["{one", "{two", "{three"]
    notes = files.take_notices()
    assert len(notes) == 3 and all(str(path) in n and "kept aside as labels.json.bak-" in n for n in notes)
    assert all("\n" not in n for n in notes)


def test_invalid_utf8_is_refused_with_its_line_number(tmp_path):
    from saetui.activations.cache import read_dataset

    corpus = tmp_path / "c.txt"
    corpus.write_bytes(b"fine\nalso fine\nbad \xff byte\n")
    with pytest.raises(InputError, match=r"c\.txt:3: not valid UTF-8 \(byte 0xff\)"):
        read_dataset(corpus)
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_bytes(b'{"text": "ok"}\n{"text": "\xc3("}\n')
    with pytest.raises(InputError, match=r"c\.jsonl:2: not valid UTF-8"):
        read_dataset(jsonl)
    labels = tmp_path / "l.csv"
    labels.write_bytes(b"feature,label\n1,cats\n2,\xfe\n")
    with pytest.raises(InputError, match=r"l\.csv:3: not valid UTF-8"):
        read_labels(labels)
    (tmp_path / "bom.txt").write_bytes("\ufefffirst\nsecond\n".encode())
    assert read_dataset(tmp_path / "bom.txt") == ["first", "second"]


def test_labels_csv_rows_need_a_feature_and_a_label(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("feature,label\n1,cats\n2\n")
    with pytest.raises(InputError, match=r"l\.csv:3: no label") as err:
        read_labels(path)
    assert "\n" not in str(err.value)
    path.write_text("feature,label\nx,cats\n")
    with pytest.raises(InputError, match="feature 'x' is not a non-negative integer"):
        read_labels(path)
    path.write_text("feat,lab\n1,cats\n")
    with pytest.raises(InputError, match="needs the columns feature,label"):
        read_labels(path)
    (tmp_path / "n.jsonl").write_text('{"index": 4, "description": null}\n')
    with pytest.raises(InputError, match=r"n\.jsonl:1: no label"):
        read_labels(tmp_path / "n.jsonl")


def test_a_label_is_one_line_whatever_file_it_comes_from(tmp_path):
    """A label with a newline printed as two lines of `saetui search` (a second, fake hit), and one with ESC drove
    the terminal; a CSV's quoted line break was dropped (`first linesecond line`)."""
    from saetui.sae.search import load_labels

    (tmp_path / "l.csv").write_text('feature,label\n11,"first line\nsecond line"\n12,"\x1b[7mloud\x07\tx"\n')
    assert read_labels(tmp_path / "l.csv") == {11: "first line second line", 12: "[7mloud  x"}
    (tmp_path / "n.json").write_text(json.dumps([{"index": "9", "description": "multi\nline \u001b[7mlabel\u2028"}]))
    assert read_labels(tmp_path / "n.json") == {9: "multi line  [7mlabel"}
    (tmp_path / "labels.json").write_text(json.dumps({"7": "line1\nfake/99   9.99  injected"}))  # by hand
    assert load_labels(tmp_path) == {7: "line1 fake/99   9.99  injected"}


def test_one_corpus_fingerprint_for_caches_and_indexes(gemma2, make_sae, tmp_path):
    from saetui.activations.cache import ActivationCache
    from saetui.sae.index import IndexSettings, build_index
    from saetui.sae.manager import SAEManager

    texts = ["The cat sat.", "A dog ran home."]
    cache = ActivationCache(tmp_path / "cache").build(gemma2, texts, ["blocks.0.hook_resid_post"], progress=False)
    loaded = SAEManager(gemma2).add(make_sae(64, 32, "blocks.1.hook_resid_post"), name="s", spec="t")
    index = build_index(gemma2, loaded, texts, tmp_path / "idx", settings=IndexSettings(top_k=2), progress=False)
    assert cache.manifest["dataset"]["sha256"] == index.manifest["corpus_sha256"] == files.fingerprint(texts)
    assert files.fingerprint(["ab"]) != files.fingerprint(["a", "b"])


# ---------------------------------------------------------------------------------------------- session
def test_session_fields_are_checked_one_by_one():
    path = config_dir() / state.SESSION_FILE
    files.take_notices()
    path.write_text(json.dumps({"model": "m", "prompt": 3, "history": 5, "specs": [{"feature": 2, "coefficient": 1.5},
                                                                                    {"feature": 1.7}, {"feature": 4, "enabled": "no"}]}))
    data, note = state.load_session()
    assert data == {"model": "m", "specs": [SteeringSpec(2, 1.5).to_dict()]}
    assert "prompt" in note and "history" in note and "specs" in note and "kept aside as session.json.bak-" in note
    assert not path.exists() and len(backups(path)) == 1
    path.write_text(json.dumps({"specs": 7}))
    assert state.load_session()[0] == {"specs": []}
    assert len(backups(path)) == 2  # the first copy is kept
    path.write_text(json.dumps(["not", "a", "dict"]))
    data, note = state.load_session()
    assert data is None and "not a JSON object" in note and len(backups(path)) == 3
    good = {"model": "m", "saes": ["a"], "prompt": "p", "history": ["x"], "specs": [SteeringSpec(3, 2.0).to_dict()]}
    state.save_session(good)
    assert state.load_session() == (good, None) and path.exists()
    assert no_temporaries(config_dir())


@FUZZ
@given(content=st.one_of(json_values.map(json.dumps), session_like.map(json.dumps), st.binary(max_size=64).map(bytes)))
def test_fuzzed_session_files_never_raise(content):
    folder = config_dir()
    clear(folder)
    path = folder / state.SESSION_FILE
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    data, note = state.load_session()
    if data is not None:
        assert isinstance(data, dict)
        assert data.get("model") is None or isinstance(data["model"], str)
        assert isinstance(data.get("prompt", ""), str)
        assert all(isinstance(p, str) for p in data.get("history", []))
        for spec in data.get("specs", []):
            assert SteeringSpec(**spec) == state.spec_from_saved(spec)
    if path.exists():  # kept in place only when everything in it was usable
        assert note is None
        raw = json.loads(content)
        expected = {k: raw[k] for k in ("model", "saes", "prompt", "history", "specs") if k in raw}
        if "model" not in expected:
            expected.pop("saes", None)  # SAEs without their model mean nothing
        if "specs" in expected:
            expected["specs"] = [SteeringSpec(**d).to_dict() for d in expected["specs"]]  # saved in full
        assert data == (expected or None)
    else:
        assert note and "\n" not in note
        assert len(backups(path)) == 1 and BAK.search(backups(path)[0].name)
    assert no_temporaries(folder)


def test_session_keeps_valid_parts_of_a_session_like_file():
    path = config_dir() / state.SESSION_FILE
    path.write_text(json.dumps({"model": "gpt2", "saes": ["x"], "prompt": "hi", "history": ["a", 3],
                                "specs": [{"feature": 5, "coefficient": 2.0, "mode": "clamp"}, {"feature": 1.7}]}))
    data, note = state.load_session()
    assert data == {"model": "gpt2", "saes": ["x"], "prompt": "hi",
                    "specs": [SteeringSpec(5, 2.0, "clamp").to_dict()]}
    assert "history" in note and "specs" in note


# ---------------------------------------------------------------------------------------------- presets
def test_presets_keep_valid_specs_and_set_the_file_aside():
    state.save_preset("ok", [SteeringSpec(1, 2.0), SteeringSpec(7, 0.0, "ablate", enabled=False)])
    assert state.load_preset("ok") == [SteeringSpec(1, 2.0), SteeringSpec(7, 0.0, "ablate", enabled=False)]
    path = config_dir() / "presets" / "mixed.json"
    path.write_text(json.dumps({"specs": [{"feature": 1, "coefficient": 2.0}, {"feature": 1.7},
                                          {"feature": 2, "enabled": "no"}]}))
    specs, note = state.load_preset_checked("mixed")
    assert specs == [SteeringSpec(1, 2.0)] and "2 unusable spec(s) dropped" in note
    assert not path.exists() and len(backups(path)) == 1
    for bad in ({"specs": 7}, [1, 2], {"specs": [{"feature": "x"}]}):
        path.write_text(json.dumps(bad))
        with pytest.raises(InputError, match="kept aside"):
            state.load_preset("mixed")
    assert len(backups(path)) == 4
    path.write_text("[1, 2")
    with pytest.raises(InputError, match="kept aside"):
        state.load_preset("mixed")
    with pytest.raises(InputError, match="no preset named"):
        state.load_preset("mixed")
    with pytest.raises(InputError, match="preset name"):
        state.load_preset("../x")


@FUZZ
@given(content=st.one_of(json_values.map(json.dumps),
                         st.lists(good_spec | bad_spec, max_size=4).map(lambda s: json.dumps({"specs": s})),
                         st.binary(max_size=64)))
def test_fuzzed_presets_never_raise_anything_but_input_error(content):
    folder = config_dir() / "presets"
    folder.mkdir(exist_ok=True)
    clear(folder)
    path = folder / "p.json"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    try:
        specs, note = state.load_preset_checked("p")
    except InputError as exc:
        assert "\n" not in str(exc) and not path.exists() and len(backups(path)) == 1
    else:
        assert all(isinstance(s, SteeringSpec) and type(s.feature) is int and type(s.enabled) is bool for s in specs)
        assert path.exists() == (note is None)
    assert no_temporaries(folder)


# ---------------------------------------------------------------------------------------------- labels
@FUZZ
@given(content=st.one_of(json_values.map(json.dumps),
                         st.dictionaries(st.text(max_size=4), st.text(max_size=6) | json_values, max_size=4).map(json.dumps),
                         st.binary(max_size=64)))
def test_fuzzed_labels_files_never_raise(content):
    folder = config_dir() / "labels-fuzz"
    folder.mkdir(exist_ok=True)
    clear(folder)
    path = folder / LABELS_FILE
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    labels = load_labels(folder)
    assert all(type(k) is int and k >= 0 and isinstance(v, str) and v.strip() for k, v in labels.items())
    if not path.exists():
        assert labels == {} and len(backups(path)) == 1
    assert no_temporaries(folder)


def test_a_corrupt_labels_file_is_set_aside_and_the_session_goes_on(gemma2, make_sae):
    from saetui.sae.index import IndexSettings, build_index, default_index_dir
    from saetui.sae.manager import SAEManager
    from saetui.session import Session

    manager = SAEManager(gemma2)
    loaded = manager.add(make_sae(64, 32, "blocks.1.hook_resid_post"), name="s", spec="t")
    root = default_index_dir(gemma2, loaded)
    build_index(gemma2, loaded, ["The cat sat.", "A dog ran."], root, settings=IndexSettings(top_k=2), progress=False)
    (root / LABELS_FILE).write_bytes(b"{\xff not json")
    files.take_notices()
    session = Session()
    session.attach(gemma2, manager)
    assert "s" in session.indexes and session.labels == {}
    notes = files.take_notices()
    assert len(notes) == 1 and str(root / LABELS_FILE) in notes[0]
    assert session.set_label(3, "cats") == str(root)
    assert load_labels(root) == {3: "cats"} and len(backups(root / LABELS_FILE)) == 1


def test_wrong_typed_label_entries_are_said_kept_aside_and_the_rest_stays(tmp_path):
    """`{"3": 5, "4": "ok"}` read as {4: "ok"} with no word, and the next label saved wrote over the 5 for good."""
    path = tmp_path / LABELS_FILE
    path.write_text(json.dumps({"3": 5, "4": "ok label", "x": "y", "5": ""}), encoding="utf-8")
    files.take_notices()
    assert load_labels(tmp_path, removals=True) == {4: "ok label", 5: ""}
    (note,) = files.take_notices()
    assert "has 2 entries that are not" in note and "'3': 5" in note and "'x': 'y'" in note and "kept aside as" in note
    (backup,) = backups(path)
    assert json.loads(backup.read_text(encoding="utf-8"))["3"] == 5  # nothing lost
    assert json.loads(path.read_text(encoding="utf-8")) == {"4": "ok label", "5": ""}
    assert load_labels(tmp_path) == {4: "ok label"} and files.take_notices() == []  # said once


def test_demo_labels_are_saved_in_the_config_folder_not_the_package():
    from saetui import demo
    from saetui.sae.index import find_index
    from saetui.session import Session

    session = Session()
    session.attach(*demo.load_demo())
    index = session.indexes["demo"]
    assert index.root == demo.INDEX_DIR and index.labels_dir == config_dir() / "demo-labels"
    (config_dir() / "demo-labels").mkdir()
    (config_dir() / "demo-labels" / LABELS_FILE).write_text("[]")  # valid JSON, not labels
    again = Session()
    again.attach(session.model, session.saes)
    assert again.labels  # the shipped labels still load
    # Without the demo's place among its roots, the library finds no index: it does not know the demo.
    assert find_index(session.model, session.saes.get("demo")) is None


def test_a_shipped_label_removed_or_changed_stays_so_in_the_next_session():
    """Removing a demo label wrote the user's labels without it, and the next start read the shipped one again."""
    from saetui import demo
    from saetui.session import Session

    session = Session()
    session.attach(*demo.load_demo())
    shipped = dict(session.labels.of("demo"))
    gone, changed = sorted(shipped)[:2]
    session.set_label(gone, "", "demo")
    session.set_label(changed, "my own words", "demo")
    session.set_label(7 if 7 not in shipped else 8, "new one", "demo")
    want = dict(session.labels.of("demo"))
    again = Session()
    again.attach(session.model, session.saes)
    assert again.labels.of("demo") == want and gone not in want and want[changed] == "my own words"
    saved = json.loads((config_dir() / "demo-labels" / LABELS_FILE).read_text())
    assert len(saved) == 3  # only what differs from the shipped labels


# ---------------------------------------------------------------------------------------------- folders
def test_unwritable_config_and_cache_folders(tmp_path, monkeypatch):
    from saetui.paths import cache_dir

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker))
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/saetui-cache")
    assert state.load_session() == (None, None)  # reading needs no folder
    assert state.list_presets() == []
    assert load_labels(config_dir(create=False) / "demo-labels") == {}
    for write in (lambda: state.save_session({"prompt": "p"}), lambda: state.save_preset("x", [])):
        with pytest.raises(InputError, match=r"cannot create the (config )?folder .*afile") as err:
            write()
        assert isinstance(err.value, OSError)  # the app's save_session catches OSError
        assert "\n" not in str(err.value)
    assert cache_dir(create=False) == Path("/proc/saetui-cache/saetui")  # a path to read from, nothing created
    with pytest.raises(InputError, match="cannot create the cache folder /proc/saetui-cache/saetui"):
        cache_dir()
    with pytest.raises(InputError, match="cannot create the index folder /proc"):
        files.check_writable(Path("/proc/saetui-cache/x"), "index folder")


def test_a_json_corpus_is_read_as_json(tmp_path):
    """A .json corpus was read as one text a line: `evals --corpus arr.json` scored the raw JSON as 1 document."""
    from saetui.inputs import read_texts

    texts = ["The cat sat.", "A dog ran."]
    cases = {"arr.json": json.dumps(texts), "obj.json": json.dumps([{"text": t, "n": 1} for t in texts]),
             "lines.json": "".join(json.dumps({"text": t}) + "\n" for t in texts)}  # datasets' to_json writes these
    for name, content in cases.items():
        (tmp_path / name).write_text(content)
        assert read_texts(tmp_path / name) == texts, name
    (tmp_path / "f.json").write_text(json.dumps([{"body": t} for t in texts]))
    assert read_texts(tmp_path / "f.json", field="body") == texts
    for content, says in ((json.dumps(5), "is a JSON int: a corpus is an array of texts"),
                          (json.dumps([1]), r"item 0 is a JSON int, not an object with a field 'text'"),
                          ('{"text": "a"}\n{oops\n', r"f\.json:2 is not valid JSON"),
                          # a whole file as one object: it said `f.json:1 has no field`, a JSON Lines message
                          (json.dumps({"data": texts}), r"is one JSON object with no field 'text' \(its keys: 'data'\)")):
        (tmp_path / "f.json").write_text(content)
        with pytest.raises(InputError, match=says):
            read_texts(tmp_path / "f.json")
