"""Every CLI mistake is one line: `saetui: error: ...` on stderr, exit code 2, nothing on stdout.

Most cases fail before any model loads; the few that need a model use the bundled demo (about 1 MB).
Placeholders in argv: {tmp} is a fresh folder, {corpus} a small corpus file, {file} an existing file.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from saetui.cli import build_parser, main

P = ["--prompt", "The cat"]
STEER = ["steer", *P, "--feature", "demo/5:1"]  # the demo has two SAEs: a feature names its SAE
INDEX = ["index", "--corpus", "{corpus}"]
SNAP = ["snapshot", *P, "--out", "{tmp}/s.svg"]
CONTRAST = ["contrast", "--a", "The cat", "--b", "The dog"]
ATTR = ["attribute", *P]
HUGE = "9" * 5000

CASES: list[tuple[str, list[str], str]] = [
    # the bare app's arguments
    ("app-unknown-option", ["--nope"], "unrecognized arguments"),
    ("app-sae-without-value", ["--sae"], "expected one argument"),
    ("app-model-without-value", ["--model"], "expected one argument"),
    ("app-sae-needs-model", ["--sae", "x"], "--sae needs --model"),
    ("app-unknown-command", ["bogus"], "invalid choice"),
    # the app's options before a command: the command ran on the demo, the --model given dropped without a word
    ("app-model-before-a-command", ["--model", "{tmp}", "--sae", "x", "analyze", *P],
     "--model before the command is the app's option: put it after the command (saetui analyze --model ...)"),
    ("app-sae-before-a-command", ["--sae", "x", "search", "red"], "--sae before the command is the app's option"),
    ("app-refresh-before-a-command", ["--refresh", "evals", "--corpus", "{corpus}"],
     "--refresh before the command is the app's option"),
    ("app-stray-argument", ["saes", "extra"], "saes: unrecognized arguments: extra"),
    ("analyze-unknown-option-names-the-command", ["analyze", *P, "--bogus"], "analyze: unrecognized arguments: --bogus"),
    # analyze
    ("analyze-no-prompt", ["analyze"], "required: --prompt"),
    ("analyze-blank-prompt", ["analyze", "--prompt", "   "], "empty prompt"),
    ("analyze-top-k-negative", ["analyze", *P, "--top-k", "-1"], "--top-k: must be a positive"),
    ("analyze-top-k-zero", ["analyze", *P, "--top-k", "0"], "--top-k: must be a positive"),
    ("analyze-top-k-word", ["analyze", *P, "--top-k", "abc"], "--top-k"),
    ("analyze-top-k-float", ["analyze", *P, "--top-k", "1.5"], "--top-k"),
    ("analyze-top-k-unicode-digit", ["analyze", *P, "--top-k", "²"], "--top-k"),
    ("analyze-top-k-arabic-digit", ["analyze", *P, "--top-k", "٣"], "--top-k"),
    ("analyze-predictions-negative", ["analyze", *P, "--predictions", "-1"], "--predictions: must be a whole number >= 0"),
    ("analyze-device-junk", ["analyze", *P, "--device", "junk"], "unknown device 'junk'"),
    ("analyze-device-cuda-index", ["analyze", *P, "--device", "cuda:99"], "cuda:99"),
    ("analyze-device-cpu-index", ["analyze", *P, "--device", "cpu:x"], "unknown device"),
    ("analyze-dtype-junk", ["analyze", *P, "--dtype", "junk"], "unknown dtype 'junk'"),
    ("analyze-dtype-half", ["analyze", *P, "--dtype", "half"], "unknown dtype"),
    ("analyze-dtype-int8", ["analyze", *P, "--dtype", "int8"], "unknown dtype"),
    ("analyze-demo-refuses-fp16", ["analyze", *P, "--dtype", "float16"], "demo runs in float32 only"),
    ("analyze-demo-refuses-bf16", ["analyze", *P, "--dtype", "bf16"], "demo runs in float32 only"),
    ("analyze-invalid-utf8", ["analyze", "--prompt", "caf\udcc3\udca9 \udcff"], "invalid UTF-8 byte 0xc3"),
    ("analyze-lone-surrogate", ["analyze", "--prompt", "a\ud800b"], "lone surrogate U+D800"),
    ("analyze-model-without-sae", ["analyze", *P, "--model", "somewhere"], "--sae is required with --model"),
    ("analyze-sae-missing-absolute-path", ["analyze", *P, "--sae", "{tmp}/no-sae"], "no SAE at"),
    ("analyze-sae-missing-relative-path", ["analyze", *P, "--sae", "./no-sae-here"], "no SAE at"),
    ("analyze-sae-missing-npz", ["analyze", *P, "--sae", "params.npz@blocks.1.hook_resid_post"], "no SAE at"),
    ("analyze-unknown-option", ["analyze", *P, "--topk", "3"], "unrecognized arguments"),
    # steer
    ("steer-no-feature", ["steer", *P], "required: --feature"),
    ("steer-blank-prompt", ["steer", "--prompt", "", "--feature", "5:1"], "empty prompt"),
    ("steer-invalid-utf8", ["steer", "--prompt", "\udcff", "--feature", "5:1"], "invalid UTF-8 byte 0xff"),
    ("steer-unicode-digit-feature", ["steer", *P, "--feature", "²:4"], "ASCII digits"),
    ("steer-arabic-digit-feature", ["steer", *P, "--feature", "٣:4"], "ASCII digits"),
    ("steer-unicode-digit-sae", ["steer", *P, "--feature", "²/5:4"], "no loaded SAE named '²'"),  # int('²') raised
    ("steer-word-feature", ["steer", *P, "--feature", "x:1"], "cannot read feature spec"),
    ("steer-negative-feature", ["steer", *P, "--feature=-5:1"], "cannot read feature spec"),
    ("steer-no-coefficient", ["steer", *P, "--feature", "5"], "cannot read feature spec"),
    ("steer-too-many-parts", ["steer", *P, "--feature", "5:1:add:x"], "cannot read feature spec"),
    ("steer-bad-mode", ["steer", *P, "--feature", "5:1:zap"], "steering mode must be one of"),
    ("steer-word-coefficient", ["steer", *P, "--feature", "5:lots"], "is not a number"),
    ("steer-nan-coefficient", ["steer", *P, "--feature", "5:nan"], "finite number"),
    ("steer-inf-coefficient", ["steer", *P, "--feature", "5:inf"], "finite number"),
    ("steer-huge-coefficient", ["steer", *P, "--feature", "549:1e38"], "too large"),
    ("steer-huge-negative-coefficient", ["steer", *P, "--feature", "5:-2e4"], "too large"),
    ("steer-scope-newline", [*STEER, "--scope", "all\n"], "scope must be"),
    ("steer-scope-junk", [*STEER, "--scope", "middle"], "scope must be"),
    ("steer-scope-negative", [*STEER, "--scope=-1:5"], "scope must be"),
    ("steer-scope-reversed", [*STEER, "--scope", "5:2"], "is empty"),
    ("steer-scope-empty", [*STEER, "--scope", "3:3"], "is empty"),
    ("steer-scope-unicode", [*STEER, "--scope", "²:5"], "scope must be"),
    ("steer-max-new-tokens-zero", [*STEER, "--max-new-tokens", "0"], "max new tokens must be a positive integer"),
    ("steer-max-new-tokens-negative", [*STEER, "--max-new-tokens", "-1"], "max new tokens must be a positive integer"),
    ("steer-max-new-tokens-word", [*STEER, "--max-new-tokens", "many"], "--max-new-tokens"),
    ("steer-temperature-tiny", [*STEER, "--temperature", "1e-300"], "temperature must be 0 (greedy) or at least"),
    ("steer-temperature-negative", [*STEER, "--temperature", "-1"], "temperature must be a finite number >= 0"),
    ("steer-temperature-nan", [*STEER, "--temperature", "nan"], "--temperature: must be a finite number"),
    ("steer-temperature-inf", [*STEER, "--temperature", "inf"], "--temperature: must be a finite number"),
    ("steer-temperature-word", [*STEER, "--temperature", "hot"], "--temperature: must be a number"),
    ("steer-top-p-zero", [*STEER, "--top-p", "0"], "top-p must be in"),
    ("steer-top-p-above-one", [*STEER, "--top-p", "1.5"], "top-p must be in"),
    ("steer-top-p-nan", [*STEER, "--top-p", "nan"], "--top-p"),
    ("steer-seed-65-bits", [*STEER, "--seed", str(2**64)], "--seed: must be a whole number from 0 to 2**64-1"),
    ("steer-seed-huge", [*STEER, "--seed", "9" * 40], "--seed"),
    ("steer-seed-negative", [*STEER, "--seed", "-1"], "--seed"),
    ("steer-seed-float", [*STEER, "--seed", "1e3"], "--seed"),
    ("steer-sweep-word", [*STEER, "--sweep", "1,x"], "--sweep takes numbers"),
    ("steer-sweep-empty", [*STEER, "--sweep", ","], "--sweep takes finite numbers"),
    ("steer-sweep-nan", [*STEER, "--sweep", "1,nan"], "--sweep takes finite numbers"),
    ("steer-sweep-max-multiple-past-the-limit", [*STEER, "--sweep", "9999x"], "beyond ±10000 swamps"),  # 33,541 added
    ("steer-sweep-huge", [*STEER, "--sweep", "1,1e38"], "within"),
    ("steer-device-junk", [*STEER, "--device", "gpu"], "unknown device 'gpu'"),
    ("steer-demo-refuses-fp16", [*STEER, "--dtype", "fp16"], "demo runs in float32 only"),
    ("steer-feature-out-of-range", ["steer", *P, "--feature", "demo/99999:1"], "feature 99999 out of range"),
    ("steer-feature-without-sae-on-two", ["steer", *P, "--feature", "5:1"], "several SAEs are loaded, name one of: demo, demo-late"),
    ("steer-unknown-sae", ["steer", *P, "--feature", "nope/5:1"], "no loaded SAE named 'nope'"),
    # attribute
    ("attribute-no-prompt", ["attribute"], "required: --prompt"),
    ("attribute-blank-prompt", ["attribute", "--prompt", " "], "empty prompt"),
    ("attribute-invalid-utf8", ["attribute", "--prompt", "\udcff"], "invalid UTF-8 byte 0xff"),
    ("attribute-top-k-zero", [*ATTR, "--top-k", "0"], "--top-k: must be a positive"),
    ("attribute-verify-negative", [*ATTR, "--verify", "-1"], "--verify: must be a whole number >= 0"),
    ("attribute-verify-word", [*ATTR, "--verify", "all"], "--verify"),
    ("attribute-position-word", [*ATTR, "--position", "last"], "--position: must be a whole number"),
    ("attribute-position-float", [*ATTR, "--position", "1.5"], "--position"),
    ("attribute-position-out-of-range", [*ATTR, "--position", "99"], "position 99 out of range: the prompt has 3 tokens"),
    ("attribute-position-negative-out-of-range", [*ATTR, "--position=-4"], "position -4 out of range"),
    ("attribute-target-empty", [*ATTR, "--target", ""], "--target is empty"),
    ("attribute-versus-empty", [*ATTR, "--versus", ""], "--versus is empty"),
    ("attribute-target-several-tokens", [*ATTR, "--target", " Kathmandu"], "target ' Kathmandu' is 6 tokens"),
    ("attribute-versus-several-tokens", [*ATTR, "--versus", "xyzzy"], "versus 'xyzzy' is"),
    ("attribute-target-unicode-digit", [*ATTR, "--target", "²"], "target '²' is 2 tokens"),
    ("attribute-target-id-out-of-range", [*ATTR, "--target", "99999"], "target id 99999 out of range"),
    ("attribute-versus-is-target", [*ATTR, "--target", "5", "--versus", "5"], "--versus is --target itself"),
    ("attribute-versus-is-top-prediction", ["attribute", "--prompt", "The capital of France is", "--versus", " Paris"],
     "versus is the model's top prediction itself"),
    ("attribute-demo-refuses-bf16", [*ATTR, "--dtype", "bf16"], "demo runs in float32 only"),
    ("attribute-device-junk", [*ATTR, "--device", "junk"], "unknown device 'junk'"),
    ("attribute-model-without-sae", [*ATTR, "--model", "somewhere"], "--sae is required with --model"),
    ("attribute-sae-missing-path", [*ATTR, "--sae", "{tmp}/no-sae"], "no SAE at"),
    ("attribute-unknown-option", [*ATTR, "--feature", "3"], "unrecognized arguments"),
    # circuit
    ("circuit-no-target", ["circuit", *P], "required: --target"),
    ("circuit-no-prompt", ["circuit", "--target", "5"], "give --prompt TEXT, --prompts FILE or both"),
    ("circuit-blank-prompt", ["circuit", "--prompt", " ", "--target", "5"], "empty prompt"),
    ("circuit-prompts-missing-file", ["circuit", "--prompts", "{tmp}/none.txt", "--target", "5"], "no prompts file at"),
    ("circuit-prompts-a-folder", ["circuit", "--prompts", "{tmp}", "--target", "5"], "prompts file"),
    ("circuit-held-out-one", ["circuit", *P, "--target", "5", "--held-out", "1"], "--held-out: must be a share"),
    ("circuit-held-out-word", ["circuit", *P, "--target", "5", "--held-out", "half"], "--held-out: must be a number"),
    ("circuit-nodes-zero", ["circuit", *P, "--target", "5", "--nodes", "0"], "--nodes: must be a positive"),
    ("circuit-steps-negative", ["circuit", *P, "--target", "5", "--steps", "-1"], "--steps: must be a whole number >= 0"),
    ("circuit-versus-is-target", ["circuit", *P, "--target", "5", "--versus", "5"], "--versus is --target itself"),
    ("circuit-target-several-tokens", ["circuit", *P, "--target", " Kathmandu"], "target ' Kathmandu' is 6 tokens"),
    ("circuit-prompts-of-other-lengths", ["circuit", *P, "--prompts", "{corpus}", "--target", "5"],
     "the prompts of a circuit must have the same number of tokens"),
    # index
    ("index-no-corpus", ["index"], "required: --corpus"),
    ("index-missing-corpus", ["index", "--corpus", "{tmp}/nothing.txt"], "no dataset file at"),
    ("index-corpus-is-folder", ["index", "--corpus", "{tmp}"], "no dataset file at"),
    ("index-ctx-negative", [*INDEX, "--ctx", "-1"], "--ctx: must be a positive"),
    ("index-ctx-zero", [*INDEX, "--ctx", "0"], "--ctx"),
    ("index-max-tokens-negative", [*INDEX, "--max-tokens", "-1"], "--max-tokens"),
    ("index-max-tokens-zero", [*INDEX, "--max-tokens", "0"], "--max-tokens"),
    ("index-batch-size-zero", [*INDEX, "--batch-size", "0"], "--batch-size"),
    ("index-top-k-negative", [*INDEX, "--top-k", "-3"], "--top-k"),
    ("index-top-k-unicode", [*INDEX, "--top-k", "²"], "--top-k"),
    ("index-out-is-a-file", [*INDEX, "--out", "{file}"], "is a file, not a folder"),
    ("index-out-under-a-file", [*INDEX, "--out", "{file}/sub/index"], "is a file, not a folder"),
    ("index-out-unwritable", [*INDEX, "--out", "{readonly}/index"], "cannot write in"),
    ("index-dtype-junk", [*INDEX, "--dtype", "fp8"], "unknown dtype"),
    ("index-device-junk", [*INDEX, "--device", "tpu"], "unknown device"),
    # search
    ("search-no-query", ["search"], "required: query"),
    ("search-empty-query", ["search", "  "], "empty query"),
    ("search-limit-negative", ["search", "cat", "--limit", "-1"], "--limit: must be a positive"),
    ("search-limit-zero", ["search", "cat", "--limit", "0"], "--limit"),
    ("search-limit-word", ["search", "cat", "--limit", "all"], "--limit"),
    ("search-unicode-digit", ["search", "²"], "ASCII digits"),
    ("search-invalid-utf8", ["search", "\udcff"], "invalid UTF-8"),
    ("search-device-junk", ["search", "cat", "--device", "junk"], "unknown device"),
    ("search-out-of-range", ["search", "99999"], "feature 99999 out of range"),
    # labels
    ("labels-no-file", ["labels"], "required: file"),
    ("labels-missing-file", ["labels", "{tmp}/none.json"], "no labels file"),
    ("labels-dtype-junk", ["labels", "{file}", "--dtype", "junk"], "unknown dtype"),
    ("labels-index-missing", ["labels", "{labels}", "--index", "{tmp}/no-index"], "no feature index at"),
    ("labels-index-is-a-file", ["labels", "{labels}", "--index", "{file}"], "feature index at"),
    # snapshot
    ("snapshot-no-out", ["snapshot", *P], "required: --out"),
    ("snapshot-no-prompt", ["snapshot", "--out", "{tmp}/s.svg"], "required: --prompt"),
    ("snapshot-blank-prompt", ["snapshot", "--prompt", " ", "--out", "{tmp}/s.svg"], "empty prompt"),
    ("snapshot-invalid-utf8", ["snapshot", "--prompt", "\udcff", "--out", "{tmp}/s.svg"], "invalid UTF-8"),
    ("snapshot-app-model-without-app-sae", [*SNAP, "--app-model", "{tmp}"], "--app-sae is required with --app-model"),
    ("snapshot-size-word", [*SNAP, "--size", "big"], "--size must be WIDTHxHEIGHT"),
    ("snapshot-size-half", [*SNAP, "--size", "120x"], "--size must be WIDTHxHEIGHT"),
    ("snapshot-size-zero", [*SNAP, "--size", "0x0"], "width must be"),
    ("snapshot-size-tiny", [*SNAP, "--size", "10x5"], "width must be"),
    ("snapshot-size-too-small-for-the-app", [*SNAP, "--size", "40x11"], "height 12..500"),  # a picture of "too small"
    ("snapshot-size-huge", [*SNAP, "--size", "99999x99999"], "width must be"),
    ("snapshot-size-unicode", [*SNAP, "--size", "²0x40"], "--size must be WIDTHxHEIGHT"),
    ("snapshot-out-missing-folder", ["snapshot", *P, "--out", "{tmp}/missing/s.svg"], "does not exist"),
    ("snapshot-out-is-folder", ["snapshot", *P, "--out", "{tmp}"], "is a folder"),
    ("snapshot-out-unwritable", ["snapshot", *P, "--out", "{readonly}/s.svg"], "cannot write in"),
    ("snapshot-bad-feature", [*SNAP, "--feature", "²:4"], "ASCII digits"),
    ("snapshot-app-sae-needs-model", [*SNAP, "--app-sae", "x"], "--app-sae needs --app-model"),
    ("snapshot-unknown-feature", [*SNAP, "--feature", "99999:1"], "feature 99999 out of range"),
    ("snapshot-missing-model", [*SNAP, "--app-model", "nobody/missing-model", "--app-sae", "{tmp}"],
     "model nobody/missing-model is not complete in the cache"),
    ("snapshot-bad-app-sae", [*SNAP, "--app-model", "nobody/missing-model", "--app-sae", "x"],
     "neither a local path nor RELEASE/SAE_ID"),  # checked before anything asks the Hub or the cache
    # saes
    ("saes-unknown-model", ["saes", "--model", "no-such-model"], "no registry SAEs"),
    ("saes-model-without-value", ["saes", "--model"], "expected one argument"),
    # contrast, neighbours, analyze --span, steer --vector (issue 12)
    ("contrast-no-a", ["contrast", "--b", "The dog"], "required: --a"),
    ("contrast-no-b", ["contrast", "--a", "The cat"], "required: --b"),
    ("contrast-blank-prompt", [*CONTRAST[:-1], "  "], "empty prompt"),
    ("contrast-invalid-utf8", [*CONTRAST[:-1], "\udcff"], "invalid UTF-8 byte 0xff"),
    ("contrast-empty-file", [*CONTRAST[:-1], "{empty}"], "empty.txt holds no prompts"),
    ("contrast-missing-file", ["contrast", "--a", "{tmp}/none.txt", "--b", "x"], "set A: no file at"),
    ("contrast-folder", [*CONTRAST[:-1], "{tmp}"], "is a folder, not a file of prompts"),
    ("contrast-undecodable-file", [*CONTRAST[:-1], "{badutf8}"], "bad.txt:2: not valid UTF-8 (byte 0xff)"),
    ("contrast-top-k-zero", [*CONTRAST, "--top-k", "0"], "--top-k: must be a positive"),
    ("contrast-batch-size-word", [*CONTRAST, "--batch-size", "many"], "--batch-size"),
    ("contrast-bad-pool", [*CONTRAST, "--pool", "median"], "invalid choice: 'median'"),
    ("contrast-bad-by", [*CONTRAST, "--by", "luck"], "invalid choice: 'luck'"),
    ("contrast-bad-vector-name", [*CONTRAST, "--save-vector", "a/b"], "vector name 'a/b'"),
    ("contrast-dots-vector-name", [*CONTRAST, "--save-vector", ".."], "not only dots"),  # '..' is all allowed letters
    ("contrast-dash-vector-name", [*CONTRAST, "--save-vector=-v"], "not starting with '-'"),  # `--vector -v@..` fails
    ("contrast-dtype-junk", [*CONTRAST, "--dtype", "junk"], "unknown dtype"),
    ("neighbours-no-feature", ["neighbours"], "required: [SAE/]FEATURE"),
    ("neighbours-word-feature", ["neighbours", "cat"], "cannot read feature 'cat'"),
    ("neighbours-unicode-digit", ["neighbours", "²"], "ASCII digits"),
    ("neighbours-negative", ["neighbours", "--", "-5"], "cannot read feature"),
    ("neighbours-out-of-range", ["neighbours", "99999"], "feature 99999 out of range"),
    ("neighbours-unknown-sae", ["neighbours", "nope/5"], "no loaded SAE named 'nope'"),
    ("neighbours-unknown-against", ["neighbours", "5", "--against", "nope"], "no loaded SAE named 'nope'"),
    ("neighbours-top-k-zero", ["neighbours", "5", "--top-k", "0"], "--top-k"),
    ("analyze-span-junk", ["analyze", *P, "--span", "middle"], "span must be START:END"),
    ("analyze-span-reversed", ["analyze", *P, "--span", "4:2"], "is empty"),
    ("analyze-span-unicode", ["analyze", *P, "--span", "²:3"], "span must be START:END"),
    ("analyze-span-beyond-prompt", ["analyze", *P, "--span", "1:99"], "goes beyond the prompt's"),
    ("analyze-span-bad-pool", ["analyze", *P, "--span", "1:2", "--span-pool", "sum"], "invalid choice"),
    ("steer-no-feature-or-vector", ["steer", *P, "--scope", "all"], "required: --feature (or --vector)"),
    ("steer-unknown-vector", ["steer", *P, "--vector", "nope:2"], "no steering vector named 'nope'"),
    ("steer-vector-no-coefficient", ["steer", *P, "--vector", "nope"], "cannot read vector spec"),
    ("steer-vector-bad-name", ["steer", *P, "--vector", "../x:1"], "vector name"),
    ("steer-vector-nan", ["steer", *P, "--vector", "v:nan"], "finite number"),
    ("steer-vector-huge", ["steer", *P, "--vector", "v:1e9"], "too large"),
    # chat templates (issue 13); a model without a template and a template without a system turn: tests/core/test_chat.py
    ("analyze-system-without-chat", ["analyze", *P, "--system", "Be brief."], "--system needs --chat"),
    ("analyze-include-template-without-chat", ["analyze", *P, "--include-template"], "--include-template needs --chat"),
    ("analyze-chat-span-beyond", ["analyze", *P, "--chat", "--span", "1:999"], "goes beyond the prompt's"),
    ("analyze-chat-system-blank", ["analyze", *P, "--chat", "--system", "  "], "empty system prompt"),
    ("analyze-chat-system-without-value", ["analyze", *P, "--chat", "--system"], "expected one argument"),
    ("steer-steer-template-without-chat", [*STEER, "--steer-template"], "--steer-template needs --chat"),
    ("steer-system-without-chat", [*STEER, "--system", "Be brief."], "--system needs --chat"),
    ("steer-chat-system-invalid-utf8", [*STEER, "--chat", "--system", "\udcff"], "system prompt has invalid UTF-8 byte 0xff"),
    ("steer-scope-plus-junk", [*STEER, "--scope", "generated+junk"], "scope must be"),
    ("steer-scope-plus-empty", [*STEER, "--scope", "generated+"], "scope must be"),
    ("attribute-system-without-chat", [*ATTR, "--system", "Be brief."], "--system needs --chat"),
    ("attribute-chat-system-lone-surrogate", [*ATTR, "--chat", "--system", "a\ud800"], "lone surrogate U+D800"),
    ("snapshot-chat-size-too-small", [*SNAP, "--chat", "--size", "10x5"], "--size 10x5: width must be"),
    ("snapshot-system-unknown", [*SNAP, "--system", "x"], "unrecognized arguments"),
    # text inputs: one reader checks field types and file kinds (issue 25)
    ("contrast-jsonl-null-text", ["contrast", "--a", "{nulljsonl}", "--b", "x"], "field 'text' is null, not text"),
    ("contrast-jsonl-list-text", ["contrast", "--a", "{listjsonl}", "--b", "x"], "field 'text' is list, not text"),
    ("contrast-jsonl-row-not-object", ["contrast", "--a", "x", "--b", "{rowjsonl}"], "rows.jsonl:1 is a JSON list, not an object with a field 'text'"),
    ("contrast-char-device", ["contrast", "--a", "/dev/null", "--b", "x"], "/dev/null is a character device, not a file"),
    ("index-corpus-char-device", ["index", "--corpus", "/dev/null"], "/dev/null: it is a character device"),
    ("index-jsonl-object-text", ["index", "--corpus", "{objjsonl}"], "field 'text' is dict, not text"),
    ("evals-jsonl-number-text", ["evals", "--corpus", "{numjsonl}"], "field 'text' is int, not text"),
    ("labels-char-device", ["labels", "/dev/null"], "/dev/null: it is a character device"),
    # a quote of what was typed keeps its whitespace
    ("steer-feature-spaces-quoted-exactly", ["steer", *P, "--feature", "demo/1  2:3"], "'demo/1  2:3'"),
    ("contrast-vector-name-spaces-quoted-exactly", [*CONTRAST, "--save-vector", "a  b"], "vector name 'a  b'"),
    ("analyze-span-spaces-quoted-exactly", ["analyze", *P, "--span", "1 :2"], "got '1 :2'"),
    # numbers longer than Python reads (int() of over 4,300 digits), and an --out that is not a file
    ("neighbours-5000-digits", ["neighbours", HUGE], "too long (over 4300 digits)"),
    ("steer-feature-5000-digits", ["steer", *P, "--feature", f"demo/{HUGE}:1"], "too long (over 4300 digits)"),
    ("snapshot-size-5000-digits", [*SNAP, "--size", f"{HUGE}x40"], "too long (over 4300 digits)"),
    ("steer-scope-5000-digits", [*STEER, "--scope", f"0:{HUGE}"], "too long (over 4300 digits)"),
    ("steer-sae-layer-5000-digits", ["steer", *P, "--feature", f"{HUGE}/5:1"], "too long (over 4300 digits)"),
    ("attribute-target-5000-digits", [*ATTR, "--target", HUGE], "too long (over 4300 digits)"),
    ("analyze-span-5000-digits", ["analyze", *P, "--span", f"0:{HUGE}"], "too long (over 4300 digits)"),
    ("snapshot-out-a-pipe", ["snapshot", *P, "--out", "{fifo}"], "not a regular file"),
    ("snapshot-out-a-device", ["snapshot", *P, "--out", "/dev/null"], "not a regular file"),
    # an empty value is not the option left out (--model "" ran the demo, --out "" wrote to the default folder)
    ("analyze-model-empty", ["analyze", *P, "--model", ""], "--model: is empty"),
    ("app-model-empty", ["--model", " "], "--model: is empty"),
    ("download-model-empty", ["download", "--model", ""], "--model: is empty"),
    ("saes-model-empty", ["saes", "--model", ""], "--model: is empty"),
    # a path that holds no model said 'nothing to download, offline from now on' (and the load then failed)
    ("download-model-a-file", ["download", "--model", "{file}"], "is not a model folder (no config.json in it)"),
    ("download-model-a-folder-holding-no-model", ["download", "--model", "{tmp}"], "is not a model folder (no config.json in it)"),
    ("index-out-empty", [*INDEX, "--out", ""], "--out: is empty"),
    ("steer-sweep-empty-string", [*STEER, "--sweep", ""], "--sweep: is empty"),
    ("circuit-prompts-empty", ["circuit", *P, "--target", "5", "--prompts", ""], "--prompts: is empty"),
    # counts that would ask for more memory than any machine has (150 GB, 100 GB): refused before the model loads
    ("circuit-steps-huge", ["circuit", *P, "--target", "5", "--steps", "100000000"], "--steps must be 0 (attribution patching) to 1000"),
    ("index-top-k-huge", [*INDEX, "--top-k", "100000000"], "--top-k must be a whole number from 1 to 1000"),
    # a feature number beyond every loaded SAE names each one's range (it named the first's, as if the only one)
    ("search-number-beyond-every-sae", ["search", "1024"], "of every SAE loaded: demo has 0..255, demo-late has 0..1023"),
]


@pytest.fixture()
def places(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat\n", encoding="utf-8")
    labels = tmp_path / "labels.csv"
    labels.write_text("feature,label\n1,cats\n", encoding="utf-8")
    file = tmp_path / "afile"
    file.write_text("x", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    (tmp_path / "bad.txt").write_bytes(b"fine\n\xff\n")
    for name, row in (("null", '{"text": null}'), ("list", '{"text": ["a", "b"]}'), ("obj", '{"text": {"a": 1}}'),
                      ("num", '{"text": 5}'), ("row", '["a cat"]')):
        (tmp_path / f"{'rows' if name == 'row' else name}.jsonl").write_text(row + "\n", encoding="utf-8")
    os.mkfifo(tmp_path / "fifo")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    # root writes in any folder: /proc takes no new files from anyone
    unwritable = "/proc" if os.access(readonly, os.W_OK) else str(readonly)
    yield {"tmp": str(tmp_path), "corpus": str(corpus), "file": str(file), "readonly": unwritable,
           "labels": str(labels), "empty": str(tmp_path / "empty.txt"), "badutf8": str(tmp_path / "bad.txt"),
           **{f"{n}jsonl": str(tmp_path / f"{n}.jsonl") for n in ("null", "list", "obj", "num")},
           "rowjsonl": str(tmp_path / "rows.jsonl"), "fifo": str(tmp_path / "fifo")}
    readonly.chmod(0o700)


def test_at_least_80_cases_over_every_command():
    assert len(CASES) >= 80 and len({name for name, _, _ in CASES}) == len(CASES)
    commands = {argv[0] for _, argv, _ in CASES if not argv[0].startswith("-")}
    assert {"analyze", "steer", "index", "search", "labels", "snapshot", "saes", "contrast", "neighbours"} <= commands


@pytest.mark.parametrize("name, argv, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2(name, argv, pattern, places, capsys):
    argv = [a.format(**places) if "{" in a else a for a in argv]
    before = sorted(p.name for p in os.scandir(places["tmp"]))
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert (code, out) == (2, ""), (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("saetui: error: "), err
    assert pattern in lines[0], lines[0]
    assert sorted(p.name for p in os.scandir(places["tmp"])) == before  # nothing written


def test_unexpected_exception_is_one_line_exit_1_with_a_log(monkeypatch, capsys, tmp_path):
    from saetui.cli import sources

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def boom(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(sources, "run_saes", boom)
    code = main(["saes"])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 1 and out == "" and len(lines) == 1, err
    assert lines[0].startswith("saetui: error: internal error: ZeroDivisionError: division by zero second line")
    log = re.search(r"details in (\S+\.log)", lines[0])
    assert log, lines[0]
    assert "Traceback" in Path(log.group(1)).read_text(encoding="utf-8")
    monkeypatch.setenv("SAETUI_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["saes"])


def test_an_interrupted_command_says_so_once_and_ignores_a_second_ctrl_c_while_it_exits(monkeypatch, capsys):
    """A second Ctrl+C right after the first landed in a library's exit handler (wandb's temporary folder) and
    printed its traceback. The `saetui` process ignores it once interrupted; a caller's main([...]) is left alone."""
    import signal

    from saetui.cli import sources

    def interrupted(args):
        raise KeyboardInterrupt

    saved = signal.getsignal(signal.SIGINT)
    try:
        monkeypatch.setattr(sys, "argv", ["saetui", "saes"])
        assert main() == 0 and signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # done: a Ctrl+C while it exits
        signal.signal(signal.SIGINT, saved)  # printed an atexit handler's traceback (wandb's temporary folder)
        monkeypatch.setattr(sources, "run_saes", interrupted)
        assert main(["saes"]) == 130 and signal.getsignal(signal.SIGINT) is saved
        assert main() == 130 and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, saved)
    assert capsys.readouterr().err == "saetui: interrupted\n" * 2


def test_ctrl_c_while_snapshot_runs_the_app_is_an_interrupt_not_the_apps_teardown_error(monkeypatch, capsys, tmp_path):
    """asyncio.run answers Ctrl+C by cancelling the app's task; the app torn down mid-load raised its own error
    (`internal error: NoMatches: No nodes match 'StatusBar'`, about 1 in 8 interrupts while the app loaded)."""
    import asyncio
    import signal

    from textual.css.query import NoMatches

    from saetui.tui import snapshot

    async def render(*args):
        signal.raise_signal(signal.SIGINT)  # the user's Ctrl+C, while the app runs
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise NoMatches("No nodes match 'StatusBar' on Screen(id='_default')") from None
        return "<svg/>"

    monkeypatch.setattr(snapshot, "_render", render)
    assert main(["snapshot", *P, "--out", str(tmp_path / "s.svg")]) == 130
    assert capsys.readouterr().err == "saetui: interrupted\n" and not (tmp_path / "s.svg").exists()


@pytest.mark.parametrize("where", ["build_parser", "quiet_hf_output"])
def test_a_ctrl_c_in_the_first_second_is_the_same_one_line(monkeypatch, capsys, where):
    """Ctrl+C while the parser was built or transformers imported (the first second) printed a 24-line traceback."""
    import saetui.cli as cli
    import saetui.models.model as model

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli if where == "build_parser" else model, where, interrupted)
    assert main(["saes"]) == 130
    assert capsys.readouterr().err == "saetui: interrupted\n"


def test_half_characters_in_a_target_a_corpus_or_a_labels_file_are_one_line(tmp_path, capsys):
    """Undecodable bytes in --target/--versus (argv's lone surrogates) and JSON escapes of half a character in a
    corpus or labels file were internal errors (the tokenizer's TypeError, UnicodeEncodeError on saving)."""
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "a\\ud800b"}\n')
    labels = tmp_path / "l.json"
    labels.write_text('[{"index": 1, "description": "a\\udc80b"}]')
    for argv, says in [
        (["attribute", *P, "--target", "\udcff"], "the --target token has invalid UTF-8 byte 0xff at character 0"),
        (["circuit", *P, "--target", " Paris", "--versus", "x\ud800"], "the --versus token has a lone surrogate U+D800"),
        (["evals", "--corpus", str(corpus)], f"the text at {corpus}:1 has a lone surrogate U+D800 at character 1"),
        (["labels", str(labels)], "has a lone surrogate U+DC80 at character 1"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
    assert main(["attribute", *P, "--target", " "]) != 2 or "empty" not in capsys.readouterr().err  # a space is a token


def test_a_span_of_special_tokens_only_says_why_it_lists_nothing(capsys):
    """`--span 0:1` (only <bos>) said '(none fire)', though features fire there: special tokens are left out."""
    assert main(["analyze", "--prompt", "Tom has a red cat.", "--span", "0:1"]) == 0
    out = capsys.readouterr().out
    assert "(no token counted: special tokens are left out)" in out and "(none fire)" not in out


def test_help_still_prints_and_exits_0(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["steer", "--help"])
    assert exc.value.code == 0 and "--max-new-tokens" in capsys.readouterr().out


def test_defaults_come_from_the_settings_classes():
    from saetui.sae.index import IndexSettings
    from saetui.steering.generate import GenerationSettings

    parser = build_parser()
    steer = parser.parse_args(["steer", *P, "--feature", "5:1"])
    gen = GenerationSettings()
    assert (steer.max_new_tokens, steer.temperature, steer.top_p, steer.seed) == (gen.max_new_tokens, gen.temperature, gen.top_p, gen.seed)
    index = parser.parse_args(["index", "--corpus", "x"])
    idx = IndexSettings()
    assert (index.top_k, index.batch_size, index.ctx, index.max_tokens) == (idx.top_k, idx.batch_size, idx.ctx, idx.max_tokens)


def test_fair_successes(capsys):
    """Odd but valid: aliases and spellings that are accepted."""
    parser = build_parser()
    assert parser.parse_args(["analyze", *P, "--dtype", "BF16"]).dtype == "bfloat16"
    assert parser.parse_args(["analyze", *P, "--dtype", "fp32"]).dtype == "float32"
    assert parser.parse_args(["analyze", *P, "--device", "CPU"]).device == "cpu"
    assert parser.parse_args(["steer", *P, "--feature", "5:1", "--seed", str(2**64 - 1)]).seed == 2**64 - 1
    assert parser.parse_args(["steer", *P, "--feature", "5:1", "--temperature", "0"]).temperature == 0.0


def test_max_new_tokens_beyond_the_context_is_capped_with_one_warning(capsys):
    from saetui import demo

    model, _ = demo.load_demo()
    context = model.context_length
    code = main([*STEER, "--max-new-tokens", str(context * 100), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("saetui: warning: --max-new-tokens") and "capped" in lines[0]
    n_prompt = len(model.tokenizer("The cat", add_special_tokens=True)["input_ids"])
    assert len(json.loads(out)["steered"]["token_ids"]) <= context - n_prompt


@pytest.mark.parametrize("argv, warning", [
    (["contrast", "--a", "The red cat", "--b", "The red cat"], "sets A and B hold the same prompts: every difference is 0"),
    (["steer", *P, "--feature", "demo-late/195:4", "--scope", "template", "--max-new-tokens", "2"],
     "scope template covers none of positions 0..3"),
    (["steer", *P, "--feature", "demo-late/195:4", "--scope", "0:1+template", "--max-new-tokens", "2"],
     "scope 0:1+template: its template part steers nothing outside a chat"),
    (["steer", *P, "--feature", "demo-late/195:4", "--scope", "1000:2000", "--max-new-tokens", "2"],
     "scope 1000:2000 covers none of positions 0..3"),
    (["analyze", *P, "--span-pool", "mean"], "--span-pool has no effect without --span"),
    (["steer", *P, "--feature", "demo-late/195:4", "--seed", "5", "--top-p", "0.5", "--max-new-tokens", "2"],
     "--top-p and --seed have no effect at --temperature 0 (greedy decoding)"),
    (["circuit", *P, "--target", " the", "--held-out", "0.5", "--nodes", "2", "--steps", "0", "--verify", "2"],
     "--held-out has no effect with one prompt"),
], ids=["contrast-identical-sets", "steer-template-scope-without-chat", "steer-template-in-a-union-without-chat",
        "steer-scope-past-the-generation", "analyze-span-pool-without-span", "steer-seed-when-greedy",
        "circuit-held-out-with-one-prompt"])
def test_odd_but_usable_inputs_succeed_with_one_warning_line(argv, warning, capsys):
    """Issue 25: accepted, but the user hears once why the result may not be what they meant."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0 and out, err
    assert err.splitlines() == [f"saetui: warning: {err.splitlines()[0].removeprefix('saetui: warning: ')}"], err
    assert warning in err


def test_snapshot_neither_reads_nor_changes_the_saved_app_session(capsys, tmp_path):
    """Its help says it renders the demo: a script taking pictures must not change what the user's next `saetui`
    opens, nor picture the user's last prompt."""
    from saetui import state

    state.save_session({"model": None, "saes": [], "prompt": "my own saved prompt", "specs": []})
    saved = sorted((p.name, p.read_bytes()) for p in state.config_dir().iterdir() if p.is_file())
    code = main(["snapshot", *P, "--out", str(tmp_path / "s.svg"), "--size", "80x24"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert sorted((p.name, p.read_bytes()) for p in state.config_dir().iterdir() if p.is_file()) == saved
    assert "my own saved prompt" not in (tmp_path / "s.svg").read_text(encoding="utf-8").replace("&#160;", " ")


def test_steer_compare_prints_each_row_under_its_heading(capsys):
    code = main([*STEER, "--compare", "--max-new-tokens", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("--- steered ---\nThe cat") and "\n--- baseline ---\nThe cat" in out


def test_undecodable_argv_bytes_are_refused_in_one_line(tmp_path):
    """From a real command line, invalid UTF-8 arrives as lone surrogates (surrogateescape)."""
    import subprocess
    import sys

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "saetui.cli", "analyze", "--prompt", b"caf\xff"],
                          capture_output=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.decode().splitlines() == [
        "saetui: error: the prompt has invalid UTF-8 byte 0xff at character 3: give UTF-8 text"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_output_that_cannot_be_written_is_one_line_not_an_internal_error(tmp_path):
    """`saetui saes > /dev/full` said `internal error: OSError ...` and wrote a traceback log; a full disk is the
    user's to fix."""
    import subprocess

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path),
           "XDG_STATE_HOME": str(tmp_path)}
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "saetui.cli", "saes"], stdout=full, stderr=subprocess.PIPE,
                              env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == ["saetui: error: cannot write the output: No space left on device"]
    assert not (tmp_path / "saetui" / "log").exists()  # no traceback logged: not a bug


def test_utf8_argv_under_an_ascii_locale_names_the_locale_not_the_bytes(tmp_path):
    """LC_ALL=C with Python's UTF-8 mode off: 'café' arrived as escapes and was called invalid UTF-8."""
    import subprocess

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), "LC_ALL": "C",
           "PYTHONUTF8": "0"}
    proc = subprocess.run([sys.executable, "-m", "saetui.cli", "analyze", "--prompt", "café".encode()],
                          capture_output=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stdout == b""
    (line,) = proc.stderr.decode("utf-8", "replace").splitlines()
    assert "the prompt is UTF-8 but this terminal's locale reads" in line and "LC_ALL=C.UTF-8" in line


def test_snapshot_of_an_app_error_is_an_error_not_a_picture(monkeypatch, capsys, tmp_path):
    from saetui.sae.analyzer import SAEAnalyzer

    def broken(self, *args, **kwargs):
        raise RuntimeError("analysis broke")

    monkeypatch.setattr(SAEAnalyzer, "analyze", broken)
    code = main(["snapshot", *P, "--out", str(tmp_path / "s.svg"), "--size", "80x24"])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert (code, out) == (2, ""), err
    assert len(lines) == 1 and lines[0].startswith("saetui: error: the app showed an error"), err
    assert "analysis broke" in lines[0] and not (tmp_path / "s.svg").exists()


def test_snapshot_chat_renders_the_prompt_as_a_user_turn(capsys, tmp_path, gemma2_dir, sae_dir):
    """`snapshot --chat` was refused: now the app is put in chat mode (as Ctrl+T) before the picture; a model
    without a chat template is an error, not a picture of one."""
    import re

    code = main(["snapshot", "--prompt", "What is the capital of France?", "--chat", "--out", str(tmp_path / "c.svg"),
                 "--size", "100x30"])
    out, err = capsys.readouterr()
    assert code == 0, err
    text = re.sub(r"<[^>]+>", "", (tmp_path / "c.svg").read_text()).replace("&lt;", "<").replace("&gt;", ">")
    assert "<|user|>" in text and "<|assistant|>" in text  # the template's tokens are rows of the table
    code = main(["snapshot", *P, "--chat", "--out", str(tmp_path / "n.svg"), "--app-model", str(gemma2_dir),
                 "--app-sae", str(sae_dir)])
    out, err = capsys.readouterr()
    assert code == 2 and "has no chat template" in err and not (tmp_path / "n.svg").exists()


@pytest.mark.parametrize("argv, env, message", [
    (["index", "--corpus", "{corpus}"], "XDG_CACHE_HOME", "cannot create the index folder /proc/saetui-no/saetui/index"),
    (["contrast", "--a", "a cat", "--b", "a dog", "--save-vector", "v"], "XDG_CONFIG_HOME",
     "cannot create the vectors folder /proc/saetui-no/saetui/vectors"),
], ids=["index-default-folder", "contrast-save-vector"])
def test_where_a_command_will_write_is_checked_before_the_model_loads(argv, env, message, places, monkeypatch, capsys):
    from saetui.cli import common

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the folder was checked")

    monkeypatch.setattr(common, "open_session", no_load)
    monkeypatch.setenv(env, "/proc/saetui-no")
    code = main([a.format(**places) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.splitlines() == [f"saetui: error: {message}: cannot write in /proc"], err
