// Uploads: files and whole folders from the pickers or a drop, a few at a time, each
// with its own progress bar and one for all of them.

import { describe } from "./api.js";
import { humanSize, joinPath } from "./format.js";

const AT_ONCE = 3;

/** [{file, relative}] from a drop, walking dropped folders (empty ones carry no files, so they are not made). */
export async function filesFromDrop(dataTransfer) {
  const entries = [...dataTransfer.items]
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
    .filter(Boolean);
  if (entries.length === 0) return [...dataTransfer.files].map((file) => ({ file, relative: file.name }));
  const out = [];
  const walk = async (entry, prefix) => {
    const relative = joinPath(prefix, entry.name);
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      out.push({ file, relative });
      return;
    }
    const reader = entry.createReader();
    let batch;
    do {
      batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      for (const child of batch) await walk(child, relative);
    } while (batch.length > 0);
  };
  for (const entry of entries) await walk(entry, "");
  return out;
}

/** [{file, relative}] from an <input type=file> (a folder picker sets webkitRelativePath). */
export function filesFromInput(input) {
  return [...input.files].map((file) => ({ file, relative: file.webkitRelativePath || file.name }));
}

export class Uploads {
  constructor(api, elements, onDone) {
    this.api = api;
    this.el = elements; // {panel, overall, overallText, list, close}
    this.onDone = onDone; // (message|null, isError) -> void
    this.queue = [];
    this.running = 0;
    this.total = 0;
    this.loaded = 0;
    this.failed = [];
    this.finished = 0;
    this.el.close.addEventListener("click", () => {
      this.el.panel.hidden = true;
    });
  }

  /** Queue ``items`` ({file, relative, base}) into ``folder``. */
  add(items, folder) {
    if (this.running === 0 && this.queue.length === 0) {
      this.total = 0;
      this.loaded = 0;
      this.finished = 0;
      this.failed = [];
      this.el.list.replaceChildren();
    }
    for (const item of items) {
      const row = document.createElement("li");
      const name = document.createElement("span");
      name.className = "t-name";
      name.textContent = item.relative;
      const bar = document.createElement("progress");
      bar.max = item.file.size || 1;
      bar.value = 0;
      const state = document.createElement("span");
      state.className = "t-state";
      state.textContent = "waiting";
      row.append(name, bar, state);
      this.el.list.appendChild(row);
      this.queue.push({ ...item, path: joinPath(folder, item.relative), row, bar, state, sent: 0 });
      this.total += item.file.size;
    }
    this.el.panel.hidden = false;
    this.update();
    this.pump();
  }

  pump() {
    while (this.running < AT_ONCE && this.queue.length > 0) {
      const job = this.queue.shift();
      this.running += 1;
      this.run(job).finally(() => {
        this.running -= 1;
        this.finished += 1;
        this.update();
        this.pump();
        if (this.running === 0 && this.queue.length === 0) this.done();
      });
    }
  }

  async run(job) {
    job.state.textContent = "uploading";
    try {
      await this.api.upload(job.path, job.file, job.base, (loaded) => {
        this.loaded += loaded - job.sent;
        job.sent = loaded;
        job.bar.value = loaded;
        this.update();
      });
      this.loaded += job.file.size - job.sent;
      job.sent = job.file.size;
      job.bar.value = job.bar.max;
      job.state.textContent = "done";
      job.row.className = "ok";
    } catch (error) {
      this.loaded += job.file.size - job.sent;
      job.sent = job.file.size;
      const message = describe(error, `"${job.relative}"`);
      job.state.textContent = message;
      job.row.className = "failed";
      this.failed.push(message);
    }
  }

  update() {
    const fraction = this.total > 0 ? this.loaded / this.total : 1;
    this.el.overall.value = Math.min(1, fraction);
    const count = this.finished + this.running + this.queue.length;
    this.el.overallText.textContent =
      `${this.finished} of ${count} files, ${humanSize(Math.min(this.loaded, this.total))} of ${humanSize(this.total)}`;
  }

  done() {
    if (this.failed.length === 0) this.onDone(`Uploaded ${this.finished} file${this.finished === 1 ? "" : "s"}.`, false);
    else this.onDone(this.failed.length === 1 ? this.failed[0] : `${this.failed.length} uploads failed: ${this.failed[0]}`, true);
  }
}
