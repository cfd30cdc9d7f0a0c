// The critical path, as Jaeger's: the pieces of spans that set the trace's end-to-end time. From
// a root's end, walk back: the child that ended last before that point is on the path (and, within
// it, the same walk again); the parent's own time between such children is on the path too.

/**
 * The path over `rows` (waterfall.js `layout` rows: tree order, `parent` an index, -1 for a root);
 * a span still running ends at `t1`. Children are clipped to their parent's time. Returns
 * `{ segments, bySpan }`: per span object its pieces of the path ([from, to] ns, latest first), and
 * its time on the path in ns. Iterative, O(n log n): a 10,000-deep chain is no deeper
 * a stack than a flat trace.
 */
export function criticalPath(rows, t1) {
  const from = new Float64Array(rows.length);
  const to = new Float64Array(rows.length);
  const kids = new Map(); // row -> child rows inside its time, latest end first
  rows.forEach(({ span, parent }, i) => {
    from[i] = span.start_ns;
    to[i] = span.end_ns ?? t1;
    if (parent < 0) return;
    from[i] = Math.max(from[i], from[parent]);
    to[i] = Math.min(to[i], to[parent]);
    if (to[i] < from[i]) return; // wholly outside its parent's time: not on its path
    if (!kids.has(parent)) kids.set(parent, []);
    kids.get(parent).push(i);
  });
  for (const list of kids.values()) list.sort((a, b) => to[b] - to[a]);
  const next = new Map(); // row -> how far its children list has been walked
  const segments = new Map();
  const bySpan = new Map();
  const add = (i, a, b) => {
    if (b <= a) return;
    const { span } = rows[i];
    if (!segments.has(span)) segments.set(span, []);
    segments.get(span).push([a, b]);
    bySpan.set(span, (bySpan.get(span) || 0) + b - a);
  };
  rows.forEach(({ parent }, root) => {
    if (parent >= 0) return;
    let i = root;
    let cursor = to[root];
    for (;;) {
      // The cursor only moves earlier for a row, so its children are walked once, in order.
      const list = kids.get(i) || [];
      let k = next.get(i) || 0;
      while (k < list.length && to[list[k]] > cursor) k++;
      next.set(i, k + 1);
      if (k < list.length) {
        const child = list[k];
        add(i, to[child], cursor);
        i = child;
        cursor = to[child];
      } else {
        add(i, from[i], cursor);
        if (i === root) break;
        cursor = from[i];
        i = rows[i].parent;
      }
    }
  });
  return { segments, bySpan };
}
