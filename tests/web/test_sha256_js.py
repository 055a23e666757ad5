"""The upload page's client-side SHA-256 agrees with hashlib, one-shot and incremental."""

from __future__ import annotations

import hashlib

import pytest

pytestmark = pytest.mark.browser

HASH_IN_PAGE = """async ([sizes, chunk]) => {
  const { Sha256 } = await import("/assets/js/sha256.js");
  const out = [];
  for (const size of sizes) {
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 255;
    const hash = new Sha256();
    for (let at = 0; at < size; at += chunk) hash.update(bytes.subarray(at, at + chunk));
    out.push(hash.hex());
  }
  return out;
}"""


def _expected(size: int) -> str:
    return hashlib.sha256(bytes((i * 31 + 7) & 255 for i in range(size))).hexdigest()


@pytest.mark.parametrize("chunk", [1, 63, 4096])
def test_incremental_sha256_matches_hashlib(page, chunk):
    page.goto("/")
    sizes = [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 70_001]
    if chunk == 1:
        sizes = sizes[:-1]
    assert page.evaluate(HASH_IN_PAGE, [sizes, chunk]) == [_expected(n) for n in sizes]
