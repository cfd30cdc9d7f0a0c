// "Where is it now?": asks a live process (through the dashboard) for the await chain of a task or
// of the task running a span, and shows it in a dialog. Every string from the process is text.
import { h, fill } from "/static/dom.js";
import { getJSON } from "/static/api.js";

let dialog = null;
let asked = 0; // answers to an earlier click are dropped

function theDialog() {
  if (!dialog) {
    dialog = h("dialog", { class: "where card", "aria-label": "Where is it now?", "data-testid": "where-dialog" });
    document.body.append(dialog);
  }
  return dialog;
}

function frameLine(f) {
  return h("li", {}, h("span", { class: "mono" }, `${f.file}:${f.line}`), " in ", h("strong", {}, f.function));
}

/** Show the answer of `/api/await-stack` (or its error) in the dialog. */
function show(title, answer, error) {
  const body = [h("h2", { class: "card-title" }, title)];
  if (error) body.push(h("p", { class: "error-line", "data-testid": "where-error" }, error.message));
  else {
    body.push(h("p", { class: "muted" }, `task ${answer.task}: ${answer.running ? "running on its loop now" : answer.awaiting ? `awaiting ${answer.awaiting}` : "suspended"}`));
    body.push(h("ol", { class: "where-frames", "data-testid": "where-frames" }, answer.frames.map(frameLine)));
  }
  body.push(h("form", { method: "dialog" }, h("button", {}, "Close")));
  const node = theDialog();
  fill(node, body);
  if (!node.open) node.showModal();
}

/** A "Where is it now?" button for a task (`{task}`) or a span (`{span_id}`) of process `processId`. */
export function whereButton(processId, target, label = "Where is it now?") {
  return h("button", {
    type: "button", class: "where-button", "data-testid": "where-button", title: "Ask the process where this is awaiting right now",
    onclick: async (event) => {
      event.stopPropagation();
      const mine = ++asked;
      const query = new URLSearchParams({ process: processId, ...Object.fromEntries(Object.entries(target).map(([k, v]) => [k, String(v)])) });
      let answer = null;
      let error = null;
      try { answer = await getJSON(`/api/await-stack?${query}`); } catch (e) { error = e; }
      if (mine === asked) show(label, answer, error);
    },
  }, label);
}
