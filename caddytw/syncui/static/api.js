// The file_sync API as the page uses it. Every request carries the custom header
// X-Requested-With (which no cross-site form can send, so the server can tell this page
// from a forged request) and, when one is set, the bearer token. The token lives in
// sessionStorage and never goes into a URL.

const TOKEN_KEY = "caddytw-sync-token";
const CLIENT_KEY = "caddytw-sync-client";
export const EVENTS_PROTOCOL = "caddytw.events";

export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function clientId() {
  let id = sessionStorage.getItem(CLIENT_KEY);
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(6));
    id = "web-" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem(CLIENT_KEY, id);
  }
  return id;
}

function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const message = (body && (body.error || body.message)) || response.statusText || "";
  return new ApiError(response.status, message, body);
}

export class Api {
  constructor(base) {
    this.base = base;
    this.clientId = clientId();
  }

  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  }

  url(endpoint, params = {}) {
    const query = new URLSearchParams(params).toString();
    return `${this.base}/${endpoint}${query ? "?" + query : ""}`;
  }

  /** ``write``: name this tab as the origin of the change (no token names it). */
  headers(extra = {}, write = false) {
    const headers = { "X-Requested-With": "caddytw-ui", ...extra };
    const token = this.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    else if (write) headers["X-Sync-Client"] = this.clientId;
    return headers;
  }

  async request(method, endpoint, params = {}, body = undefined, extra = {}) {
    let response;
    try {
      response = await fetch(this.url(endpoint, params), {
        method,
        headers: this.headers(extra, method !== "GET"),
        body,
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      throw new ApiError(0, "cannot reach the server");
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  async whoami() {
    return (await this.request("GET", "whoami")).json();
  }

  /** Every entry, and the journal position the listing corresponds to. */
  async list() {
    const response = await this.request("GET", "list");
    return {
      entries: await response.json(),
      cursor: Number(response.headers.get("X-Sync-Cursor") || 0),
      indexId: response.headers.get("X-Sync-Index-Id") || "",
    };
  }

  async changes(since, indexId) {
    const response = await this.request("GET", "list", { since, index_id: indexId, limit: 1000 });
    return response.json();
  }

  /** POST /api/sync with ``operations``; returns the per-operation results. */
  async sync(operations) {
    const body = JSON.stringify({ operations, client_id: this.clientId });
    const response = await this.request("POST", "sync", {}, body, {
      "Content-Type": "application/json",
    });
    return response.json();
  }

  async blob(path) {
    return (await this.request("GET", "download", { path })).blob();
  }

  /**
   * Upload ``file`` to ``path`` with XHR (fetch reports no upload progress).
   * ``base``: the hash the replaced file had (If-Match), or null for a new file
   * (If-None-Match: *). Resolves to the new FileMetadata; ``onProgress(loaded)``.
   */
  upload(path, file, base, onProgress, signal) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", this.url("upload", { path }));
      const headers = this.headers({ "Content-Type": "application/octet-stream" }, true);
      if (base) headers["If-Match"] = `"${base}"`;
      else headers["If-None-Match"] = "*";
      if (file.lastModified) headers["X-Sync-Modified"] = new Date(file.lastModified).toISOString();
      for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
      xhr.upload.onprogress = (event) => onProgress(event.loaded);
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          body = null;
        }
        if (xhr.status >= 200 && xhr.status < 300) resolve(body);
        else reject(new ApiError(xhr.status, (body && body.error) || xhr.statusText, body));
      };
      xhr.onerror = () => reject(new ApiError(0, "cannot reach the server"));
      xhr.onabort = () => reject(new ApiError(-1, "cancelled"));
      signal?.addEventListener("abort", () => xhr.abort());
      xhr.send(file);
    });
  }

  /** A WebSocket on /events; the token goes as a subprotocol, never in the URL. */
  events() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const protocols = [EVENTS_PROTOCOL];
    const token = this.token;
    if (token) protocols.push("caddytw.bearer." + base64url(token));
    return new WebSocket(`${scheme}//${location.host}${this.base}/events`, protocols);
  }
}

/** What to tell a person when the server refused something. */
export function describe(error, what = "That") {
  if (!(error instanceof ApiError)) return `${what} failed: ${error.message || error}`;
  const detail = error.message ? ` (${error.message})` : "";
  switch (error.status) {
    case 0:
      return "The server cannot be reached. Check your connection and try again.";
    case 401:
      return "Your access token was not accepted.";
    case 403:
      if (/read-only/.test(error.message)) return "This access token is read-only: nothing can be changed.";
      if (/uploads are disabled/.test(error.message)) return "Changes are turned off on this server.";
      return `The server refused: ${error.message || "forbidden"}.`;
    case 404:
      return `${what} is not there any more${detail}.`;
    case 400:
      return `That name is not allowed${detail}.`;
    case 409:
      if (error.body && error.body.existing_path)
        return `"${error.body.existing_path}" already exists with a name that differs only in upper/lower case or accents.`;
      return `${what} clashes with what is on the server${detail}.`;
    case 412:
      return `${what} was changed or created elsewhere meanwhile; the list is updated, please look again.`;
    case 413:
      return `${what} is too large for this server.`;
    case 422:
      return `${what} arrived damaged; please try again.`;
    default:
      return `${what} failed: the server answered ${error.status}${detail}.`;
  }
}
