// What the Optimization pages share: how a search or step's state and a score read.
/** The badge class and label of a search, depth or candidate: running, or its outcome. */
export function state(item) {
  if (item.state !== "ended") return ["inflight", "running"];
  return [item.outcome || "ok", item.outcome || "ok"];
}

/** A score to four decimals ("0.3", not "0.30000000000000004"); "–" when none. */
export const score = (s) => (s === null || s === undefined ? "–" : String(Math.round(s * 1e4) / 1e4));
