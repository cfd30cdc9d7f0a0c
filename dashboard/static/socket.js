// The one /ws/live connection of a page: reconnects by itself and tells listeners what arrives.

const listeners = new Set();
const stateListeners = new Set();
let state = "connecting";
let socket = null;
let retryMs = 250;
let last = null; // the latest figures, replayed to listeners that subscribe after they arrived

function setState(next) {
  state = next;
  for (const fn of stateListeners) fn(state);
}

function connect() {
  const url = new URL("/ws/live", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(url);
  socket.addEventListener("open", () => { retryMs = 250; setState("connected"); });
  socket.addEventListener("message", (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    if (message.live) last = { type: "snapshot", live: message.live };
    for (const fn of listeners) {
      try { fn(message); } catch (error) { console.error(error); }
    }
  });
  socket.addEventListener("close", () => {
    socket = null;
    setState("disconnected");
    // Back off with jitter so many tabs do not reconnect in lockstep after a restart.
    setTimeout(connect, retryMs * (0.5 + Math.random()));
    retryMs = Math.min(retryMs * 2, 4000);
  });
}

/** Call `fn` with every message (`snapshot` or `update`); connects on first use. */
export function onLive(fn) {
  listeners.add(fn);
  if (last) fn(last);
  if (!socket && state === "connecting") connect();
}

/** Call `fn` now and on every change of "connecting" | "connected" | "disconnected". */
export function onState(fn) {
  stateListeners.add(fn);
  fn(state);
}

export const connectionState = () => state;
