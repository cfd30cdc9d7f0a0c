// Building DOM from untrusted telemetry: every string becomes a text node, never markup.

const SVG_NS = "http://www.w3.org/2000/svg";

/** Create an element; `props` sets attributes (`class`, `data-*`, ...) or handlers (`onclick`). */
export function h(tag, props = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "style") node.style.cssText = String(value);  // the CSSOM: allowed where a style attribute is not (style-src 'self')
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** Append children: nodes as they are, anything else as text (so `<script>` stays text). */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace a node's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** Set text only when it changed, so steady values cause no re-layout. */
export function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Show a table's "empty" note when it has no rows. */
export function setRows(table, rows) {
  fill(table.tBodies[0], rows);
  const empty = document.querySelector(`[data-empty-for="${table.id}"]`);
  if (empty) empty.hidden = rows.length > 0;
}

/** The JSON the page template handed over (never pasted into markup). */
export function pageData() {
  return JSON.parse(document.getElementById("page-data").textContent);
}

/** Attribute and event names from `opto.telemetry.semconv` (`names.OUTCOME` is "opto.outcome"). */
export const names = JSON.parse(document.getElementById("semconv").textContent);
