// Number and time formatting shared by every page.

/** Milliseconds as "840 µs", "12.3 ms", "4.20 s", "3m 05s". */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms === 0) return "0";
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
}

/** `text` cut to `n` characters, an ellipsis last when it was longer. */
export const cut = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

export const seconds = (s) => (s === null || s === undefined ? "–" : duration(s * 1000));

const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const day = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

/** A wall-clock time from nanoseconds since the epoch; the date is added when it is not today. */
export function time(ns) {
  if (!ns) return "–";
  const date = new Date(ns / 1e6);
  const ms = String(date.getMilliseconds()).padStart(3, "0");
  const today = new Date().toDateString() === date.toDateString();
  return `${today ? "" : day.format(date) + " "}${clock.format(date)}.${ms}`;
}

export function count(n) {
  if (n === null || n === undefined) return "–";
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return Number.isInteger(n) ? n.toLocaleString() : n.toFixed(1);
}

/** A 0..1 fraction as a percentage. */
export function percent(x) {
  if (x === null || x === undefined) return "–";
  const p = x * 100;
  return p === 0 ? "0%" : p < 0.1 ? "<0.1%" : `${p < 10 ? p.toFixed(1) : Math.round(p)}%`;
}

/** Bytes as "512 B", "3.4 MB". */
export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${i ? n.toFixed(n < 10 ? 1 : 0) : n} ${units[i]}`;
}

/** Why a retry happened, never blank: "Type: message", or what a bare timeout means. */
export function retryCause(type, message) {
  if (message) return `${type || "error"}: ${message}`;
  if (type === "TimeoutError") return "TimeoutError: the attempt ran past its timeout";
  return type || "error (no cause recorded)";
}

/** Any attribute value as one line of text. */
export function value(v) {
  if (v === null || v === undefined) return "–";
  if (Array.isArray(v)) return `[${v.map(value).join(", ")}]`;
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => `${k}=${value(x)}`).join("  ");
  if (typeof v === "number" && !Number.isInteger(v)) return String(Math.round(v * 1e6) / 1e6);
  return String(v);
}
