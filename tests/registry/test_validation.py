"""Validation at commit: a corpus of bad versions, each refused with the right file and reason."""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors
import safetensors.numpy
import safetensors.torch
import torch

from client.shared.safetensors_header import (
    SafetensorsHeaderError,
    read_header,
)
from client.shared.validation import (
    CODE_SUFFIXES,
    PICKLE_SUFFIXES,
    REQUIRED_CARD_FIELDS,
    FileEntry,
    Problem,
    check_file_kind,
    check_path,
    check_safetensors,
    parse_model_card,
    validate_folder,
    validate_version,
)

UNET = "unet/diffusion_pytorch_model.safetensors"
CARD = """---
license: other
base_model: stanford/roentgen-v1
datasets:
  - mimic-cxr-jpg-2.0.0
access_tier: credentialed
dua: physionet-credentialed-1.5.0
intended_use: Research on synthetic chest X-rays for data augmentation.
out_of_scope_use: Clinical diagnosis or any decision about a patient.
limitations: Trained on one hospital's frontal views; laterals are not modelled.
training_data: 1,024 image-impression pairs from MIMIC-CXR-JPG (credentialed access).
evaluation:
  fid_inception: 54.2
  side_accuracy: 0.91
tags: [chest-x-ray, synthetic]
---
# Tiny CXR model

Synthetic chest X-rays for research only.
"""


# --- building valid files -------------------------------------------------------------------


def safetensors_bytes(**arrays: np.ndarray) -> bytes:
    """A valid safetensors file written by the reference library."""
    return safetensors.numpy.save(arrays, metadata={"format": "pt"})


def raw_safetensors(header: Any, data: bytes = b"", length: int | None = None) -> bytes:
    """A safetensors file with exactly the given header (object, str or bytes) and data."""
    if isinstance(header, bytes):
        encoded = header
    elif isinstance(header, str):
        encoded = header.encode()
    else:
        encoded = json.dumps(header).encode()
    size = len(encoded) if length is None else length
    return struct.pack("<Q", size) + encoded + data


def tensor(dtype: str, shape: list[Any], offsets: list[Any]) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": offsets}


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00\x80")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def valid_version() -> dict[str, bytes]:
    """A tiny but complete diffusers folder with a model card, as path -> bytes."""

    def config(**values: Any) -> bytes:
        return json.dumps(values, indent=2).encode()

    rng = np.random.default_rng(0)
    model_index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.30.0",
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    text_encoder = io.BytesIO()
    text_encoder.write(
        safetensors.torch.save(
            {
                "embeddings.weight": torch.zeros(49, 32, dtype=torch.bfloat16),
                "position_ids": torch.arange(77).unsqueeze(0),
                "final_layer_norm.weight": torch.ones(32, dtype=torch.float16),
            },
            metadata={"format": "pt"},
        )
    )
    return {
        "README.md": CARD.encode(),
        "model_index.json": config(**model_index),
        "unet/config.json": config(_class_name="UNet2DConditionModel", sample_size=32),
        UNET: safetensors_bytes(
            conv_in_weight=rng.standard_normal((32, 4, 3, 3)).astype(np.float32),
            conv_in_bias=np.zeros(32, dtype=np.float16),
            num_steps=np.array(1000, dtype=np.int64),
            empty=np.zeros((0, 3), dtype=np.float32),
        ),
        "vae/config.json": config(_class_name="AutoencoderKL", latent_channels=4),
        "vae/diffusion_pytorch_model.safetensors": safetensors_bytes(
            encoder_conv_in_weight=np.ones((32, 3, 3, 3), dtype=np.float32)
        ),
        "text_encoder/config.json": config(architectures=["CLIPTextModel"], hidden_size=32),
        "text_encoder/model.safetensors": text_encoder.getvalue(),
        "tokenizer/vocab.json": config(**{"<|startoftext|>": 0, "<|endoftext|>": 1, "a": 2}),
        "tokenizer/merges.txt": b"#version: 0.2\na b\n",
        "tokenizer/tokenizer_config.json": config(model_max_length=77),
        "tokenizer/special_tokens_map.json": config(bos_token="<|startoftext|>"),
        "scheduler/scheduler_config.json": config(_class_name="PNDMScheduler"),
        "samples/effusion_left.png": tiny_png(),
    }


def entries_of(files: dict[str, bytes]) -> dict[str, FileEntry]:
    return {
        path: FileEntry(path, len(data), lambda data=data: io.BytesIO(data))
        for path, data in files.items()
    }


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def torch_saved(**kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2, 2)}, buffer, **kwargs)
    return buffer.getvalue()


# --- the corpus -------------------------------------------------------------------------------

Mutation = Callable[[dict[str, bytes]], None]


def put(path: str, data: bytes | str) -> Mutation:
    def apply(files: dict[str, bytes]) -> None:
        files[path] = data.encode() if isinstance(data, str) else data

    return apply


def weights(data: bytes) -> Mutation:
    return put(UNET, data)


def header(header_value: Any, data: bytes = b"", length: int | None = None) -> Mutation:
    return weights(raw_safetensors(header_value, data, length))


def remove(*paths: str) -> Mutation:
    def apply(files: dict[str, bytes]) -> None:
        for path in paths:
            del files[path]

    return apply


def edit_json(path: str, change: Callable[[dict[str, Any]], None]) -> Mutation:
    def apply(files: dict[str, bytes]) -> None:
        value = json.loads(files[path])
        change(value)
        files[path] = json.dumps(value).encode()

    return apply


def card(text: str) -> Mutation:
    return put("README.md", text)


def card_without(field: str) -> Mutation:
    lines = [line for line in CARD.splitlines(keepends=True) if not line.startswith(f"{field}:")]
    if field == "datasets":
        lines = [line for line in lines if not line.startswith("  - mimic")]
    if field == "evaluation":
        lines = [line for line in lines if not line.startswith(("  fid", "  side"))]
    return card("".join(lines))


W = tensor("F32", [2, 2], [0, 16])
DUPLICATE = '{"w": ' + json.dumps(W) + ', "w": ' + json.dumps(W) + "}"

CORPUS = [
    # safetensors headers
    ("header-length-over-limit", header({}, b"\0" * 16, length=100_000_001), UNET,
     "exceeds the limit of 100000000 bytes"),
    ("header-length-past-eof", header({}, b"", length=1000), UNET, "runs past the end of the file"),
    ("header-not-json", header(b'{"w": {"dtype": '), UNET, "not valid JSON"),
    ("header-not-utf8", header(b'{"\xff\xfe": 1}'), UNET, "not valid UTF-8"),
    ("header-json-array", header([W]), UNET, "is a JSON array"),
    ("header-json-string", header('"w"'), UNET, "must be a JSON object"),
    ("header-leading-whitespace", header(" " + json.dumps({"w": W}), b"\0" * 16), UNET,
     "must start with '{'"),
    ("header-trailing-garbage", header(json.dumps({"w": W}) + " x", b"\0" * 16), UNET,
     "unexpected content after the JSON object"),
    ("header-deep-nesting", header('{"w": ' + "[" * 100_000 + "]" * 100_000 + "}"), UNET,
     "nests too deeply"),
    ("header-huge-integer", header('{"w": ' + json.dumps(W)[:-9] + "9" * 5000 + "]}}"), UNET,
     "not valid JSON"),
    ("unknown-dtype", header({"w": tensor("F128", [2], [0, 32])}, b"\0" * 32), UNET,
     "unknown dtype 'F128'"),
    ("dtype-not-string", header({"w": tensor(4, [2], [0, 8])}, b"\0" * 8), UNET, "unknown dtype"),
    ("shape-dtype-mismatch", header({"w": tensor("F32", [2, 2], [0, 12])}, b"\0" * 12), UNET,
     "'w' data_offsets [0, 12] do not match shape [2, 2] x F32 = 16 bytes"),
    ("offsets-end-before-start", header({"w": tensor("F32", [2, 2], [16, 0])}, b"\0" * 16),
     UNET, "end before they start"),
    ("offsets-gap", header({"a": tensor("F32", [2], [0, 8]), "b": tensor("F32", [2], [12, 20])},
                           b"\0" * 20), UNET, "gap of 4 unused bytes"),
    ("offsets-overlap", header({"a": tensor("F32", [2], [0, 8]), "b": tensor("F32", [2], [4, 12])},
                               b"\0" * 12), UNET, "overlap tensor 'a'"),
    ("offsets-out-of-bounds", header({"w": W}, b"\0" * 8), UNET,
     "run past the end of the data section (8 bytes)"),
    ("duplicate-tensor-names", header(DUPLICATE, b"\0" * 16), UNET,
     "tensor name 'w' is defined more than once"),
    ("duplicate-tensor-field", header('{"w": {"dtype": "F32", "dtype": "F16", "shape": [2, 2], '
                                      '"data_offsets": [0, 16]}}', b"\0" * 16), UNET,
     "has field 'dtype' more than once"),
    ("trailing-bytes", header({"w": W}, b"\0" * 20), UNET, "4 trailing bytes"),
    ("nan-in-metadata", header('{"__metadata__": {"a": NaN}, "w": ' + json.dumps(W) + "}",
                               b"\0" * 16), UNET, "NaN"),
    ("infinity-in-shape", header('{"w": {"dtype": "F32", "shape": [Infinity], '
                                 '"data_offsets": [0, 16]}}', b"\0" * 16), UNET, "Infinity"),
    ("negative-shape", header({"w": tensor("F32", [-2, -2], [0, 16])}, b"\0" * 16), UNET,
     "dimension is negative"),
    ("float-shape", header({"w": tensor("F32", [2.0, 2], [0, 16])}, b"\0" * 16), UNET,
     "not a list of non-negative integers"),
    ("overflowing-shape", header({"w": tensor("F32", [2**62, 2**62], [0, 16])}, b"\0" * 16),
     UNET, "integer overflow"),
    ("sub-byte-misaligned", header({"w": tensor("F4", [3], [0, 2])}, b"\0" * 2), UNET,
     "does not fill whole bytes"),
    ("metadata-not-str-to-str", header({"__metadata__": {"epoch": 3}, "w": W}, b"\0" * 16),
     UNET, "__metadata__ value for 'epoch'"),
    ("metadata-not-object", header({"__metadata__": ["x"], "w": W}, b"\0" * 16), UNET,
     "__metadata__ is a JSON array"),
    ("tensor-missing-offsets", header({"w": {"dtype": "F32", "shape": [2]}}, b"\0" * 8), UNET,
     "missing data_offsets"),
    ("tensor-extra-field", header({"w": {**W, "storage": "x"}}, b"\0" * 16), UNET,
     "unexpected field 'storage'"),
    ("offsets-three-ints", header({"w": tensor("F32", [2], [0, 8, 8])}, b"\0" * 8), UNET,
     "must be two non-negative integers"),
    ("truncated-file", weights(b"\x10\x00\x00"), UNET, "file is truncated"),
    ("zero-byte-weights", weights(b""), UNET, "file is empty"),
    ("pickle-renamed", weights(pickle.dumps({"w": [1.0, 2.0]}, protocol=4)), UNET,
     "this is a Python pickle (protocol 4) renamed to .safetensors"),
    ("torch-legacy-pickle-renamed", weights(torch_saved(_use_new_zipfile_serialization=False)),
     UNET, "this is a Python pickle (protocol 2) renamed to .safetensors"),
    ("torch-zip-renamed", weights(torch_saved()), UNET,
     "this is a zip archive (the format of torch.save) renamed to .safetensors"),
    # other content under an innocent name
    ("pickle-named-png", put("samples/x.png", pickle.dumps([1])), "samples/x.png", "pickle"),
    ("zip-named-txt", put("notes.txt", torch_saved()), "notes.txt", "zip archive"),
    ("text-named-png", put("samples/x.png", "hello"), "samples/x.png", "is not a PNG image"),
    # unsafe paths
    ("path-dotdot", put("../x.json", "{}"), "../x.json", "contains a '..' component"),
    ("path-dotdot-inside", put("unet/../../x.json", "{}"), "unet/../../x.json", "'..'"),
    ("path-absolute", put("/etc/x.json", "{}"), "/etc/x.json", "is absolute"),
    ("path-backslash", put("unet\\x.json", "{}"), "unet\\x.json", "backslash"),
    ("path-nul", put("a\x00b.json", "{}"), "a\x00b.json", "NUL byte"),
    ("path-control-char", put("a\x1b[31mb.json", "{}"), "a\x1b[31mb.json", "U+001B"),
    ("path-bidi-override", put("x\u202enosj.py.json", "{}"), "x\u202enosj.py.json", "U+202E"),
    ("path-not-utf8", put("bad\udcff.json", "{}"), "bad\udcff.json", "not valid UTF-8"),
    ("path-long-component", put("a" * 256 + ".json", "{}"), "a" * 256 + ".json",
     "component of 261 bytes; the limit is 255"),
    ("path-too-long", put("/".join(["d" * 200] * 6) + ".json", "{}"),
     "/".join(["d" * 200] * 6) + ".json", "the limit is 1024"),
    ("path-hidden-git", put(".git/config.json", "{}"), ".git/config.json", "hidden"),
    ("path-empty-component", put("unet//x.json", "{}"), "unet//x.json", "empty component"),
    ("path-dot-component", put("./x.json", "{}"), "./x.json", "'.' component"),
    ("path-windows-reserved", put("unet/CON.json", "{}"), "unet/CON.json", "Windows"),
    ("path-windows-drive", put("C:/x.json", "{}"), "C:/x.json", "Windows"),
    ("path-case-collision", put("readme.md", "x"), "readme.md", "only by letter case"),
    ("path-file-and-folder", lambda f: f.update({"x.json": b"{}", "x.json/y.json": b"{}"}),
     "x.json", "both a file and a folder"),
    # model card
    ("card-missing", remove("README.md"), "", "no model card"),
    ("card-no-front-matter", card("# A model\n\nNo metadata.\n"), "README.md",
     "no YAML front matter"),
    ("card-front-matter-unterminated", card("---\nlicense: mit\n"), "README.md",
     "missing the closing '---' line"),
    ("card-front-matter-list", card("---\n- license\n- mit\n---\n"), "README.md",
     "must be a mapping"),
    ("card-front-matter-invalid-yaml", card("---\nlicense: [mit\n---\n"), "README.md",
     "not valid YAML"),
    ("card-empty-field", card(CARD.replace("dua: physionet-credentialed-1.5.0", "dua: ''")),
     "README.md", "field 'dua' is empty"),
    ("card-license-not-text", card(CARD.replace("license: other", "license: [a, b]")),
     "README.md", "'license' must be a single text value"),
    ("card-datasets-mapping", card(CARD.replace("  - mimic-cxr-jpg-2.0.0", "  a: b")),
     "README.md", "'datasets' must be a name or a list of names"),
    ("card-non-finite", card(CARD.replace("fid_inception: 54.2", "fid_inception: .nan")),
     "README.md", "non-finite number"),
    ("card-alias-bomb", card("---\na: &a [" + "x" * 1000 + "]\n" + "".join(
        f"{k}: &{k} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        for p, k in zip("abcdefgh", "bcdefghi", strict=True)) + "---\n"),
     "README.md", "expands to too much data"),
    ("card-recursive-alias", card("---\na: &a [1, *a]\n---\n"), "README.md",
     "contains itself through a YAML alias"),
    ("card-impossible-date", card(CARD.replace("---\n#", "date: 2024-13-45\n---\n#")),
     "README.md", "month must be in 1..12"),
    ("card-bad-bool-tag", card(CARD.replace("license: other", "license: !!bool maybe")),
     "README.md", "not valid YAML"),
    ("card-python-tag", card(CARD.replace("license: other", "license: !!python/name:os.system")),
     "README.md", "not valid YAML"),
    ("card-not-utf8", put("README.md", b"---\nlicense: \xff\n---\n"), "README.md", "UTF-8"),
    # diffusers layout
    ("layout-missing-component", edit_json("model_index.json", lambda v: v.update(
        controlnet=["diffusers", "ControlNetModel"])), "model_index.json",
     "component 'controlnet' (diffusers 'ControlNetModel'), but there is no controlnet/ folder"),
    ("layout-model-index-not-json", put("model_index.json", "{'unet': 1}"), "model_index.json",
     "not valid JSON"),
    ("layout-model-index-array", put("model_index.json", "[]"), "model_index.json",
     "must contain a JSON object"),
    ("layout-config-not-json", put("unet/config.json", '{"sample_size": 32,'), "unet/config.json",
     "not valid JSON"),
    ("layout-config-duplicate-key", put("vae/config.json", '{"a": 1, "a": 2}'), "vae/config.json",
     "key 'a' appears twice"),
    ("layout-config-missing", remove("unet/config.json"), "unet/config.json", "is missing"),
    ("layout-scheduler-config-missing", lambda f: f.update(
        {"scheduler/scheduler_config.json": b"{}", "scheduler/x.json": b"{}"}) or f.pop(
        "scheduler/scheduler_config.json"), "scheduler/scheduler_config.json", "is missing"),
    ("layout-component-without-weights", remove("vae/diffusion_pytorch_model.safetensors"),
     "vae/", "has no .safetensors weights"),
    ("layout-tokenizer-without-vocabulary", remove("tokenizer/vocab.json"), "tokenizer/",
     "no vocabulary files"),
    ("layout-foreign-library", edit_json("model_index.json", lambda v: v.update(
        unet=["evil_package", "UNet"])), "model_index.json", "only diffusers and transformers"),
    ("layout-custom-pipeline", edit_json("model_index.json", lambda v: v.update(
        _class_name=["pipeline", "MyPipeline"])), "model_index.json", "custom pipeline code"),
    ("layout-component-name-unsafe", edit_json("model_index.json", lambda v: v.update(
        {"../up": ["diffusers", "AutoencoderKL"]})), "model_index.json", "not a safe folder name"),
    ("layout-half-null-component", edit_json("model_index.json", lambda v: v.update(
        vae=["diffusers", None])), "model_index.json", "[library, class] or [null, null]"),
    ("layout-shard-index-missing-shard", put(
        "unet/diffusion_pytorch_model.safetensors.index.json",
        json.dumps({"weight_map": {"w": "diffusion_pytorch_model-00002.safetensors"}})),
     "unet/diffusion_pytorch_model.safetensors.index.json", "weight_map names"),
    ("layout-no-weights-at-all", lambda f: [f.pop(p) for p in list(f) if p != "README.md"],
     "", "no .safetensors weights"),
]  # fmt: skip

REFUSED_SUFFIXES = [*PICKLE_SUFFIXES, *CODE_SUFFIXES, ".zip", ".yaml", ".onnx", ".gguf"]


def refusal_phrase(suffix: str) -> str:
    if suffix in PICKLE_SUFFIXES:
        return "can run code when loaded"
    if suffix in CODE_SUFFIXES:
        return "custom code is refused"
    return "not accepted"


SUFFIX_CORPUS = [
    (f"suffix{suffix}", put(f"unet/weights{suffix}", b"\x80\x04K\x01."), f"unet/weights{suffix}",
     refusal_phrase(suffix))
    for suffix in REFUSED_SUFFIXES
] + [
    ("suffix-none", put("unet/weights", b"x"), "unet/weights", "files without a suffix"),
    ("suffix-uppercase-bin", put("unet/W.BIN", b"x"), "unet/W.BIN", "pickle-based"),
]  # fmt: skip

CARD_FIELD_CORPUS = [
    (f"card-missing-{field}", card_without(field), "README.md",
     f"missing the required field '{field}'")
    for field in REQUIRED_CARD_FIELDS
]  # fmt: skip

ALL_CASES = CORPUS + SUFFIX_CORPUS + CARD_FIELD_CORPUS


# --- tests ------------------------------------------------------------------------------------


def test_the_corpus_is_large_and_named_uniquely() -> None:
    ids = [case[0] for case in ALL_CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 25


@pytest.mark.parametrize(
    ("mutate", "path", "phrase"), [pytest.param(*case[1:], id=case[0]) for case in ALL_CASES]
)
def test_bad_input_is_refused_with_file_and_reason(
    mutate: Mutation, path: str, phrase: str
) -> None:
    files = valid_version()
    mutate(files)
    _, problems = validate_version(entries_of(files))
    matching = [p for p in problems if p.path == path and phrase in p.reason]
    assert matching, f"no problem on {path!r} containing {phrase!r}; got {problems}"
    for problem in problems:
        assert problem.reason.isprintable(), problem.reason


def test_a_valid_tiny_diffusers_folder_passes(tmp_path: Path) -> None:
    card_data, problems = validate_folder(write_folder(tmp_path, valid_version()))
    assert problems == []
    assert card_data["access_tier"] == "credentialed"
    assert card_data["datasets"] == ["mimic-cxr-jpg-2.0.0"]
    assert card_data["evaluation"] == {"fid_inception": 54.2, "side_accuracy": 0.91}
    json.dumps(card_data, allow_nan=False)


def test_every_problem_in_a_folder_is_reported_at_once(tmp_path: Path) -> None:
    files = valid_version()
    files["unet/diffusion_pytorch_model.bin"] = pickle.dumps({"w": 1})
    files["vae/diffusion_pytorch_model.safetensors"] = raw_safetensors({"w": W}, b"\0" * 20)
    files["text_encoder/model.safetensors"] = b""
    files["scheduler/scheduler_config.json"] = b"{"
    files["pipeline.py"] = b"import os\n"
    files["README.md"] = CARD.replace("license: other\n", "").encode()
    _, problems = validate_folder(write_folder(tmp_path, files))
    expected = [
        ("README.md", "missing the required field 'license'"),
        ("pipeline.py", "custom code is refused"),
        ("scheduler/scheduler_config.json", "not valid JSON"),
        ("text_encoder/model.safetensors", "file is empty"),
        ("unet/diffusion_pytorch_model.bin", "pickle-based"),
        ("vae/diffusion_pytorch_model.safetensors", "4 trailing bytes"),
    ]
    assert [(p.path, p.reason) for p in problems] == [
        (path, next(p.reason for p in problems if p.path == path and phrase in p.reason))
        for path, phrase in expected
    ]
    assert [p.path for p in problems] == sorted(p.path for p in problems)


class CountingStream(io.RawIOBase):
    """A file stream that counts the bytes handed out."""

    def __init__(self, path: Path, counter: list[int]) -> None:
        self._file = path.open("rb")
        self._counter = counter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(buffer)
        self._counter[0] += count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


def test_only_headers_are_read_from_a_64_mib_file(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    big = np.zeros(16 * 1024 * 1024, dtype=np.float32)
    safetensors.numpy.save_file({"a": big, "b": np.ones(3, dtype=np.float16)}, str(path))
    assert path.stat().st_size >= 64 * 1024 * 1024
    counter = [0]
    entry = FileEntry(UNET, path.stat().st_size, lambda: CountingStream(path, counter))
    files = {p: e for p, e in entries_of(valid_version()).items() if p != UNET}
    _, problems = validate_version({**files, UNET: entry})
    assert problems == []
    assert 0 < counter[0] < 1024 * 1024


def test_reads_stop_at_the_header_even_when_the_stream_returns_short_reads() -> None:
    data = raw_safetensors({"w": W}, b"\0" * 16)

    class Trickle(io.RawIOBase):
        def __init__(self) -> None:
            self.position = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            chunk = data[self.position : self.position + min(3, len(buffer))]
            buffer[: len(chunk)] = chunk
            self.position += len(chunk)
            return len(chunk)

    assert check_safetensors(FileEntry("w.safetensors", len(data), Trickle)) == []


def test_a_configurable_lower_header_limit() -> None:
    data = raw_safetensors({"w": W}, b"\0" * 16)
    with pytest.raises(SafetensorsHeaderError, match="exceeds the limit of 10 bytes"):
        read_header(io.BytesIO(data), len(data), max_header_size=10)


def test_reference_written_files_of_every_dtype_are_accepted() -> None:
    dtypes = [torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
              torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
              torch.float8_e4m3fn, torch.float8_e5m2, torch.uint16, torch.uint32,
              torch.uint64]  # fmt: skip
    tensors = {f"t{i}": torch.zeros(3, 5, dtype=dtype) for i, dtype in enumerate(dtypes)}
    tensors["scalar"] = torch.tensor(1.0)
    tensors["empty"] = torch.zeros(0, 7)
    data = safetensors.torch.save(tensors, metadata={"step": "60000"})
    parsed = read_header(io.BytesIO(data), len(data))
    assert {t.name for t in parsed.tensors} == set(tensors)
    assert parsed.metadata == {"step": "60000"}
    assert parsed.tensors[-1].data_offsets[1] == parsed.data_size


def test_mutated_headers_never_crash_and_are_never_laxer_than_the_reference() -> None:
    """Random byte edits: we only ever raise our own error, and accept nothing the reference
    parser refuses."""
    original = safetensors_bytes(a=np.ones((2, 3), dtype=np.float32), b=np.zeros(4, np.int8))
    rng = random.Random(1234)
    accepted = 0
    for _ in range(3000):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(min(len(data), 8 + 120))
            data[position] = rng.choice(
                b'{}[]",:0123456789-eE. \x00\xff' + bytes([rng.randrange(256)])
            )
        try:
            read_header(io.BytesIO(bytes(data)), len(data))
        except SafetensorsHeaderError:
            continue
        accepted += 1
        safetensors.deserialize(bytes(data))  # raises if the reference refuses it
    assert accepted > 0


def test_mutated_cards_and_configs_never_crash_the_validator() -> None:
    """Random edits of the card's YAML and of model_index.json give problems, never errors."""
    tokens = [
        "!!int ", "!!float ", "!!timestamp ", "!!binary ", "!!set ", "!!omap ", "&a ", "*a",
        "? ", ": ", "- ", "[", "]", "{", "}", "2024-13-40", "1e999", '"', "'", "\n", "  ",
        "!!bool ", "<<: ", "|", ">", "#", "\t", "\x00", "null", "---\n",
    ]  # fmt: skip
    rng = random.Random(42)
    base = valid_version()
    index = base["model_index.json"].decode()
    for _ in range(400):
        files = dict(base)
        text, target = (CARD, "README.md") if rng.random() < 0.5 else (index, "model_index.json")
        chars = list(text)
        for _ in range(rng.randint(1, 5)):
            chars.insert(rng.randrange(len(chars) + 1), rng.choice(tokens))
        files[target] = "".join(chars).encode()
        card_data, problems = validate_version(entries_of(files))
        json.dumps(card_data, allow_nan=False)
        assert all(isinstance(p, Problem) and p.reason.isprintable() for p in problems)


def test_check_path_accepts_ordinary_paths() -> None:
    for path in ["README.md", "unet/diffusion_pytorch_model.fp16.safetensors",
                 "samples/épanchement gauche.png", "a" * 255]:  # fmt: skip
        assert check_path(path) == []


def test_check_file_kind_allows_the_files_of_a_diffusers_folder() -> None:
    for path in valid_version():
        assert check_file_kind(path) == [], path
    assert check_file_kind("tokenizer/spiece.model") == []
    assert check_file_kind("unet/model.safetensors.index.json") == []


def test_parse_model_card_returns_data_body_and_problems() -> None:
    data, body, problems = parse_model_card(CARD)
    assert problems == []
    assert data["license"] == "other"
    assert body.startswith("# Tiny CXR model")
    data, body, problems = parse_model_card("---\nlicense: mit\n---\nbody\n")
    assert data == {"license": "mit"} and body == "body\n"
    assert {p.reason for p in problems} >= {
        "model card front matter is missing the required field 'dua'"
    }
    data, _, _ = parse_model_card("---\ndate: 2024-05-01\n" + CARD.removeprefix("---\n"))
    assert data["date"] == "2024-05-01"


def test_problem_to_dict_and_printable_str() -> None:
    problem = Problem("a\x1b[2Jb.json", "is refused")
    assert problem.to_dict() == {"field": "a\x1b[2Jb.json", "problem": "is refused"}
    assert str(problem).isprintable()
    assert str(Problem("", "no model card")) == "(version): no model card"


def test_max_file_size_is_enforced() -> None:
    _, problems = validate_version(entries_of(valid_version()), max_file_size=1000)
    assert any(p.path == UNET and "the limit is 1000" in p.reason for p in problems)
    entries = entries_of(valid_version())
    entries["notes.txt"] = FileEntry("notes.txt", -1, lambda: io.BytesIO(b""))
    _, problems = validate_version(entries)
    assert problems == [Problem("notes.txt", "has a negative size (-1)")]


def test_folder_symlinks_and_special_files_are_refused_hidden_files_ignored(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "model", valid_version())
    (root / "unet" / "linked.safetensors").symlink_to(root / UNET)
    (root / "outside").symlink_to(tmp_path)
    os.mkfifo(root / "pipe.txt")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / ".cache" / "huggingface").mkdir(parents=True)
    (root / ".cache" / "huggingface" / "x.py").write_text("import os\n")
    _, problems = validate_folder(root)
    assert [(p.path, p.reason.split(" (")[0].split(";")[0]) for p in problems] == [
        ("outside", "is a symbolic link"),
        ("pipe.txt", "is not a regular file"),
        ("unet/linked.safetensors", "is a symbolic link"),
    ]


def test_a_missing_folder_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    card_data, problems = validate_folder(tmp_path / "nope")
    assert card_data == {}
    assert [p.path for p in problems] == [""] and "is not a folder" in problems[0].reason


def test_unreadable_files_are_reported() -> None:
    def broken() -> io.BytesIO:
        raise PermissionError(13, "Permission denied")

    entries = entries_of(valid_version())
    entries[UNET] = FileEntry(UNET, 100, broken)
    _, problems = validate_version(entries)
    assert Problem(UNET, "could not be read: Permission denied") in problems


def test_the_validator_imports_without_torch_numpy_or_safetensors(tmp_path: Path) -> None:
    write_folder(tmp_path, valid_version())
    script = (
        "import sys\n"
        "for name in ('torch', 'numpy', 'safetensors'):\n"
        "    sys.modules[name] = None\n"
        "from registry.publishing.validation import validate_folder\n"
        f"card, problems = validate_folder(__import__('pathlib').Path({str(tmp_path)!r}))\n"
        "assert problems == [], problems\n"
        "print(card['license'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "other"
