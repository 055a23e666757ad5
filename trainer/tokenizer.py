"""A CLIP byte-level BPE tokenizer whose vocabulary is learned offline from report words."""

from __future__ import annotations

import heapq
import json
import shutil
from collections import defaultdict
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from transformers import CLIPTokenizer

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"
MODEL_MAX_LENGTH = 77


def byte_to_unicode() -> dict[int, str]:
    """Return GPT-2/CLIP's reversible map from the 256 byte values to printable characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    shift = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + shift)
            shift += 1
    return {byte: chr(code) for byte, code in zip(printable, codes, strict=True)}


def report_words() -> list[str]:
    """Return the bundled radiology word list, deduplicated, in file order."""
    text = resources.files("trainer").joinpath("vocab/radiology_words.txt").read_text("utf-8")
    words = [line.strip() for line in text.splitlines()]
    return list(dict.fromkeys(w for w in words if w and not w.startswith("#")))


def learn_bpe_merges(words: Iterable[str]) -> list[tuple[str, str]]:
    """Learn merges until every word is one token (ties break by pair text: deterministic)."""
    symbols = [list(w[:-1]) + [w[-1] + END_OF_WORD] for w in dict.fromkeys(words) if w]
    counts: dict[tuple[str, str], int] = defaultdict(int)
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for index, word in enumerate(symbols):
        for pair in zip(word, word[1:], strict=False):
            counts[pair] += 1
            where[pair].add(index)
    heap = [(-count, pair) for pair, count in counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    while heap:
        negative, pair = heapq.heappop(heap)
        if counts.get(pair, 0) != -negative or negative == 0:
            continue  # a stale heap entry; the live count was pushed again
        merges.append(pair)
        touched: set[tuple[str, str]] = set()
        for index in sorted(where.pop(pair)):
            word = symbols[index]
            for old in zip(word, word[1:], strict=False):
                counts[old] -= 1
                touched.add(old)
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            symbols[index] = merged
            for new in zip(merged, merged[1:], strict=False):
                counts[new] += 1
                where[new].add(index)
                touched.add(new)
        counts.pop(pair, None)
        for changed in touched:
            if counts.get(changed, 0) > 0:
                heapq.heappush(heap, (-counts[changed], changed))
            else:
                counts.pop(changed, None)
                where.pop(changed, None)
    return merges


def build_clip_vocab(words: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Return CLIP's vocab layout (bytes, bytes + ``</w>``, merges, specials) and its merges."""
    alphabet = list(byte_to_unicode().values())
    to_unicode = byte_to_unicode()
    encoded = ["".join(to_unicode[b] for b in w.encode("utf-8")) for w in words]
    merges = learn_bpe_merges(encoded)
    tokens = alphabet + [c + END_OF_WORD for c in alphabet] + [a + b for a, b in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    return vocab, merges


def write_clip_tokenizer_files(out_dir: Path, words: Iterable[str] | None = None) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` for words (default: report words) to out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_clip_vocab(report_words() if words is None else words)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (out_dir / "merges.txt").write_text("\n".join(lines) + "\n", "utf-8")
    return out_dir


def build_clip_tokenizer(work_dir: Path) -> CLIPTokenizer:
    """Build the report-language CLIP tokenizer (files written under work_dir)."""
    write_clip_tokenizer_files(work_dir)
    return CLIPTokenizer(
        str(work_dir / "vocab.json"),
        str(work_dir / "merges.txt"),
        model_max_length=MODEL_MAX_LENGTH,
    )


def copy_tokenizer_vocab_files(source_pipeline: Path, target_pipeline: Path) -> None:
    """Copy ``vocab.json``/``merges.txt`` (needed by transformers 4) if the target lacks them."""
    for name in ("vocab.json", "merges.txt"):
        source = Path(source_pipeline) / "tokenizer" / name
        target = Path(target_pipeline) / "tokenizer" / name
        if source.is_file() and not target.exists():
            shutil.copyfile(source, target)
