"""A sha256 whose running state can be saved and restored, so a file received in chunks over
many requests (and server processes) is hashed as its bytes stream past, never re-read.

``hashlib`` cannot export its state, so this calls OpenSSL's ``SHA256_Init/Update/Final``
(the library CPython's ``hashlib`` already loads) on a ``SHA256_CTX`` this module owns. The
context is a plain struct (8 + 2 + 16 32-bit words and two unsigned ints, 112 bytes) whose
layout OpenSSL has kept since 0.9.8; ``state()`` returns its bytes with a version and length
prefix and ``from_state`` refuses anything else.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
from functools import cache
from typing import Any

_CTX_SIZE = 112
_MAGIC = b"sha256ctx1:"


class HashStateError(ValueError):
    """A saved hash state is not one this module wrote."""


@cache
def _libcrypto() -> Any:
    """OpenSSL's libcrypto, as loaded by ``_hashlib`` (or found on the library path)."""
    candidates: list[str] = []
    try:
        import _hashlib

        with open("/proc/self/maps") as maps:
            candidates += sorted(
                {line.split()[-1] for line in maps if "libcrypto" in line and "/" in line}
            )
        del _hashlib
    except (ImportError, OSError):
        pass
    found = ctypes.util.find_library("crypto")
    if found:
        candidates.append(found)
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
            for fn in (lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final):
                fn.restype = ctypes.c_int
            lib.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
            lib.SHA256_Init.argtypes = [ctypes.c_void_p]
            lib.SHA256_Final.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        except (OSError, AttributeError):
            continue
        if _self_test(lib):
            return lib
    raise RuntimeError("OpenSSL's libcrypto (SHA256_Init/Update/Final) is not available")


def _self_test(lib: Any) -> bool:
    ctx = ctypes.create_string_buffer(_CTX_SIZE)
    data = b"abc" * 100
    out = ctypes.create_string_buffer(32)
    if not lib.SHA256_Init(ctx):
        return False
    lib.SHA256_Update(ctx, data, len(data))
    lib.SHA256_Final(out, ctx)
    return out.raw == hashlib.sha256(data).digest()


class ResumableSha256:
    """``update`` like hashlib; ``state()`` / ``from_state()`` carry it across processes."""

    def __init__(self) -> None:
        self._lib = _libcrypto()
        self._ctx = ctypes.create_string_buffer(_CTX_SIZE)
        self._lib.SHA256_Init(self._ctx)
        self.size = 0

    @classmethod
    def from_state(cls, state: bytes) -> ResumableSha256:
        """The hash as ``state()`` saved it."""
        head = len(_MAGIC)
        if not state.startswith(_MAGIC) or len(state) != head + 8 + _CTX_SIZE:
            raise HashStateError("not a saved sha256 state")
        hasher = cls()
        hasher.size = int.from_bytes(state[head : head + 8], "big")
        ctypes.memmove(hasher._ctx, state[head + 8 :], _CTX_SIZE)
        return hasher

    def state(self) -> bytes:
        """The running state: magic, the byte count so far, and the raw context."""
        return _MAGIC + self.size.to_bytes(8, "big") + self._ctx.raw

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Hash ``data`` without copying it."""
        view = memoryview(data).cast("B")
        n = len(view)
        if not n:
            return
        if isinstance(data, bytes):
            pointer: Any = data  # ctypes passes a bytes object's buffer as is
        elif view.readonly:
            pointer = bytes(view)  # a read-only view of something else: rare, small
        else:
            pointer = (ctypes.c_char * n).from_buffer(view)
        self._lib.SHA256_Update(self._ctx, pointer, n)
        self.size += n

    def hexdigest(self) -> str:
        """The digest of everything so far; the running state is left untouched."""
        ctx = ctypes.create_string_buffer(self._ctx.raw, _CTX_SIZE)
        out = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, ctx)
        return out.raw.hex()
