// pagemill dashboard: upload, recent documents with live progress, per-page status and thumbnails.
//
// Everything the server sends (file names above all) is put into the page with textContent or
// setAttribute, never parsed as HTML. When the server has API keys, the key is asked for once,
// kept in sessionStorage (this tab only) and sent as `Authorization: Bearer` on every request:
// the event stream is read with fetch() instead of EventSource (which cannot send headers), and
// thumbnails and result links are fetched with the header and shown from blob: URLs.
"use strict";

const KEY_STORAGE = "pagemill.apiKey";
const LIST_LIMIT = 20;
// Browsers open about six connections per host; streams beyond this many wait for a list refresh.
const MAX_STREAMS = 3;
// Reconnect delay after a dropped event stream (the server's `retry:` replaces it), ms.
let retryMs = 2000;
// The list is re-read this often while no stream is open, ms (documents uploaded elsewhere).
const LIST_REFRESH_MS = 10000;
const FINAL = new Set(["completed", "partial_error", "error", "cancelled"]);
const PAGE_FINAL = new Set(["done", "failed", "skipped"]);
const KNOWN_STATUS = new Set([
  "pending", "queued", "extracting", "processing_chunks", "aggregating", "postprocessing",
  "completed", "partial_error", "error", "cancelled", "running", "done", "failed", "skipped",
]);
// /progress speaks the Celery service's chunk vocabulary; the dashboard shows page states.
const CHUNK_TO_PAGE = { completed: "done", processing: "running", pending: "pending", failed: "failed", skipped: "skipped" };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const state = {
  key: sessionStorage.getItem(KEY_STORAGE),
  docs: new Map(), // id -> document JSON
  streams: new Map(), // id -> AbortController
  selected: null, // { id, pages: Map(page_no -> {status, error, node}) }
  thumbs: new Map(), // "id/page" -> blob: URL
};

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// --- HTTP -----------------------------------------------------------------------------------------

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.key) headers.set("Authorization", `Bearer ${state.key}`);
  const response = await fetch(path, { ...options, headers, cache: "no-store" });
  if (!response.ok) {
    let code = "http_error";
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      code = body.error.code;
      message = body.error.message;
    } catch (_) { /* not our JSON error body */ }
    if (response.status === 401 || response.status === 403) askForKey(message);
    throw new ApiError(response.status, code, message);
  }
  return response;
}

const apiJson = async (path, options) => (await api(path, options)).json();
const docPath = (id) => `/api/documents/${encodeURIComponent(id)}`;

// --- small DOM helpers ----------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  node.append(...children); // strings become text nodes
  return node;
}

function statusBadge(node, status) {
  node.textContent = status;
  node.className = KNOWN_STATUS.has(status) ? `status ${status}` : "status";
  return node;
}

function show(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- API key --------------------------------------------------------------------------------------

function askForKey(message) {
  if (state.key) {
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = null;
    show($("key-error"), message);
  }
  for (const ctrl of state.streams.values()) ctrl.abort();
  $("app").hidden = true;
  $("forget-key").hidden = true;
  $("key-panel").hidden = false;
  $("key-input").focus();
}

async function useKey(event) {
  event.preventDefault();
  state.key = $("key-input").value.trim();
  $("key-input").value = "";
  if (!state.key) return;
  sessionStorage.setItem(KEY_STORAGE, state.key);
  await start();
}

function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
  state.key = null;
  location.reload();
}

// --- documents list -------------------------------------------------------------------------------

function pagesText(doc) {
  if (!doc.page_count) return FINAL.has(doc.status) ? "" : "splitting…";
  return `${doc.pages_finished} / ${doc.page_count} pages`;
}

function documentRow(doc) {
  const link = el("a", { href: `#/documents/${doc.id}`, title: doc.id }, doc.filename || doc.id);
  const bar = el("progress", { max: String(doc.page_count || 1), value: String(doc.pages_finished || 0) });
  if (!doc.page_count && !FINAL.has(doc.status)) bar.removeAttribute("value"); // indeterminate
  const created = new Date(doc.created_at);
  const row = el(
    "tr",
    { "data-id": doc.id },
    el("td", { className: "name" }, link),
    el("td", {}, statusBadge(el("span"), doc.status)),
    el("td", { className: "progress" }, bar, el("span", { className: "pages-text" }, pagesText(doc))),
    el("td", { className: "muted", title: doc.created_at }, created.toLocaleString()),
  );
  if (state.selected && state.selected.id === doc.id) row.classList.add("selected");
  return row;
}

function renderRow(doc) {
  const body = $("documents").tBodies[0];
  const old = body.querySelector(`tr[data-id="${CSS.escape(doc.id)}"]`);
  if (old) old.replaceWith(documentRow(doc));
}

async function refreshList() {
  let listing;
  try {
    listing = await apiJson(`/api/documents?limit=${LIST_LIMIT}`);
  } catch (err) {
    show($("documents-error"), `Could not list documents: ${err.message}`);
    return;
  }
  show($("documents-error"), "");
  const body = $("documents").tBodies[0];
  body.replaceChildren(...listing.items.map(documentRow));
  $("documents-empty").hidden = listing.items.length > 0;
  for (const doc of listing.items) {
    state.docs.set(doc.id, doc);
    if (!FINAL.has(doc.status)) follow(doc.id);
  }
}

function updateDocument(doc) {
  state.docs.set(doc.id, doc);
  renderRow(doc);
  if (state.selected && state.selected.id === doc.id) renderDetailHeader(doc);
}

// --- live progress (Server-Sent Events read with fetch) -------------------------------------------

function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
    else if (field === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
  }
  return data.length ? { name, data: JSON.parse(data.join("\n")) } : null;
}

async function readStream(id, signal) {
  const response = await api(`${docPath(id)}/events`, { signal, headers: { Accept: "text/event-stream" } });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buffer += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = parseEvent(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
      if (event && onEvent(id, event)) {
        reader.cancel().catch(() => {});
        return true;
      }
    }
  }
}

async function follow(id) {
  if (state.streams.has(id)) return;
  if (state.streams.size >= MAX_STREAMS && !(state.selected && state.selected.id === id)) return;
  const ctrl = new AbortController();
  state.streams.set(id, ctrl);
  try {
    while (!ctrl.signal.aborted) {
      try {
        if (await readStream(id, ctrl.signal)) break; // `end` seen
      } catch (err) {
        if (ctrl.signal.aborted || (err instanceof ApiError && err.status < 500)) break;
      }
      await sleep(retryMs); // dropped connection: reconnect; finished pages are sent again
    }
  } finally {
    state.streams.delete(id);
  }
}

// Returns true on the `end` event.
function onEvent(id, event) {
  const doc = state.docs.get(id);
  if (event.name === "page") {
    const page = event.data;
    if (doc) {
      doc.page_count = page.page_count;
      doc.pages_finished = Math.max(doc.pages_finished || 0, page.pages_finished);
      if (doc.status === "queued" || doc.status === "extracting") doc.status = "processing_chunks";
      updateDocument(doc);
    }
    setPageState(id, page.page_no, page.status, page.error, page.source);
    return false;
  }
  if (event.name === "end") {
    reloadDocument(id);
    return true;
  }
  return false;
}

async function reloadDocument(id) {
  try {
    const doc = await apiJson(docPath(id));
    updateDocument(doc);
    if (state.selected && state.selected.id === id) await loadPages(doc);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) refreshList();
  }
}

// --- one document ---------------------------------------------------------------------------------

const OUTPUT_LABELS = [["pdf", "Searchable PDF"], ["md", "Markdown"], ["hocr", "hOCR"], ["alto", "ALTO XML"]];

function renderDetailHeader(doc) {
  $("detail-title").textContent = doc.filename || doc.id;
  statusBadge($("detail-status"), doc.status);
  const parts = [pagesText(doc)];
  if (doc.lang_hints && doc.lang_hints.length) parts.push(`languages: ${doc.lang_hints.join(", ")}`);
  if (doc.engine) parts.push(`engine: ${doc.engine}`);
  parts.push(`id ${doc.id}`);
  $("detail-info").textContent = parts.filter(Boolean).join(" · ");
  show($("detail-error"), doc.error_message);
  const links = [];
  if (doc.status === "completed" || doc.status === "partial_error" || doc.result) {
    links.push(["Text", `${docPath(doc.id)}/text`], ["result.json", `${docPath(doc.id)}/result.json`]);
    // The outputs the upload asked for (outputs=pdf,md,hocr,alto): the API lists them in links.
    for (const [key, label] of OUTPUT_LABELS) {
      if (doc.links && doc.links[key]) links.push([label, doc.links[key]]);
    }
  }
  const steps = (doc.options && doc.options.postprocess) || [];
  if (steps.length) {
    links.push(["Artifacts", `${docPath(doc.id)}/artifacts`]);
    if (steps.includes("flashcards") && FINAL.has(doc.status)) {
      links.push(["Flashcards (.apkg)", `${docPath(doc.id)}/flashcards.apkg`]);
    }
  }
  loadSuggestion(doc);
  links.push(["Status JSON", docPath(doc.id)]);
  $("detail-links").replaceChildren(
    ...links.map(([label, href]) => el("a", { href, className: "api-link", "data-label": label }, label)),
  );
}

// The metadata step's suggested file name, once it exists (shown as text, never markup).
async function loadSuggestion(doc) {
  const steps = (doc.options && doc.options.postprocess) || [];
  if (!steps.includes("metadata") || !FINAL.has(doc.status)) {
    show($("detail-suggestion"), "");
    return;
  }
  try {
    const artifact = await apiJson(`${docPath(doc.id)}/artifacts/metadata`);
    if (!state.selected || state.selected.id !== doc.id) return;
    const meta = artifact.metadata || {};
    const tags = (meta.tags || []).join(", ");
    show($("detail-suggestion"),
      `Suggested name: ${meta.filename_suggestion} · ${meta.document_type}` + (tags ? ` · tags: ${tags}` : ""));
  } catch (_) {
    show($("detail-suggestion"), ""); // not generated (the step failed): the error line says why
  }
}

function pageCard(id, pageNo) {
  const thumb = el("div", { className: "thumb" }, "not rendered yet");
  const badge = el("span", { className: "status" });
  // Where the page's text came from: the PDF's own text layer, or OCR (set once the page is done).
  const source = el("span", { className: "source" });
  const error = el("p", { className: "page-error" });
  error.hidden = true;
  const node = el(
    "li",
    { className: "page", "data-page": String(pageNo) },
    thumb,
    el("div", { className: "caption" }, el("span", {}, `Page ${pageNo}`), badge, source),
    error,
  );
  return { node, thumb, badge, source, error, status: null };
}

const SOURCE_LABELS = { text_layer: "text layer", ocr: "OCR" };

function setPageState(id, pageNo, status, error, source, reason) {
  const sel = state.selected;
  if (!sel || sel.id !== id) return;
  let card = sel.pages.get(pageNo);
  if (!card) {
    card = pageCard(id, pageNo);
    sel.pages.set(pageNo, card);
    $("pages").append(card.node);
  }
  // A late /progress answer must not undo a page the event stream already reported finished.
  if (PAGE_FINAL.has(card.status) && !PAGE_FINAL.has(status)) return;
  card.node.dataset.status = status;
  statusBadge(card.badge, status);
  if (source) {
    card.source.textContent = SOURCE_LABELS[source] || source;
    card.source.dataset.source = source;
    if (reason) card.source.title = reason;
  }
  show(card.error, error);
  if (status === "done" && card.status !== "done") loadThumbnail(id, pageNo, card);
  card.status = status;
}

async function loadThumbnail(id, pageNo, card) {
  const cacheKey = `${id}/${pageNo}`;
  let url = state.thumbs.get(cacheKey);
  if (!url) {
    try {
      const response = await api(`${docPath(id)}/pages/${pageNo}/thumbnail.png`);
      url = URL.createObjectURL(await response.blob());
      state.thumbs.set(cacheKey, url);
    } catch (err) {
      card.thumb.textContent = "no thumbnail";
      return;
    }
  }
  const img = el("img", { src: url, alt: `Page ${pageNo}`, className: "thumbnail" });
  card.thumb.replaceChildren(img);
}

async function loadPages(doc) {
  const progress = await apiJson(`${docPath(doc.id)}/progress`);
  const count = doc.page_count || Object.keys(progress.chunk_details).length;
  for (let n = 1; n <= count; n += 1) {
    const chunk = progress.chunk_details[String(n)];
    const status = chunk ? CHUNK_TO_PAGE[chunk.status] || chunk.status : "pending";
    setPageState(doc.id, n, status, chunk && chunk.error, chunk && chunk.source, chunk && chunk.source_reason);
  }
}

async function select(id) {
  for (const row of $("documents").tBodies[0].rows) row.classList.toggle("selected", row.dataset.id === id);
  if (!id) {
    state.selected = null;
    $("detail").hidden = true;
    return;
  }
  state.selected = { id, pages: new Map() };
  $("pages").replaceChildren();
  $("detail").hidden = false;
  try {
    const doc = await apiJson(docPath(id));
    if (!state.selected || state.selected.id !== id) return;
    updateDocument(doc);
    await loadPages(doc);
    if (!FINAL.has(doc.status)) follow(id);
  } catch (err) {
    $("detail-title").textContent = "Document not found";
    show($("detail-error"), err.message);
  }
}

function route() {
  const match = location.hash.match(/^#\/documents\/(.+)$/);
  const id = match && UUID.test(match[1]) ? match[1] : null;
  select(id);
}

// Result links work as plain links without a key; with one, they are fetched with the header
// and opened from a blob: URL (a link cannot carry an Authorization header).
async function openApiLink(event) {
  const link = event.target.closest("a.api-link");
  if (!link || !state.key) return;
  event.preventDefault();
  try {
    const response = await api(link.getAttribute("href"));
    location.assign(URL.createObjectURL(await response.blob()));
  } catch (err) {
    show($("detail-error"), `${link.dataset.label}: ${err.message}`);
  }
}

// --- upload ---------------------------------------------------------------------------------------

async function upload(event) {
  event.preventDefault();
  const form = event.target;
  const file = $("upload-file").files[0];
  if (!file) return;
  const data = new FormData();
  // Fields go before the file: the server stores the file while it arrives (web/uploads.py).
  const lang = $("upload-lang").value.trim();
  if (lang) data.append("lang_hints", lang);
  for (const box of form.querySelectorAll('input[name="postprocess"]:checked')) data.append("postprocess", box.value);
  data.append("file", file, file.name);
  const button = $("upload-button");
  button.disabled = true;
  $("upload-message").className = "message";
  $("upload-message").textContent = `Uploading ${file.name}…`;
  try {
    const created = await apiJson("/api/documents", { method: "POST", body: data });
    $("upload-message").textContent = `Queued ${file.name}.`;
    form.reset();
    await refreshList();
    location.hash = `#/documents/${created.id}`;
  } catch (err) {
    $("upload-message").className = "message error";
    $("upload-message").textContent = `Upload failed: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

// --- search ---------------------------------------------------------------------------------------

function searchResult(hit) {
  const name = el("a", { href: `#/documents/${encodeURIComponent(hit.document_id)}`, className: "result-name" },
    hit.filename || hit.document_id);
  const meta = el("span", { className: "muted", text: ` page ${hit.page} · score ${hit.score.toFixed(4)} · ` });
  return el("li", { "data-id": hit.document_id }, name, meta, statusBadge(el("span"), hit.status),
    el("p", { className: "snippet", text: hit.snippet }));
}

async function search(event) {
  event.preventDefault();
  const q = $("search-input").value.trim();
  if (!q) return;
  show($("search-error"), "");
  show($("search-message"), "Searching…");
  $("search-button").disabled = true;
  try {
    const found = await apiJson(`/api/search?${new URLSearchParams({ q })}`);
    $("search-results").replaceChildren(...found.results.map(searchResult));
    show($("search-message"), found.results.length ? "" : "No documents found.");
  } catch (err) {
    $("search-results").replaceChildren();
    show($("search-message"), "");
    show($("search-error"), `Search failed: ${err.message}`);
  } finally {
    $("search-button").disabled = false;
  }
}

// --- start ----------------------------------------------------------------------------------------

async function start() {
  try {
    await api(`/api/documents?limit=1`); // 401/403 shows the key form instead of the app
  } catch (err) {
    if (!(err instanceof ApiError && (err.status === 401 || err.status === 403))) {
      show($("documents-error"), `The server did not answer: ${err.message}`);
      $("app").hidden = false;
    }
    return;
  }
  $("key-panel").hidden = true;
  show($("key-error"), "");
  $("forget-key").hidden = !state.key;
  $("app").hidden = false;
  await refreshList();
  route();
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", useKey);
  $("forget-key").addEventListener("click", forgetKey);
  $("upload-form").addEventListener("submit", upload);
  $("search-form").addEventListener("submit", search);
  $("refresh").addEventListener("click", refreshList);
  $("detail-links").addEventListener("click", openApiLink);
  window.addEventListener("hashchange", route);
  setInterval(() => {
    if (!$("app").hidden && state.streams.size === 0) refreshList();
  }, LIST_REFRESH_MS);
  start();
});
