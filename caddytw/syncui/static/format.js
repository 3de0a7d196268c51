// Pure helpers: paths, human sizes and times, conflict-copy names.

export function baseName(path) {
  return path.slice(path.lastIndexOf("/") + 1);
}

export function parentOf(path) {
  const cut = path.lastIndexOf("/");
  return cut < 0 ? "" : path.slice(0, cut);
}

export function joinPath(folder, name) {
  return folder ? `${folder}/${name}` : name;
}

const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

/** 1536 -> "1.5 KB" (powers of 1024, one decimal below 10). */
export function humanSize(bytes) {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${bytes} B`;
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${UNITS[unit]}`;
}

/** "just now", "5 min ago", "3 h ago" within a day, then a local date and time. */
export function humanTime(iso, now = Date.now()) {
  const when = Date.parse(iso);
  if (Number.isNaN(when)) return "";
  const seconds = Math.round((now - when) / 1000);
  if (seconds >= -60 && seconds < 60) return "just now";
  if (seconds > 0 && seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds > 0 && seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  const date = new Date(when);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

const CONFLICT = /^(.*)\.sync-conflict-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-(.*)$/;

/**
 * A conflict copy's parts, or null: "a.sync-conflict-20240101-120000-laptop1.txt" is a copy
 * of "a.txt" made at 2024-01-01 12:00:00 UTC holding the bytes of client "laptop1".
 * The client tag is at most 7 characters; what follows it is the original's extension.
 */
export function conflictOf(name) {
  const match = CONFLICT.exec(name);
  if (!match) return null;
  const [, stem, y, mo, d, h, mi, s, rest] = match;
  let tag = rest;
  let ext = "";
  const dot = rest.indexOf(".", Math.min(1, rest.length));
  if (rest.length > 7 && rest[7] === ".") {
    tag = rest.slice(0, 7);
    ext = rest.slice(7);
  } else if (dot > 0 && dot <= 7) {
    tag = rest.slice(0, dot);
    ext = rest.slice(dot);
  }
  return { original: stem + ext, client: tag, when: `${y}-${mo}-${d}T${h}:${mi}:${s}Z` };
}
