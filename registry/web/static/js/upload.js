// The institutional upload form: hash files in the browser, open an upload session through
// the JSON API (with the session cookie and the CSRF header), send each file in chunks with
// Content-Range, and commit. The session id and the files' hashes stay in localStorage, so
// after a reload the user re-picks the folder and the upload continues where the server
// says (HEAD) it stopped. Checksums are computed in Web Workers (hash-wasm) as soon as
// files are picked, while the publisher fills in the card; the form's values are kept in
// localStorage too, so a reload mid-upload brings the whole form back.

import { HashPool } from "./hashing.js";

const form = document.getElementById("upload-form");
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
const storageKey = `registry-upload:${form.dataset.user}`;
const chunkSize = Number(form.dataset.chunkSize) || 16 * 1024 * 1024;
const PARALLEL_FILES = 3;
const RETRIES = 4;
const formKey = `registry-upload-form:${form.dataset.user}`;
const hashPool = new HashPool(form.dataset.hashWorker);

const $ = (id) => document.getElementById(id);
const els = {
  folder: $("folder"),
  files: $("files"),
  filesFolder: $("files-folder"),
  clearFiles: $("clear-files"),
  hashBar: $("hash-progress"),
  hashLabel: $("hash-label"),
  summary: $("error-summary"),
  list: $("file-list"),
  total: $("total-progress"),
  totalLabel: $("total-label"),
  status: $("upload-status"),
  problems: $("upload-problems"),
  submit: $("submit-upload"),
  resume: $("resume-panel"),
  resumeText: $("resume-text"),
  discard: $("discard-upload"),
  preview: $("card-preview"),
  cardSource: $("card-source"),
};

let picked = []; // [{path, file}]
const hashes = new Map(); // path\0size\0lastModified -> Promise of the sha256
const hashed = new Map(); // same key -> bytes read so far (for the checksum bar)
let session = null; // the API's session answer
let rows = new Map(); // path -> {row, bar, label, problem, size, sent}
let busy = false;
let cardTier = ""; // the access_tier of the picked README.md, if any
let keptTier = ""; // the form's tier the user chose to keep over the card's

// ---------------------------------------------------------------------------------------
// Helpers

function setStatus(text, kind = "info") {
  els.status.textContent = text;
  els.status.className = `flash flash-${kind}`;
  els.status.hidden = !text;
}

function humanSize(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  for (const unit of units) {
    if (value < 1000 || unit === "TB") return unit === "B" ? `${value} B` : `${value.toFixed(1)} ${unit}`;
    value /= 1000;
  }
  return `${bytes} B`;
}

async function api(method, url, { json, body, headers = {} } = {}) {
  const init = { method, credentials: "same-origin", headers: { "X-CSRFToken": csrfToken, ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(url, init);
  let data = null;
  if (method !== "HEAD" && (response.headers.get("Content-Type") || "").includes("json")) {
    data = await response.json();
  }
  return { response, data };
}

class ApiError extends Error {
  constructor(data, status) {
    super((data && data.error) || `The registry answered ${status}`);
    this.data = data || {};
    this.status = status;
  }
}

function remember(state) {
  localStorage.setItem(storageKey, JSON.stringify(state));
}

function remembered() {
  try {
    return JSON.parse(localStorage.getItem(storageKey) || "null");
  } catch {
    return null;
  }
}

function forget() {
  localStorage.removeItem(storageKey);
}

// ---------------------------------------------------------------------------------------
// Picking files

function relativePath(file, folder = "") {
  if (file.webkitRelativePath) {
    // A folder pick includes the folder's own name first; the version starts inside it.
    return file.webkitRelativePath.split("/").slice(1).join("/");
  }
  const prefix = folder.trim().replace(/^\/+|\/+$/g, "");
  return prefix ? `${prefix}/${file.name}` : file.name;
}

function isHidden(path) {
  return path.split("/").some((part) => part.startsWith("."));
}

function hashKey(path, file) {
  return `${path}\u0000${file.size}\u0000${file.lastModified}`;
}

// Hashing starts at once, in the workers, while the publisher completes the form.
function startHashing() {
  for (const { path, file } of picked) {
    const key = hashKey(path, file);
    if (hashes.has(key)) continue;
    hashed.set(key, 0);
    const promise = hashPool.hash(file, (done) => {
      hashed.set(key, done);
      updateHashBar();
    });
    promise.then(() => {
      hashed.set(key, file.size);
      setFileProgress(path, rows.get(path) ? rows.get(path).sent : 0, "checksum ready");
      updateHashBar();
    }, () => hashes.delete(key));
    hashes.set(key, promise);
  }
  updateHashBar();
}

function updateHashBar() {
  let size = 0;
  let done = 0;
  for (const { path, file } of picked) {
    size += file.size;
    done += hashed.get(hashKey(path, file)) || 0;
  }
  els.hashBar.max = Math.max(size, 1);
  els.hashBar.value = done;
  const complete = picked.length > 0 && done >= size;
  els.hashLabel.textContent = picked.length
    ? complete
      ? `all ${picked.length} ready`
      : `${humanSize(done)} of ${humanSize(size)} (${size ? Math.floor((done / size) * 100) : 0}%)`
    : "";
  form.dataset.hashed = complete ? "true" : "false";
}

async function onPick(fileList, { folder = null } = {}) {
  const fromFolder = folder === null;
  const all = Array.from(fileList).map((file) => ({ path: relativePath(file, folder || ""), file }));
  const readme = all.find((f) => f.path === "README.md");
  const chosen = all.filter((f) => f.path && !isHidden(f.path) && f.path !== "README.md");
  clearProblems();
  if (fromFolder) {
    picked = chosen;
  } else {
    // Files added folder by folder: each keeps the path it was given, and none may collide.
    const taken = new Set(picked.map((f) => f.path));
    const twice = chosen.filter((f) => taken.has(f.path)).map((f) => f.path);
    if (twice.length) {
      setStatus(
        `${twice.join(", ")} ${twice.length === 1 ? "is" : "are"} already in the list. A diffusers model has a ` +
          "config.json in each folder: type the folder (unet, vae, …) in “Into folder” before adding its files, " +
          "or choose the whole model folder above.",
        "error",
      );
      els.files.value = "";
      return;
    }
    picked = picked.concat(chosen);
    els.files.value = "";
  }
  picked.sort((a, b) => a.path.localeCompare(b.path));
  renderList();
  startHashing();
  if (readme) await fillCardFrom(readme.file);
  if (!fromFolder && !picked.some((f) => f.path === "model_index.json")) {
    setStatus("Added. A diffusers model also needs model_index.json at the top (leave “Into folder” empty for it).", "info");
  }
  const resuming = remembered();
  if (resuming && !busy) {
    await resume(resuming);
  } else {
    els.submit.disabled = picked.length === 0;
  }
}

function renderList() {
  els.list.replaceChildren();
  rows = new Map();
  for (const [index, { path, file }] of picked.entries()) {
    const li = document.createElement("li");
    li.dataset.path = path;
    li.id = `file-${index}`;
    li.tabIndex = -1;
    const name = document.createElement("span");
    name.className = "path";
    name.textContent = path;
    const size = document.createElement("span");
    size.className = "muted";
    size.textContent = humanSize(file.size);
    const progressCell = document.createElement("span");
    progressCell.className = "progress-cell";
    const bar = document.createElement("progress");
    bar.max = Math.max(file.size, 1);
    bar.value = 0;
    bar.setAttribute("aria-label", `Upload of ${path}`);
    const label = document.createElement("span");
    label.className = "small muted file-state";
    label.textContent = "waiting";
    progressCell.append(bar, label);
    const problem = document.createElement("span");
    problem.className = "problem";
    problem.hidden = true;
    li.append(name, size, progressCell, problem);
    els.list.append(li);
    rows.set(path, { li, bar, label, problem, size: file.size, sent: 0 });
  }
  updateTotal();
  $("file-summary").textContent = picked.length
    ? `${picked.length} files, ${humanSize(picked.reduce((n, f) => n + f.file.size, 0))}`
    : "";
}

function setFileProgress(path, sent, text) {
  const row = rows.get(path);
  if (!row) return;
  row.sent = sent;
  row.bar.value = Math.max(sent, row.size === 0 && text === "done" ? 1 : 0);
  if (text) row.label.textContent = text;
  row.li.classList.toggle("done", text === "done" || text === "already stored");
  updateTotal();
}

function updateTotal() {
  let size = 0;
  let sent = 0;
  for (const row of rows.values()) {
    size += row.size;
    sent += row.sent;
  }
  els.total.max = Math.max(size, 1);
  els.total.value = sent;
  const percent = size ? Math.floor((sent / size) * 100) : 0;
  els.totalLabel.textContent = size ? `${humanSize(sent)} of ${humanSize(size)} (${percent}%)` : "";
}

// ---------------------------------------------------------------------------------------
// The model card: the form's fields become README.md's YAML front matter.

const LIST_FIELDS = new Set(["datasets", "tags", "base_model"]);

function cardFields() {
  const fields = [];
  for (const input of form.querySelectorAll("[data-card-field]")) {
    const key = input.dataset.cardField;
    const raw = input.value.trim();
    if (!raw) continue;
    if (LIST_FIELDS.has(key) && raw.includes(",")) {
      fields.push([key, raw.split(",").map((s) => s.trim()).filter(Boolean)]);
    } else {
      fields.push([key, raw]);
    }
  }
  return fields;
}

// JSON strings and arrays are valid YAML flow scalars, so no YAML library is needed.
function cardText() {
  const front = cardFields().map(([key, value]) => `${key}: ${JSON.stringify(value)}`);
  const body = $("card_body").value;
  return `---\n${front.join("\n")}\n---\n${body.endsWith("\n") || !body ? body : body + "\n"}`;
}

function refreshPreview() {
  if (els.preview) els.preview.textContent = cardText();
}

async function fillCardFrom(file) {
  const text = await file.text();
  const { response, data } = await api("POST", form.dataset.cardFieldsUrl, { json: { text } });
  if (!response.ok || !data) return;
  cardTier = (data.fields.access_tier || "").trim();
  keptTier = "";
  let filled = 0;
  for (const input of form.querySelectorAll("[data-card-field]")) {
    const value = data.fields[input.dataset.cardField];
    if (value !== undefined && !input.value.trim() && !input.readOnly) {
      input.value = value;
      filled += 1;
    }
  }
  if (!$("card_body").value.trim() && data.body) {
    $("card_body").value = data.body;
    filled += 1;
  }
  if (els.cardSource) {
    els.cardSource.hidden = filled === 0;
  }
  syncTier();
}

// ---------------------------------------------------------------------------------------
// Problems beside files and fields

function clearProblems() {
  hideSummary();
  els.problems.replaceChildren();
  els.problems.hidden = true;
  for (const row of rows.values()) {
    row.problem.hidden = true;
    row.problem.textContent = "";
    row.li.classList.remove("failed");
  }
  for (const node of form.querySelectorAll(".field .error[data-js]")) node.remove();
  for (const node of form.querySelectorAll("[aria-invalid=true]")) node.removeAttribute("aria-invalid");
}

function fieldFor(reason) {
  for (const match of reason.matchAll(/'([a-z_]+)'/g)) {
    const input = form.querySelector(`[data-card-field="${match[1]}"]`) || form.elements[match[1]];
    if (input && input.closest) return input;
  }
  return null;
}

function showFieldProblem(input, text) {
  const field = input.closest(".field");
  const span = document.createElement("span");
  span.className = "error";
  span.dataset.js = "1";
  span.id = `${input.id}-js-error`;
  span.textContent = text;
  field.append(span);
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", span.id);
}

function hideSummary() {
  els.summary.hidden = true;
  const list = els.summary.querySelector("ul");
  if (list) list.remove();
}

// The error summary at the top of the form: every problem, each linking to its field or
// file, and it takes the focus so that a keyboard or screen-reader user lands on it.
function showSummary(entries) {
  const list = document.createElement("ul");
  for (const { text, target } of entries) {
    const li = document.createElement("li");
    if (target && target.id) {
      const link = document.createElement("a");
      link.href = `#${target.id}`;
      link.textContent = text;
      link.addEventListener("click", (event) => {
        event.preventDefault();
        target.scrollIntoView({ block: "center" });
        target.focus();
      });
      li.append(link);
    } else {
      li.textContent = text;
    }
    list.append(li);
  }
  hideSummary();
  els.summary.append(list);
  els.summary.hidden = false;
  els.summary.focus();
}

function labelOf(input) {
  const label = input.id ? form.querySelector(`label[for="${input.id}"]`) : null;
  return label ? label.firstChild.textContent.trim() : "";
}

function showProblems(error) {
  const problems = error.data.problems || [];
  const entries = [];
  const general = [];
  for (const problem of problems) {
    // The registry's one problems shape: {field, problem}; a file's problem names its path.
    const path = problem.field || "";
    const reason = problem.problem || String(problem);
    const row = rows.get(path);
    if (row) {
      row.problem.textContent = reason;
      row.problem.hidden = false;
      row.li.classList.add("failed");
      entries.push({ text: `${path}: ${reason}`, target: row.li });
      continue;
    }
    const input = path === "README.md" || !path ? fieldFor(reason) : form.elements[path] || null;
    if (input && input.closest) {
      showFieldProblem(input, reason);
      const label = labelOf(input);
      entries.push({ text: label ? `${label}: ${reason}` : reason, target: input });
    } else {
      const text = path && path !== "(version)" ? `${path}: ${reason}` : reason;
      general.push(text);
      entries.push({ text, target: null });
    }
  }
  if (!problems.length) {
    general.push(error.message);
    entries.push({ text: error.message, target: null });
  }
  if (general.length) {
    const list = document.createElement("ul");
    for (const text of general) {
      const li = document.createElement("li");
      li.textContent = text;
      list.append(li);
    }
    els.problems.replaceChildren(list);
    els.problems.hidden = false;
  }
  setStatus(
    problems.length ? `The registry found ${problems.length} problem(s); see the list at the top.` : error.message,
    "error",
  );
  showSummary(entries);
}

// ---------------------------------------------------------------------------------------
// Upload

async function hashAll(known = new Map()) {
  const out = [];
  for (const { path, file } of picked) {
    const key = hashKey(path, file);
    if (known.has(key) && !hashes.has(key)) {
      hashes.set(key, Promise.resolve(known.get(key)));
      hashed.set(key, file.size);
    }
  }
  startHashing();
  let waiting = 0;
  for (const { path, file } of picked) {
    const key = hashKey(path, file);
    if ((hashed.get(key) || 0) < file.size) waiting += 1;
  }
  if (waiting) setStatus(`Finishing the checksums of ${waiting} file(s)…`);
  for (const { path, file } of picked) {
    const sha256 = await hashes.get(hashKey(path, file));
    out.push({ path, size: file.size, sha256, lastModified: file.lastModified });
  }
  return out;
}

function sessionRequest(files) {
  const data = new FormData(form);
  const body = {
    repo: data.get("repo"),
    files: files.map(({ path, size, sha256 }) => ({ path, size, sha256 })),
    card: cardText(),
  };
  if (data.get("mode") === "new") {
    body.repo = `${form.dataset.namespace}/${(data.get("name") || "").trim()}`;
    body.tier = data.get("tier");
    if (data.get("dua")) body.dua = data.get("dua");
    const fields = (data.get("access_fields") || "").split("\n").map((line) => line.trim()).filter(Boolean);
    if (fields.length) {
      body.access_fields = fields.map((line) => {
        const [name, label, type] = line.split("|").map((s) => s.trim());
        return { name, label: label || name, type: type || "text" };
      });
    }
  }
  if ((data.get("tag") || "").trim()) body.tag = data.get("tag").trim();
  if ((data.get("base") || "").trim()) body.base = data.get("base").trim();
  return body;
}

async function start(event) {
  event.preventDefault();
  if (busy) return;
  if (tierMismatch()) {
    setStatus("The model card and the form name different access tiers: choose one above.", "error");
    $("tier-choice").scrollIntoView({ block: "center" });
    return;
  }
  if (!form.reportValidity()) return;
  if (!picked.length) {
    setStatus("Pick the model folder (or its files) first.", "error");
    return;
  }
  if (formTier() === "open" && !$("open_confirm").checked) {
    setStatus("An open version can be downloaded by anyone: tick the confirmation below the files first.", "error");
    $("open_confirm").focus();
    return;
  }
  busy = true;
  els.submit.disabled = true;
  clearProblems();
  try {
    const files = await hashAll();
    setStatus("Opening an upload session…");
    const { response, data } = await api("POST", form.dataset.uploadsUrl, { json: sessionRequest(files) });
    if (!response.ok) throw new ApiError(data, response.status);
    session = data;
    remember({ id: session.id, repo: session.repo, files, started: Date.now() });
    await sendAll();
    await commit();
  } catch (error) {
    failed(error);
  } finally {
    busy = false;
  }
}

async function resume(state) {
  busy = true;
  els.submit.disabled = true;
  try {
    const { response, data } = await api("GET", `${form.dataset.uploadsUrl}/${state.id}`);
    if (!response.ok || data.state !== "open") {
      forget();
      els.resume.hidden = true;
      setStatus(`The interrupted upload to ${state.repo} can no longer continue (${data ? data.state || data.error : response.status}). Start it again.`, "warning");
      els.submit.disabled = picked.length === 0;
      return;
    }
    session = data;
    const expected = new Map(state.files.map((f) => [f.path, f]));
    const missing = session.files.filter((f) => !f.complete && !picked.some((p) => p.path === f.path));
    if (missing.length) {
      setStatus(`These files of the interrupted upload are not in what you picked: ${missing.map((f) => f.path).join(", ")}. Pick the same folder again.`, "error");
      return;
    }
    // Reuse the checksums computed before the reload for files that did not change.
    const known = new Map(state.files.map((f) => [`${f.path}\u0000${f.size}\u0000${f.lastModified}`, f.sha256]));
    picked = picked.filter((p) => expected.has(p.path));
    renderList();
    const files = await hashAll(known);
    const changed = files.filter((f) => expected.get(f.path).sha256 !== f.sha256);
    if (changed.length) {
      setStatus(`Files changed since the upload started: ${changed.map((f) => f.path).join(", ")}. Discard the upload and start again.`, "error");
      return;
    }
    els.resume.hidden = true;
    setStatus("Resuming: asking the registry what already arrived…");
    await sendAll();
    await commit();
  } catch (error) {
    failed(error);
  } finally {
    busy = false;
  }
}

async function receivedOffset(file) {
  const { response } = await api("HEAD", file.upload_url);
  if (!response.ok) throw new ApiError(null, response.status);
  if (response.headers.get("Upload-Complete") === "true") return file.size;
  return Number(response.headers.get("Upload-Offset") || 0);
}

async function sendFile(entry) {
  const local = picked.find((p) => p.path === entry.path);
  if (entry.complete) {
    setFileProgress(entry.path, entry.size, entry.deduplicated ? "already stored" : "done");
    return;
  }
  let offset = await receivedOffset(entry);
  setFileProgress(entry.path, offset, offset ? "resuming" : "uploading");
  let failures = 0;
  while (offset < entry.size || (entry.size === 0 && offset === 0)) {
    const end = Math.min(offset + chunkSize, entry.size);
    const headers = { "Content-Type": "application/octet-stream" };
    if (entry.size > 0) headers["Content-Range"] = `bytes ${offset}-${end - 1}/${entry.size}`;
    let result;
    try {
      result = await api("PUT", entry.upload_url, { body: local.file.slice(offset, end), headers });
    } catch (networkError) {
      failures += 1;
      if (failures > RETRIES) throw new Error(`Connection lost while sending ${entry.path}. Reload the page to resume.`);
      setFileProgress(entry.path, offset, `retrying (${failures})`);
      await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** failures));
      offset = await receivedOffset(entry);
      continue;
    }
    const { response, data } = result;
    if (response.status === 409 && response.headers.get("Upload-Offset") !== null) {
      offset = Number(response.headers.get("Upload-Offset"));
      continue;
    }
    if (!response.ok) {
      if (response.status === 422) setFileProgress(entry.path, 0, "checksum mismatch");
      throw new ApiError(data, response.status);
    }
    failures = 0;
    offset = data.received;
    setFileProgress(entry.path, offset, data.complete ? "done" : "uploading");
    if (data.complete) return;
    if (entry.size === 0) return;
  }
}

async function sendAll() {
  const queue = session.files.slice();
  setStatus(`Uploading ${picked.length} files to ${session.repo}…`);
  const workers = Array.from({ length: Math.min(PARALLEL_FILES, queue.length) }, async () => {
    while (queue.length) await sendFile(queue.shift());
  });
  await Promise.all(workers);
}

async function commit() {
  setStatus("All files arrived. Checking the version and submitting it…");
  const { response, data } = await api("POST", `${form.dataset.uploadsUrl}/${session.id}/commit`, { json: {} });
  if (!response.ok) {
    if (response.status === 422) forget(); // the registry aborted the session
    throw new ApiError(data, response.status);
  }
  forget();
  forgetForm();
  const version = data.version;
  const where = data.state === "published" ? "It is published." : "It is now waiting for a registry administrator's review.";
  setStatus(`Upload complete: ${session.repo} version #${version.id}. ${where}`, "success");
  const link = $("after-upload");
  link.href = `${form.dataset.versionsUrl}/${version.id}`;
  link.hidden = false;
  form.dataset.state = "done";
}

function failed(error) {
  if (error instanceof ApiError) {
    showProblems(error);
  } else {
    setStatus(error.message, "error");
  }
  els.submit.disabled = false;
}

// ---------------------------------------------------------------------------------------
// The form's own values survive a reload (the files must be picked again: browsers never
// keep them).

function formControls() {
  return Array.from(form.querySelectorAll("input, select, textarea")).filter(
    (el) => el.type !== "file" && el.type !== "hidden" && !el.readOnly && (el.id || el.name),
  );
}

function saveForm() {
  const values = {};
  for (const el of formControls()) {
    if (el.type === "radio") {
      if (el.checked) values[`radio:${el.name}`] = el.value;
    } else if (el.type === "checkbox") {
      values[el.id || el.name] = el.checked;
    } else {
      values[el.id || el.name] = el.value;
    }
  }
  localStorage.setItem(formKey, JSON.stringify(values));
}

function restoreForm() {
  let values = null;
  try {
    values = JSON.parse(localStorage.getItem(formKey) || "null");
  } catch {
    values = null;
  }
  if (!values) return false;
  for (const el of formControls()) {
    if (el.type === "radio") {
      if (values[`radio:${el.name}`] !== undefined) el.checked = values[`radio:${el.name}`] === el.value;
    } else if (el.type === "checkbox") {
      if (values[el.id || el.name] !== undefined) el.checked = !!values[el.id || el.name];
    } else if (values[el.id || el.name] !== undefined) {
      el.value = values[el.id || el.name];
    }
  }
  return true;
}

function forgetForm() {
  localStorage.removeItem(formKey);
}

// ---------------------------------------------------------------------------------------
// Wiring

async function offerResume() {
  const state = remembered();
  if (!state) return;
  const { response, data } = await api("GET", `${form.dataset.uploadsUrl}/${state.id}`);
  if (!response.ok || data.state !== "open") {
    forget();
    return;
  }
  const total = data.files.reduce((n, f) => n + f.size, 0);
  const received = data.files.reduce((n, f) => n + (f.complete ? f.size : f.received), 0);
  els.resumeText.textContent =
    `An upload to ${data.repo} was interrupted after ${humanSize(received)} of ${humanSize(total)}. ` +
    "Pick the same folder again below and it continues where it stopped.";
  els.resume.hidden = false;
  form.dataset.state = "resumable";
}

async function discard() {
  const state = remembered();
  if (state) await api("DELETE", `${form.dataset.uploadsUrl}/${state.id}`);
  forget();
  els.resume.hidden = true;
  setStatus("The interrupted upload was discarded.", "info");
  els.submit.disabled = picked.length === 0;
}

function syncMode() {
  const mode = new FormData(form).get("mode");
  for (const node of form.querySelectorAll("[data-mode]")) {
    const active = node.dataset.mode === mode;
    node.hidden = !active;
    for (const input of node.querySelectorAll("input, select, textarea")) input.disabled = !active;
  }
  syncTier();
}

function syncTier() {
  const data = new FormData(form);
  let tier = data.get("tier");
  let dua = data.get("dua");
  if (data.get("mode") === "existing") {
    const option = form.elements.repo.selectedOptions[0];
    tier = option ? option.dataset.tier : "";
    dua = option ? option.dataset.dua : "";
  } else if (!dua) {
    const option = form.elements.tier.selectedOptions[0];
    dua = option ? option.dataset.dua : "";
  }
  $("card_access_tier").value = tier || "";
  $("card_dua").value = dua || "none";
  const fields = $("access-fields-field");
  if (fields) fields.hidden = tier !== "contributor-review" || data.get("mode") !== "new";
  syncTierChoice(tier, data.get("mode"));
  syncReview(tier, data.get("mode"));
  refreshPreview();
}

// The form never changes a card's tier silently: a mismatch is a visible choice, and
// submitting an open version needs an explicit confirmation.
function formTier() {
  const data = new FormData(form);
  if (data.get("mode") === "existing") {
    const option = form.elements.repo.selectedOptions[0];
    return option ? option.dataset.tier : "";
  }
  return data.get("tier") || "";
}

function tierMismatch() {
  const tier = formTier();
  return Boolean(cardTier) && cardTier !== tier && keptTier !== tier;
}

function syncTierChoice(tier, mode) {
  const box = $("tier-choice");
  box.hidden = !tierMismatch();
  if (box.hidden) return;
  const useCard = $("tier-use-card");
  const canUseCard = mode === "new" && [...form.elements.tier.options].some((o) => o.value === cardTier);
  $("tier-choice-text").textContent =
    `The model card's README.md says access_tier: ${cardTier}, but this upload is for the ` +
    `${tier} tier. Nothing is uploaded until you choose which one the card should say.` +
    (canUseCard ? "" : ` (${mode === "existing" ? "The model's tier is fixed." : "That tier does not exist here."})`);
  useCard.textContent = `Use the card's tier (${cardTier})`;
  useCard.hidden = !canUseCard;
  $("tier-keep-form").textContent = `Keep ${tier} (the card will say ${tier})`;
}

function syncReview(tier, mode) {
  const option = mode === "existing" ? form.elements.repo.selectedOptions[0] : form.elements.tier.selectedOptions[0];
  const reviewed = !option || option.dataset.review !== "false";
  els.submit.textContent = reviewed ? "Upload and submit for review" : "Upload and publish";
  const confirm = $("open_confirm");
  const open = tier === "open";
  $("open-confirm-field").hidden = !open;
  confirm.disabled = !open;
  if (!open) confirm.checked = false;
}

$("tier-use-card").addEventListener("click", () => {
  form.elements.tier.value = cardTier;
  keptTier = "";
  syncTier();
});
$("tier-keep-form").addEventListener("click", () => {
  keptTier = formTier();
  syncTier();
});

els.folder.addEventListener("change", () => onPick(els.folder.files));
els.files.addEventListener("change", () => onPick(els.files.files, { folder: els.filesFolder.value }));
els.clearFiles.addEventListener("click", () => {
  picked = [];
  renderList();
  updateHashBar();
  els.submit.disabled = true;
});
if (!("webkitdirectory" in HTMLInputElement.prototype) || /Android|iPhone|iPad|iPod/i.test(navigator.userAgent)) {
  // Most phones cannot pick a folder: the folder-by-folder path is the way here.
  $("folder-field").hidden = true;
  $("no-folder").hidden = false;
  $("add-files").open = true;
}
form.addEventListener("submit", start);
form.addEventListener("input", refreshPreview);
form.addEventListener("input", saveForm);
form.addEventListener("change", saveForm);
if (restoreForm()) form.dataset.restored = "true";
for (const radio of form.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", syncMode);
for (const select of form.querySelectorAll('select[name="tier"], select[name="dua"], select[name="repo"]')) {
  select.addEventListener("change", syncTier);
}
els.discard.addEventListener("click", discard);
syncMode();
offerResume();
form.dataset.ready = "true";
