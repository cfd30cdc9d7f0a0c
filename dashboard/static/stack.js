// A Python stack as people read it: the program's own frames first, the machinery's folded away.
import { h } from "/static/dom.js";

// Frames of the interpreter's and the SDK's machinery: runpy, asyncio, threading, opto itself.
const MACHINERY = /File "(<frozen [^>]*>|[^"]*\/(runpy|threading|selectors|contextvars|functools)\.py|[^"]*\/(asyncio|concurrent|opto|opentelemetry)\/[^"]*)"/;

/** Split `traceback.format_list` text into frames ("  File ..., line N, in f" and its code line). */
export function frames(text) {
  const out = [];
  for (const line of String(text).split("\n")) {
    if (line.trimStart().startsWith("File \"") || !out.length) out.push(line);
    else out[out.length - 1] += `\n${line}`;
  }
  return out.map((f) => f.replace(/\n+$/, "")).filter((f) => f.trim());
}

/** The user's frames, innermost (where the task was created) first; the whole stack behind a disclosure. */
export function stackView(text) {
  const all = frames(text);
  const mine = all.filter((f) => !MACHINERY.test(f)).reverse();
  if (!mine.length || mine.length === all.length) return h("pre", { class: "stack" }, all.join("\n"));
  return h("div", { class: "stack" },
    h("pre", { "data-testid": "user-frames" }, mine.join("\n")),
    h("details", {}, h("summary", {}, `the whole stack, outermost first (${all.length - mine.length} frames of runpy, asyncio and opto folded)`),
      h("pre", {}, all.join("\n"))));
}
