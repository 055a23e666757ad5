// SHA-256 of picked files in a Web Worker, with hash-wasm's WebAssembly SHA-256 (vendored,
// MIT): the page's main thread stays free while a multi-gigabyte UNet is read and hashed.
// Messages in: {id, file}. Messages out: {id, done} while reading, then {id, sha256} or
// {id, error}.
/* global hashwasm */
importScripts("../vendor/hash-wasm/sha256.umd.min.js");

const SLICE = 8 * 1024 * 1024;
const PROGRESS_EVERY_MS = 100;

async function hashFile(id, file) {
  const hasher = await hashwasm.createSHA256();
  hasher.init();
  let last = 0;
  for (let offset = 0; offset < file.size; offset += SLICE) {
    const chunk = new Uint8Array(await file.slice(offset, offset + SLICE).arrayBuffer());
    hasher.update(chunk);
    const now = Date.now();
    if (now - last >= PROGRESS_EVERY_MS) {
      last = now;
      postMessage({ id, done: Math.min(offset + SLICE, file.size) });
    }
  }
  postMessage({ id, done: file.size });
  return hasher.digest("hex");
}

self.onmessage = async (event) => {
  const { id, file } = event.data;
  try {
    postMessage({ id, sha256: await hashFile(id, file) });
  } catch (error) {
    postMessage({ id, error: String((error && error.message) || error) });
  }
};
