"""A strict reader for safetensors headers that never touches the tensor data.

Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data.
This reader is stricter than the reference parser on purpose, because differences between
parsers are where malicious files hide: it refuses duplicate keys (the reference keeps the
last one silently), leading whitespace before ``{``, NaN/Infinity, unknown tensor fields and
any byte of the data section not covered by exactly one tensor. Trailing JSON whitespace
after the object is accepted, because the reference writer pads the header with spaces.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

MAX_HEADER_SIZE = 100_000_000
MAX_REASONS = 20

# Bits per element, as in the reference implementation (safetensors 0.6+ has sub-byte floats).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}

_TENSOR_FIELDS = ("dtype", "shape", "data_offsets")
_SIZE_LIMIT = 2**64  # the reference computes sizes in u64/usize; anything larger overflows
_JSON_WHITESPACE = " \t\n\r"


class SafetensorsHeaderError(ValueError):
    """A safetensors header is malformed; ``reasons`` holds every problem found."""

    def __init__(self, reason: str, *more: str) -> None:
        super().__init__("; ".join((reason, *more)))
        self.reason = reason
        self.reasons: tuple[str, ...] = (reason, *more)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor entry of a header."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data_offsets: tuple[int, int]


@dataclass(frozen=True)
class Header:
    """A parsed, fully checked header; ``tensors`` are ordered by their data offsets."""

    header_size: int
    data_size: int
    metadata: dict[str, str] | None
    tensors: tuple[TensorInfo, ...]


def quote(value: object, limit: int = 80) -> str:
    """Render an untrusted value for a message: printable, escaped and at most ``limit`` chars."""
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    shown = "".join(c if c.isprintable() and c != "\\" else _escape(c) for c in text)
    if len(shown) > limit:
        shown = shown[: limit - 3] + "..."
    return f"'{shown}'" if isinstance(value, str) else shown


def _escape(char: str) -> str:
    code = ord(char)
    if char == "\\":
        return "\\\\"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def sniff_foreign_format(prefix: bytes) -> str | None:
    """Name the pickle or zip (PyTorch) format a file starts with, or None."""
    if len(prefix) >= 2 and prefix[0] == 0x80 and 2 <= prefix[1] <= 5:
        return f"a Python pickle (protocol {prefix[1]})"
    if prefix.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "a zip archive (the format of torch.save)"
    return None


def read_header(
    stream: BinaryIO, file_size: int, *, max_header_size: int = MAX_HEADER_SIZE
) -> Header:
    """Read and check the header of a safetensors file of ``file_size`` bytes from its start."""
    if file_size == 0:
        raise SafetensorsHeaderError(
            "file is empty (0 bytes); a .safetensors file starts with an 8-byte header length"
        )
    prefix = read_exactly(stream, min(8, file_size))
    foreign = sniff_foreign_format(prefix)
    if foreign:
        raise SafetensorsHeaderError(
            f"this is {foreign} renamed to .safetensors, which can run code when loaded; "
            "convert it with safetensors.torch.save_file instead of renaming it"
        )
    if len(prefix) < 8:
        raise SafetensorsHeaderError(
            f"file is truncated: only {len(prefix)} bytes, shorter than the 8-byte header "
            "length every .safetensors file starts with"
        )
    (size,) = struct.unpack("<Q", prefix)
    if size > max_header_size:
        raise SafetensorsHeaderError(
            f"header length {size} exceeds the limit of {max_header_size} bytes"
        )
    if 8 + size > file_size:
        raise SafetensorsHeaderError(
            f"header length {size} runs past the end of the file ({file_size} bytes)"
        )
    raw = read_exactly(stream, size)
    if len(raw) < size:
        raise SafetensorsHeaderError(
            f"file is truncated: the header declares {size} bytes but only {len(raw)} follow"
        )
    data_size = file_size - 8 - size
    parsed = _parse_json(raw)
    metadata, tensors = _check_entries(parsed, data_size)
    return Header(size, data_size, metadata, tensors)


def read_exactly(stream: BinaryIO, count: int) -> bytes:
    """Read ``count`` bytes, or fewer only at the end of the stream (short reads are retried)."""
    chunks: list[bytes] = []
    remaining = count
    while remaining > 0:
        chunk = stream.read(remaining)[:remaining]  # a misbehaving stream may return more
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class _Duplicates(dict):  # type: ignore[type-arg]
    """A JSON object that had repeated keys; ``duplicates`` names them."""

    duplicates: list[str]


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    duplicates: list[str] = []
    for key, value in pairs:
        if key in result and key not in duplicates:
            duplicates.append(key)
        result[key] = value
    if not duplicates:
        return result
    marked = _Duplicates(result)
    marked.duplicates = duplicates
    return marked


def _refuse_constant(token: str) -> Any:
    raise SafetensorsHeaderError(f"header contains {token}, which is not valid JSON")


def _parse_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SafetensorsHeaderError(
            f"header is not valid UTF-8 (byte {exc.start} of the header)"
        ) from None
    if not text.startswith("{"):
        stripped = text.lstrip(_JSON_WHITESPACE)
        if stripped.startswith("{"):
            raise SafetensorsHeaderError(
                "header must start with '{'; leading whitespace is refused because parsers "
                "disagree about it"
            )
        if stripped.startswith("["):
            raise SafetensorsHeaderError(
                "header is a JSON array, but it must be a JSON object mapping tensor names "
                "to {dtype, shape, data_offsets}"
            )
    decoder = json.JSONDecoder(object_pairs_hook=_object_pairs, parse_constant=_refuse_constant)
    try:
        value, end = decoder.raw_decode(text)
    except SafetensorsHeaderError:
        raise
    except json.JSONDecodeError as exc:
        raise SafetensorsHeaderError(f"header is not valid JSON: {exc}") from None
    except RecursionError:
        raise SafetensorsHeaderError("header is not valid JSON: it nests too deeply") from None
    except ValueError:  # an integer literal with more digits than Python converts
        raise SafetensorsHeaderError(
            "header is not valid JSON: a number has too many digits"
        ) from None
    if text[end:].strip(_JSON_WHITESPACE):
        raise SafetensorsHeaderError(
            f"header has unexpected content after the JSON object (at byte {end})"
        )
    if not isinstance(value, dict):
        raise SafetensorsHeaderError(
            f"header is a JSON {_json_type(value)}, but it must be a JSON object mapping "
            "tensor names to {dtype, shape, data_offsets}"
        )
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "number"


def _check_entries(
    header: dict[str, Any], data_size: int
) -> tuple[dict[str, str] | None, tuple[TensorInfo, ...]]:
    reasons: list[str] = []
    if isinstance(header, _Duplicates):
        names = ", ".join(quote(name) for name in header.duplicates[:5])
        reasons.append(f"tensor name {names} is defined more than once in the header")
    metadata = _check_metadata(header.get("__metadata__"), reasons)
    tensors: list[TensorInfo] = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        tensor = _check_tensor(name, info, reasons)
        if tensor is not None:
            tensors.append(tensor)
        if len(reasons) > MAX_REASONS:
            break
    if not reasons:
        reasons.extend(_check_coverage(tensors, data_size))
    if reasons:
        if len(reasons) > MAX_REASONS:
            reasons[MAX_REASONS:] = ["more problems in this header were not listed"]
        raise SafetensorsHeaderError(*reasons)
    tensors.sort(key=lambda t: t.data_offsets)
    return metadata, tuple(tensors)


def _check_metadata(value: Any, reasons: list[str]) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        reasons.append(
            f"__metadata__ is a JSON {_json_type(value)}; it must map strings to strings"
        )
        return None
    if isinstance(value, _Duplicates):
        keys = ", ".join(quote(key) for key in value.duplicates[:5])
        reasons.append(f"__metadata__ key {keys} is defined more than once")
    for key, item in value.items():
        if not isinstance(item, str):
            reasons.append(
                f"__metadata__ value for {quote(key)} is a JSON {_json_type(item)}; "
                "it must map strings to strings"
            )
            break
    return value


def _check_tensor(name: str, info: Any, reasons: list[str]) -> TensorInfo | None:
    label = f"tensor {quote(name)}"
    if not isinstance(info, dict):
        reasons.append(f"{label} is a JSON {_json_type(info)}; expected an object")
        return None
    problems: list[str] = []
    if isinstance(info, _Duplicates):
        problems.append(f"{label} has field {quote(info.duplicates[0])} more than once")
    missing = [field for field in _TENSOR_FIELDS if field not in info]
    if missing:
        problems.append(f"{label} is missing {', '.join(missing)}")
    extra = [key for key in info if key not in _TENSOR_FIELDS]
    if extra:
        problems.append(f"{label} has unexpected field {quote(extra[0])}")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if "dtype" in info and (not isinstance(dtype, str) or dtype not in DTYPE_BITS):
        problems.append(
            f"{label} has unknown dtype {quote(dtype)}; known dtypes: {', '.join(DTYPE_BITS)}"
        )
    if "shape" in info and not _is_index_list(shape):
        detail = " (a dimension is negative)" if _has_negative(shape) else ""
        problems.append(
            f"{label} shape {quote(shape)} is not a list of non-negative integers{detail}"
        )
    if "data_offsets" in info:
        if not (_is_index_list(offsets) and len(offsets) == 2):
            problems.append(
                f"{label} data_offsets {quote(offsets)} must be two non-negative integers "
                "[start, end]"
            )
        elif offsets[0] > offsets[1]:
            problems.append(f"{label} data_offsets {quote(offsets)} end before they start")
    if problems:
        reasons.extend(problems)
        return None
    bits = _bit_size(shape, DTYPE_BITS[dtype])
    start, end = offsets
    if bits is None:
        reasons.append(
            f"{label} shape {quote(shape)} x {dtype} overflows a 64-bit byte size "
            "(integer overflow)"
        )
        return None
    if bits % 8:
        reasons.append(f"{label} shape {quote(shape)} x {dtype} does not fill whole bytes")
        return None
    size = bits // 8
    if size != end - start:
        reasons.append(
            f"{label} data_offsets {quote(offsets)} do not match shape {quote(shape)} "
            f"x {dtype} = {size} bytes"
        )
        return None
    return TensorInfo(name, dtype, tuple(shape), (start, end))


def _is_index_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, int) and not isinstance(item, bool) and item >= 0 for item in value
    )


def _has_negative(value: Any) -> bool:
    return isinstance(value, list) and any(
        isinstance(item, int) and not isinstance(item, bool) and item < 0 for item in value
    )


def _bit_size(shape: list[int], bits: int) -> int | None:
    """Bits taken by ``shape`` elements of ``bits`` each, or None past 2**64 bytes."""
    if 0 in shape:
        return 0
    total = bits
    for dim in shape:  # stop early: a hostile shape could make the product enormous
        total *= dim
        if total >= _SIZE_LIMIT * 8:
            return None
    return total


def _check_coverage(tensors: list[TensorInfo], data_size: int) -> Iterator[str]:
    covered = 0
    previous: TensorInfo | None = None
    for tensor in sorted(tensors, key=lambda t: t.data_offsets):
        start, end = tensor.data_offsets
        label = f"tensor {quote(tensor.name)} data_offsets {list(tensor.data_offsets)}"
        if end > data_size:
            yield f"{label} run past the end of the data section ({data_size} bytes)"
        if previous is not None and start < covered:
            yield (
                f"{label} overlap tensor {quote(previous.name)} "
                f"data_offsets {list(previous.data_offsets)}"
            )
        elif start > covered:
            yield f"{label} leave a gap of {start - covered} unused bytes before the tensor"
        if end >= covered:
            covered, previous = end, tensor
    if covered < data_size:
        yield (
            f"{data_size - covered} trailing bytes after the last tensor are not covered by "
            "any tensor"
        )
