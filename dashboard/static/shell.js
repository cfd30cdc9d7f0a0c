// Parts of every page: the connection indicator.
import { onLive, onState } from "/static/socket.js";

const TEXT = { connecting: "Connecting…", connected: "Live", disconnected: "Reconnecting…" };
const conn = document.getElementById("conn");

onState((state) => {
  conn.dataset.state = state;
  conn.querySelector(".conn-text").textContent = TEXT[state];
  conn.title = state === "disconnected" ? "Lost the dashboard connection; retrying" : "";
});
onLive(() => {});
