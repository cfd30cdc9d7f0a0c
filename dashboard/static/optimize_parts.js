// What the Optimization pages share: how a search or step's state and a score read.
import { value } from "/static/format.js";

/** The badge class and label of a search, depth or candidate: running, or its outcome. */
export function state(item) {
  if (item.state !== "ended") return ["inflight", "running"];
  return [item.outcome || "ok", item.outcome || "ok"];
}

/** A score to six significant decimals ("0.3", not "0.30000000000000004"); "–" when none. */
export const score = (s) => value(s ?? null);
