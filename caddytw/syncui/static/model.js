// The folder as the server lists it, kept up to date from change events.

import { baseName, parentOf } from "./format.js";

export class Tree {
  constructor() {
    this.entries = new Map(); // path -> FileMetadata
    this.children = new Map(); // folder path ("" = root) -> Set of child paths
  }

  load(list) {
    this.entries.clear();
    this.children.clear();
    for (const meta of list) this.put(meta);
  }

  put(meta) {
    const known = this.entries.has(meta.path);
    this.entries.set(meta.path, meta);
    if (!known) {
      const parent = parentOf(meta.path);
      let set = this.children.get(parent);
      if (!set) this.children.set(parent, (set = new Set()));
      set.add(meta.path);
    }
  }

  remove(path) {
    if (!this.entries.delete(path)) return;
    this.children.get(parentOf(path))?.delete(path);
    for (const child of this.children.get(path) ?? []) this.remove(child);
    this.children.delete(path);
  }

  /** One journal entry: {seq, path, op, origin, metadata}. */
  apply(change) {
    if (change.op === "delete" || !change.metadata) this.remove(change.path);
    else this.put(change.metadata);
  }

  get(path) {
    return this.entries.get(path);
  }

  isFolder(path) {
    return path === "" || this.entries.get(path)?.is_directory === true;
  }

  list(folder) {
    return [...(this.children.get(folder) ?? [])].map((p) => this.entries.get(p));
  }

  /** Everything below ``folder``, deepest first (the order deletes must go in). */
  below(folder) {
    const out = [];
    const walk = (path) => {
      for (const child of this.children.get(path) ?? []) {
        walk(child);
        out.push(this.entries.get(child));
      }
    };
    walk(folder);
    return out;
  }

  search(query) {
    const needle = query.toLocaleLowerCase();
    const out = [];
    for (const meta of this.entries.values()) {
      if (baseName(meta.path).toLocaleLowerCase().includes(needle)) out.push(meta);
    }
    return out;
  }
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

/** Folders first, then by ``key`` ("name", "size" or "modified"), ``dir`` 1 or -1. */
export function sortEntries(items, key, dir) {
  const name = (a, b) => collator.compare(baseName(a.path), baseName(b.path));
  const by = {
    name,
    size: (a, b) => a.size - b.size || name(a, b),
    modified: (a, b) => Date.parse(a.modified) - Date.parse(b.modified) || name(a, b),
  }[key];
  return items.sort((a, b) => {
    if (a.is_directory !== b.is_directory) return a.is_directory ? -1 : 1;
    return dir * by(a, b);
  });
}
