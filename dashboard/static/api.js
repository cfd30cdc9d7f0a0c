// Fetching from /api/: errors are checked, and a response overtaken by a newer request is dropped.

export class ApiError extends Error {
  constructor(status, msg, detail) {
    super(detail ? `${msg}: ${detail}` : msg);
    this.status = status;
  }
}

export async function getJSON(url, options = {}) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, ...options });
  if (!response.ok) {
    let body = {};
    try { body = await response.json(); } catch { /* not JSON: keep the status line */ }
    throw new ApiError(response.status, body.msg || `${response.status} ${response.statusText}`, body.detail);
  }
  return response.json();
}

/**
 * A fetcher whose results arrive in request order: each call gets a sequence number, and a
 * response that comes back after a newer request was made resolves to null instead of its data.
 */
export function latest() {
  let seq = 0;
  let controller = null;
  return async function fetchLatest(url) {
    const mine = ++seq;
    controller?.abort();
    controller = new AbortController();
    try {
      const data = await getJSON(url, { signal: controller.signal });
      return mine === seq ? data : null;
    } catch (error) {
      if (mine !== seq || error.name === "AbortError") return null;
      throw error;
    }
  };
}

/** Show an error under the page, or clear it. */
export function report(error) {
  const line = document.getElementById("error");
  if (line) line.textContent = error ? `Could not load: ${error.message}` : "";
  if (error && !(error instanceof ApiError)) console.error(error);
}

/** Run `fn` at most once per `ms`, always ending with a call after the last request. */
export function throttle(fn, ms) {
  let timer = null;
  let pending = false;
  return function throttled() {
    if (timer) { pending = true; return; }
    fn();
    timer = setTimeout(() => {
      timer = null;
      if (pending) { pending = false; throttled(); }
    }, ms);
  };
}
