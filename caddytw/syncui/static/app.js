// The file manager: wiring the API, the folder model, the list and the dialogs.

import { Api, ApiError, describe } from "./api.js";
import { baseName, conflictOf, humanSize, humanTime, joinPath, parentOf } from "./format.js";
import { Tree, sortEntries } from "./model.js";
import { Uploads, filesFromDrop, filesFromInput } from "./uploads.js";
import { VirtualList } from "./vlist.js";

const $ = (id) => document.getElementById(id);
const api = new Api(document.querySelector('meta[name="caddytw-api"]').content);
const tree = new Tree();
const state = {
  folder: "",
  query: "",
  sort: "name",
  dir: 1,
  canWrite: false,
  cursor: 0,
  indexId: "",
  socket: null,
  retry: 1000,
};

// -- messages and dialogs ------------------------------------------------------------

let messageTimer = 0;
function say(text, isError = false) {
  const box = $("message");
  box.textContent = text;
  box.hidden = !text;
  box.classList.toggle("error", isError);
  box.setAttribute("role", isError ? "alert" : "status");
  clearTimeout(messageTimer);
  if (text && !isError) messageTimer = setTimeout(() => (box.hidden = true), 6000);
}

/**
 * A modal dialog. ``input``: {label, value, type} for a text field; ``preview``: a node.
 * Resolves to the field's value (or true) on OK, null on Cancel / Escape.
 */
function dialog({ title, text = "", input = null, ok = "OK", danger = false, preview = null, cancel = "Cancel" }) {
  const box = $("dialog");
  $("dialog-title").textContent = title;
  $("dialog-text").textContent = text;
  $("dialog-text").hidden = !text;
  const field = $("dialog-input");
  $("dialog-label").hidden = !input;
  if (input) {
    $("dialog-label-text").textContent = input.label;
    field.type = input.type || "text";
    field.value = input.value || "";
  }
  const previewBox = $("dialog-preview");
  previewBox.replaceChildren(...(preview ? [preview] : []));
  previewBox.hidden = !preview;
  const okButton = $("dialog-ok");
  okButton.textContent = ok;
  okButton.hidden = !ok;
  okButton.classList.toggle("danger", danger);
  $("dialog-cancel").textContent = cancel;
  const returnFocus = document.activeElement;
  return new Promise((resolve) => {
    const form = $("dialog-form");
    const finish = (value) => {
      form.removeEventListener("submit", submit);
      $("dialog-cancel").removeEventListener("click", dismiss);
      box.removeEventListener("cancel", dismiss);
      box.close();
      if (returnFocus && returnFocus.focus) returnFocus.focus();
      resolve(value);
    };
    const submit = (event) => {
      event.preventDefault();
      finish(input ? field.value : true);
    };
    const dismiss = (event) => {
      event.preventDefault();
      finish(null);
    };
    form.addEventListener("submit", submit);
    $("dialog-cancel").addEventListener("click", dismiss);
    box.addEventListener("cancel", dismiss);
    box.showModal();
    if (input) {
      field.focus();
      const dot = field.value.lastIndexOf(".");
      const slash = field.value.lastIndexOf("/") + 1;
      field.setSelectionRange(slash, dot > slash ? dot : field.value.length);
    } else if (ok) okButton.focus();
  });
}

// -- the list ------------------------------------------------------------------------

function icon(meta) {
  const span = document.createElement("span");
  span.className = "icon " + (meta.is_directory ? "folder" : "file");
  span.setAttribute("aria-hidden", "true");
  return span;
}

function renderRow(element, meta) {
  const name = baseName(meta.path);
  const conflict = meta.is_directory ? null : conflictOf(name);
  element.dataset.path = meta.path;
  element.classList.toggle("conflict", Boolean(conflict));
  element.classList.toggle("is-folder", meta.is_directory);
  const link = document.createElement("a");
  link.className = "name";
  link.tabIndex = -1;
  link.textContent = name;
  link.href = meta.is_directory ? folderHash(meta.path) : api.url("download", { path: meta.path });
  if (!meta.is_directory) link.dataset.action = "open";
  const label = document.createElement("span");
  label.className = "label";
  label.append(link);
  if (state.query) {
    const where = document.createElement("span");
    where.className = "where";
    where.textContent = parentOf(meta.path) ? `in ${parentOf(meta.path)}` : "in the top folder";
    label.append(where);
  }
  if (conflict) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = `conflict copy of ${conflict.original} (from ${conflict.client})`;
    badge.title = `Kept when two changes to ${conflict.original} crossed; made ${conflict.when}`;
    label.append(badge);
  }
  const size = document.createElement("span");
  size.className = "size";
  size.textContent = meta.is_directory ? "—" : humanSize(meta.size);
  const date = document.createElement("span");
  date.className = "date";
  date.textContent = humanTime(meta.modified);
  date.title = meta.modified;
  element.setAttribute("aria-label", `${meta.is_directory ? "Folder" : "File"} ${name}`);
  element.replaceChildren(icon(meta), label, size, date);
}

// The selection: paths marked for an action (the active row alone, unless Ctrl/Shift
// clicks or Shift+arrows, Space or Ctrl+A chose more).
const marked = new Set();
let anchor = -1;
const list = new VirtualList($("list"), $("spacer"), renderRow, (meta) => marked.has(meta.path));

/** Move the active row to ``index``; ``how``: "only" (select it alone), "range" (from the
 * anchor), "toggle" (add or remove it), "keep" (move focus only). */
function activate(index, how = "only") {
  list.setActive(index);
  const meta = list.current;
  if (!meta) return;
  if (how === "only" || anchor < 0) {
    marked.clear();
    marked.add(meta.path);
    anchor = list.active;
  } else if (how === "range") {
    marked.clear();
    const [from, to] = [Math.min(anchor, list.active), Math.max(anchor, list.active)];
    for (let i = from; i <= to; i += 1) marked.add(list.items[i].path);
  } else if (how === "toggle") {
    if (marked.has(meta.path)) marked.delete(meta.path);
    else marked.add(meta.path);
    anchor = list.active;
  }
  list.render();
  selectionChanged();
}

function chosen() {
  return list.items.filter((meta) => marked.has(meta.path));
}

function folderHash(path) {
  return "#/" + path.split("/").map(encodeURIComponent).join("/");
}

function folderFromHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  try {
    return raw ? raw.split("/").map(decodeURIComponent).join("/") : "";
  } catch {
    return "";
  }
}

function crumbs() {
  const items = [];
  const add = (text, path, current) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.textContent = text;
    a.href = folderHash(path);
    if (current) a.setAttribute("aria-current", "page");
    li.append(a);
    items.push(li);
  };
  add("Files", "", !state.folder && !state.query);
  let path = "";
  for (const part of state.folder ? state.folder.split("/") : []) {
    path = joinPath(path, part);
    add(part, path, path === state.folder && !state.query);
  }
  if (state.query) {
    const li = document.createElement("li");
    li.textContent = `Search: “${state.query}”`;
    items.push(li);
  }
  $("crumbs").replaceChildren(...items);
}

function show(keep = undefined) {
  const key = keep === undefined ? list.current?.path ?? null : keep;
  const items = state.query ? tree.search(state.query) : tree.list(state.folder);
  sortEntries(items, state.sort, state.dir);
  list.setItems(items, key);
  const listed = new Set(items.map((meta) => meta.path));
  for (const path of [...marked]) if (!listed.has(path)) marked.delete(path);
  if (marked.size === 0 && list.current) marked.add(list.current.path);
  list.render();
  $("empty").hidden = items.length > 0;
  $("empty").textContent = state.query ? "Nothing matches that name." : "This folder is empty.";
  const folders = items.filter((m) => m.is_directory).length;
  $("count").textContent = `${folders} folder${folders === 1 ? "" : "s"}, ${items.length - folders} file${items.length - folders === 1 ? "" : "s"}`;
  for (const button of document.querySelectorAll(".columns .col")) {
    const on = button.dataset.sort === state.sort;
    button.classList.toggle("sorted", on);
    button.setAttribute("aria-pressed", String(on));
    button.title = on ? `Sorted by ${button.textContent.toLowerCase()}, ${state.dir > 0 ? "ascending" : "descending"}` : "";
    button.dataset.arrow = on ? (state.dir > 0 ? "↑" : "↓") : "";
  }
  crumbs();
  selectionChanged();
}

let redrawQueued = false;
function redrawSoon() {
  if (redrawQueued) return;
  redrawQueued = true;
  requestAnimationFrame(() => {
    redrawQueued = false;
    if (!state.query && state.folder && !tree.isFolder(state.folder)) {
      say(`The folder "${state.folder}" was removed.`, true);
      location.hash = folderHash(parentOf(state.folder));
      return;
    }
    show();
  });
}

function selectionChanged() {
  const picked = chosen();
  const one = picked.length === 1 ? picked[0] : null;
  const writes = state.canWrite;
  $("act-open").disabled = !one;
  $("act-download").disabled = !one || one.is_directory;
  $("act-rename").disabled = !one || !writes;
  $("act-delete").disabled = picked.length === 0 || !writes;
  $("act-delete").textContent = picked.length > 1 ? `Delete ${picked.length}` : "Delete";
  const conflict = one && !one.is_directory && conflictOf(baseName(one.path));
  $("act-keep").hidden = !conflict || !writes;
  $("act-keep").disabled = !conflict || !writes;
}

function navigate() {
  state.folder = folderFromHash();
  state.query = "";
  $("search").value = "";
  list.active = -1;
  marked.clear();
  list.container.scrollTop = 0;
  show(null);
  if (list.items.length) activate(0);
  selectionChanged();
}

// -- actions -------------------------------------------------------------------------

const PREVIEW_TEXT = /\.(txt|md|json|csv|log|xml|ya?ml|toml|ini|conf|py|js|ts|css|html?|sh|c|h|rs|go|java)$/i;
const PREVIEW_IMAGE = /\.(png|jpe?g|gif|webp|bmp|avif)$/i;
const PREVIEW_LIMIT = 2 * 1024 * 1024;

async function open(meta) {
  if (!meta) return;
  if (meta.is_directory) {
    location.hash = folderHash(meta.path);
    return;
  }
  const name = baseName(meta.path);
  const kind = PREVIEW_IMAGE.test(name) ? "image" : PREVIEW_TEXT.test(name) ? "text" : null;
  if (!kind || meta.size > PREVIEW_LIMIT) {
    await download(meta);
    return;
  }
  try {
    const blob = await api.blob(meta.path);
    let node;
    let url = null;
    if (kind === "image") {
      url = URL.createObjectURL(blob);
      node = document.createElement("img");
      node.src = url;
      node.alt = name;
    } else {
      node = document.createElement("pre");
      node.textContent = await blob.text();
    }
    const wanted = await dialog({ title: name, preview: node, ok: "Download", cancel: "Close" });
    if (url) URL.revokeObjectURL(url);
    if (wanted) save(blob, name);
  } catch (error) {
    say(describe(error, `"${name}"`), true);
  }
}

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

async function download(meta) {
  if (!meta || meta.is_directory) return;
  const name = baseName(meta.path);
  if (!api.token) {
    // No token: a plain link streams straight to disk, however large the file.
    const a = document.createElement("a");
    a.href = api.url("download", { path: meta.path });
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    return;
  }
  try {
    say(`Downloading "${name}"…`);
    save(await api.blob(meta.path), name);
    say(`Downloaded "${name}".`);
  } catch (error) {
    say(describe(error, `"${name}"`), true);
  }
}

/** Run sync operations; say what happened; true when all applied. */
async function applyOps(operations, what, done) {
  try {
    const answer = await api.sync(operations);
    const failed = (answer.results || []).filter((r) => r.status === "conflict" || r.status === "error");
    if (failed.length === 0) {
      if (done) say(done);
      return true;
    }
    const first = failed[0];
    const status = first.status === "conflict" ? 412 : /not allowed|reserved|segment|path/.test(first.message || "") ? 400 : 409;
    say(describe(new ApiError(status, first.message || "", answer.conflicts?.[0] || null), what), true);
  } catch (error) {
    say(describe(error, what), true);
  }
  return false;
}

function checkName(name) {
  if (!name || name === "." || name === ".." || /[\\/\u0000-\u001f\u007f]/.test(name)) return false;
  return true;
}

async function newFolder() {
  if (!state.canWrite) return;
  const name = await dialog({ title: "New folder", input: { label: "Name", value: "" }, ok: "Create" });
  if (name === null) return;
  const clean = name.trim();
  if (!checkName(clean)) {
    say(`That name is not allowed: "${name}".`, true);
    return;
  }
  const path = joinPath(state.folder, clean);
  const meta = { path, size: 0, modified: new Date().toISOString(), hash: "", is_directory: true };
  if (await applyOps([{ Create: { metadata: meta } }], `"${clean}"`, `Created folder "${clean}".`)) {
    tree.put(meta);
    show(path);
  }
}

async function rename(meta) {
  if (!meta || !state.canWrite) return;
  const value = await dialog({
    title: `Rename or move “${baseName(meta.path)}”`,
    text: "Change the name, or the folders before it to move it (paths start at the top folder).",
    input: { label: "New path", value: meta.path },
    ok: "Rename",
  });
  if (value === null) return;
  const target = value.trim().replace(/^\/+|\/+$/g, "");
  if (!target || target === meta.path) return;
  if (!target.split("/").every(checkName)) {
    say(`That name is not allowed: "${value}".`, true);
    return;
  }
  const op = { Move: { from: meta.path, to: target } };
  if (!meta.is_directory) op.Move.base_hash = meta.hash;
  await applyOps([op], `"${baseName(meta.path)}"`, `Moved "${meta.path}" to "${target}".`);
}

async function remove(picked) {
  if (!picked.length || !state.canWrite) return;
  const paths = new Set();
  for (const meta of picked) {
    paths.add(meta.path);
    if (meta.is_directory) for (const inner of tree.below(meta.path)) paths.add(inner.path);
  }
  const inside = paths.size - picked.length;
  const what = picked.length === 1 ? `“${baseName(picked[0].path)}”` : `${picked.length} items`;
  const within = inside ? ` and the ${inside} item${inside === 1 ? "" : "s"} in ${picked.length === 1 ? "it" : "them"}` : "";
  const ok = await dialog({
    title: `Delete ${what}?`,
    text: `${what}${within} will be deleted on the server and on every synced computer.`,
    ok: "Delete",
    danger: true,
  });
  if (!ok) return;
  const depth = (path) => path.split("/").length;
  const operations = [...paths]
    .sort((a, b) => depth(b) - depth(a))
    .map((path) => tree.get(path))
    .map((m) => (m.is_directory ? { Delete: { path: m.path } } : { Delete: { path: m.path, base_hash: m.hash } }));
  const label = picked.length === 1 ? `"${baseName(picked[0].path)}"` : `${picked.length} items`;
  await applyOps(operations, label, `Deleted ${label}.`);
}

async function keepVersion(meta) {
  const conflict = meta && conflictOf(baseName(meta.path));
  if (!conflict || !state.canWrite) return;
  const original = joinPath(parentOf(meta.path), conflict.original);
  const current = tree.get(original);
  const ok = await dialog({
    title: "Keep this version?",
    text: current
      ? `“${conflict.original}” gets the content of this copy (from ${conflict.client}); its current content is deleted.`
      : `This copy becomes “${conflict.original}”.`,
    ok: "Keep this version",
  });
  if (!ok) return;
  const operations = [];
  if (current) operations.push({ Delete: { path: original, base_hash: current.hash } });
  operations.push({ Move: { from: meta.path, to: original, base_hash: meta.hash } });
  await applyOps(operations, `"${conflict.original}"`, `Kept this version as "${conflict.original}".`);
}

// -- uploads -------------------------------------------------------------------------

const uploads = new Uploads(
  api,
  {
    panel: $("transfers"),
    overall: $("overall"),
    overallText: $("overall-text"),
    list: $("transfer-list"),
    close: $("transfers-close"),
  },
  (text, isError) => say(text, isError),
);

async function upload(items) {
  if (!state.canWrite || items.length === 0) return;
  const folder = state.folder;
  const replacing = items.filter((item) => tree.get(joinPath(folder, item.relative)));
  if (replacing.length) {
    const ok = await dialog({
      title: "Replace existing files?",
      text:
        replacing.length === 1
          ? `“${replacing[0].relative}” already exists here. Replace it?`
          : `${replacing.length} files already exist here. Replace them?`,
      ok: "Replace",
    });
    if (!ok) items = items.filter((item) => !replacing.includes(item));
  }
  for (const item of items) item.base = tree.get(joinPath(folder, item.relative))?.hash || null;
  uploads.add(items, folder);
}

// -- live updates --------------------------------------------------------------------

function live(text, ok) {
  $("live").textContent = text;
  $("live").classList.toggle("offline", !ok);
}

async function catchUp() {
  for (;;) {
    const page = await api.changes(state.cursor, state.indexId);
    if (page.reset) {
      await reload();
      return;
    }
    for (const change of page.changes) tree.apply(change);
    state.cursor = page.cursor;
    if (page.changes.length) redrawSoon();
    if (!page.more) break;
  }
}

function connect() {
  let socket;
  try {
    socket = api.events();
  } catch {
    live("offline", false);
    return;
  }
  state.socket = socket;
  socket.onopen = () => {
    state.retry = 1000;
    live("live", true);
    catchUp().catch((error) => say(describe(error, "Updating the list"), true));
  };
  socket.onmessage = (event) => {
    let change;
    try {
      change = JSON.parse(event.data);
    } catch {
      return;
    }
    if (typeof change.seq !== "number" || change.seq <= state.cursor) return;
    tree.apply(change);
    state.cursor = change.seq;
    redrawSoon();
  };
  socket.onclose = () => {
    if (state.socket !== socket) return;
    live("offline, reconnecting…", false);
    setTimeout(connect, state.retry);
    state.retry = Math.min(state.retry * 2, 15000);
  };
}

async function reload() {
  const listing = await api.list();
  tree.load(listing.entries);
  state.cursor = listing.cursor;
  state.indexId = listing.indexId;
  show();
}

// -- access --------------------------------------------------------------------------

async function signIn(failed) {
  const token = await dialog({
    title: "Access token",
    text: failed
      ? "That token was not accepted. Enter the access token you were given for this folder."
      : "This folder needs an access token. Enter the token you were given for it.",
    input: { label: "Token", value: "", type: "password" },
    ok: "Sign in",
    cancel: "Cancel",
  });
  if (token === null) return false;
  api.token = token.trim();
  return true;
}

async function who() {
  let failed = false;
  for (;;) {
    try {
      return await api.whoami();
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
      failed = failed || Boolean(api.token);
      api.token = null;
      if (!(await signIn(failed))) return null;
      failed = true;
    }
  }
}

function applyAccess(me) {
  // With a token the server knows who this is, and a sync body must name that client.
  if (me.client_id) api.clientId = me.client_id;
  state.canWrite = me.can_write;
  document.body.classList.toggle("read-only", !me.can_write);
  const parts = [];
  if (me.client_id && api.token) parts.push(me.client_id);
  if (!me.can_write) parts.push(me.upload_enabled ? "read-only token" : "read-only server");
  $("who").textContent = parts.join(" · ");
  $("sign-out").hidden = !api.token;
  for (const element of document.querySelectorAll(".writes")) element.hidden = !me.can_write;
  $("act-keep").hidden = true;
}

// -- events --------------------------------------------------------------------------

function wire() {
  window.addEventListener("hashchange", navigate);
  $("search").addEventListener("input", () => {
    state.query = $("search").value.trim();
    list.active = -1;
    marked.clear();
    list.container.scrollTop = 0;
    show(null);
  });
  $("search").addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      $("search").value = "";
      state.query = "";
      show(null);
      $("list").focus();
    } else if (event.key === "ArrowDown" || event.key === "Enter") {
      event.preventDefault();
      activate(0);
      $("list").focus();
    }
  });
  for (const button of document.querySelectorAll(".columns .col")) {
    button.addEventListener("click", () => {
      const key = button.dataset.sort;
      state.dir = state.sort === key ? -state.dir : 1;
      state.sort = key;
      show();
    });
  }
  const listBox = $("list");
  listBox.addEventListener("click", (event) => {
    const row = event.target.closest(".row");
    if (!row) return;
    const how = event.shiftKey ? "range" : event.ctrlKey || event.metaKey ? "toggle" : "only";
    activate(Number(row.dataset.index), how);
    if (how !== "only") {
      event.preventDefault();
      return;
    }
    const link = event.target.closest("a.name");
    if (link && link.dataset.action === "open") {
      event.preventDefault();
      open(list.current);
    }
  });
  listBox.addEventListener("dblclick", (event) => {
    if (event.target.closest(".row") && !event.target.closest("a")) open(list.current);
  });
  listBox.addEventListener("focus", () => {
    if (list.active < 0 && list.items.length) activate(0);
  });
  listBox.addEventListener("keydown", (event) => {
    const move = event.shiftKey ? "range" : event.ctrlKey ? "keep" : "only";
    const keys = {
      ArrowDown: () => activate(list.active + 1, move),
      ArrowUp: () => (event.altKey ? up() : activate(list.active - 1, move)),
      Home: () => activate(0, move),
      End: () => activate(list.items.length - 1, move),
      PageDown: () => activate(list.active + list.pageSize, move),
      PageUp: () => activate(list.active - list.pageSize, move),
      " ": () => activate(list.active, "toggle"),
      a: () => {
        if (!(event.ctrlKey || event.metaKey)) return false;
        for (const meta of list.items) marked.add(meta.path);
        list.render();
        return true;
      },
      Enter: () => open(list.current),
      Backspace: () => up(),
      Delete: () => remove(chosen()),
      F2: () => rename(list.current),
    };
    const act = keys[event.key];
    if (act && act() !== false) {
      event.preventDefault();
      selectionChanged();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "/" && !event.target.closest("input, dialog, textarea")) {
      event.preventDefault();
      $("search").focus();
    }
  });
  $("act-open").addEventListener("click", () => open(list.current));
  $("act-download").addEventListener("click", () => download(list.current));
  $("act-rename").addEventListener("click", () => rename(list.current));
  $("act-delete").addEventListener("click", () => remove(chosen()));
  $("act-keep").addEventListener("click", () => keepVersion(list.current));
  $("new-folder").addEventListener("click", newFolder);
  $("upload-files").addEventListener("click", () => $("file-input").click());
  $("upload-folder").addEventListener("click", () => $("folder-input").click());
  for (const id of ["file-input", "folder-input"]) {
    $(id).addEventListener("change", () => {
      const items = filesFromInput($(id));
      $(id).value = "";
      upload(items);
    });
  }
  $("sign-out").addEventListener("click", () => {
    api.token = null;
    location.reload();
  });
  let dragDepth = 0;
  const dragging = (event) => state.canWrite && [...event.dataTransfer.types].includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!dragging(event)) return;
    dragDepth += 1;
    $("drop").hidden = false;
  });
  document.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) $("drop").hidden = true;
  });
  document.addEventListener("dragover", (event) => {
    if (dragging(event)) event.preventDefault();
  });
  document.addEventListener("drop", async (event) => {
    if (!dragging(event)) return;
    event.preventDefault();
    dragDepth = 0;
    $("drop").hidden = true;
    upload(await filesFromDrop(event.dataTransfer));
  });
}

function up() {
  if (state.query) {
    $("search").value = "";
    state.query = "";
    show(null);
  } else if (state.folder) location.hash = folderHash(parentOf(state.folder));
}

async function start() {
  wire();
  try {
    const me = await who();
    if (me === null) {
      say("An access token is needed to see these files. Reload the page to enter one.", true);
      live("signed out", false);
      return;
    }
    applyAccess(me);
    state.folder = folderFromHash();
    await reload();
    if (state.folder && !tree.isFolder(state.folder)) location.hash = "#/";
    navigate();
    $("list").focus();
    connect();
    document.body.dataset.ready = "true";
  } catch (error) {
    say(describe(error, "Loading the folder"), true);
    live("offline", false);
  }
}

start();
