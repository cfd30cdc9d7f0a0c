// A trace read from a file, in the browser (nothing is uploaded): the file the Trace page's JSON
// button saves, or Jaeger's "Download JSON". The file is untrusted: its size is bounded, and every
// span is checked and rebuilt field by field into the records the Trace views draw, or refused
// with where and what was wrong.

export const MAX_FILE_BYTES = 128 * 1024 * 1024;
export const MAX_FILE_SPANS = 200_000;
const MAX_NESTING = 16; // levels of arrays and objects inside an attribute value
const HEX_ID = /^[0-9a-f]{1,32}$/;

/** What is wrong with a file, said to the person who chose it. */
export class BadTraceFile extends Error {}

const bad = (where, expected, got) => {
  const shown = got === null ? "null" : Array.isArray(got) ? "an array" : typeof got === "string" ? JSON.stringify(got.slice(0, 40)) : typeof got;
  return new BadTraceFile(`${where}: expected ${expected}, got ${shown}`);
};
const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

function object(v, where) {
  if (!isObject(v)) throw bad(where, "an object", v);
  return v;
}

function list(v, where) {
  if (!Array.isArray(v)) throw bad(where, "an array", v);
  return v;
}

function text(v, where) {
  if (typeof v !== "string") throw bad(where, "a string", v);
  return v;
}

function number(v, where) {
  if (typeof v !== "number" || !Number.isFinite(v)) throw bad(where, "a number", v);
  return v;
}

/** A span or trace id: hex digits (Jaeger's may be shorter than ours), lower-cased. */
function hexId(v, where) {
  const id = text(v, where).toLowerCase();
  if (!HEX_ID.test(id)) throw bad(where, "an id of 1 to 32 hex digits", v);
  return id;
}

/** Attributes: an object whose values nest at most MAX_NESTING deep (the detail panel formats them recursively). */
function attributes(v, where) {
  const check = (x, depth) => {
    if (depth > MAX_NESTING) throw new BadTraceFile(`${where}: values nest more than ${MAX_NESTING} levels deep`);
    if (typeof x === "object" && x !== null) for (const y of Object.values(x)) check(y, depth + 1);
  };
  check(object(v ?? {}, where), 0);
  return v ?? {};
}

/** One span as the API's record (docs/api.md), rebuilt from `s` with only the fields the views read. */
function record(s, where) {
  object(s, where);
  const start = number(s.start_ns, `${where}.start_ns`);
  const end = s.end_ns === null || s.end_ns === undefined ? null : number(s.end_ns, `${where}.end_ns`);
  if (end !== null && end < start) throw new BadTraceFile(`${where}: end_ns is before start_ns`);
  const status = object(s.status ?? {}, `${where}.status`);
  const attrs = attributes(s.attributes, `${where}.attributes`);
  const outcome = end === null ? null : s.outcome ?? attrs["opto.outcome"] ?? (status.code === "error" ? "error" : "ok");
  return {
    trace_id: hexId(s.trace_id, `${where}.trace_id`),
    span_id: hexId(s.span_id, `${where}.span_id`),
    parent_span_id: s.parent_span_id === null || s.parent_span_id === undefined ? null : hexId(s.parent_span_id, `${where}.parent_span_id`),
    name: text(s.name, `${where}.name`),
    kind: text(s.kind ?? "internal", `${where}.kind`),
    state: end === null ? "started" : "ended",
    start_ns: start,
    end_ns: end,
    duration_ms: end === null ? null : (end - start) / 1e6,
    outcome: outcome === null ? null : text(outcome, `${where}.outcome`),
    status: { code: text(status.code ?? "unset", `${where}.status.code`), message: text(status.message ?? "", `${where}.status.message`) },
    service: s.service === null || s.service === undefined ? null : text(s.service, `${where}.service`),
    process_id: null, // no process to ask "where is it now?"
    attributes: attrs,
    events: list(s.events ?? [], `${where}.events`).map((e, i) => ({
      name: text(object(e, `${where}.events[${i}]`).name, `${where}.events[${i}].name`),
      time_ns: number(e.time_ns, `${where}.events[${i}].time_ns`),
      attributes: attributes(e.attributes, `${where}.events[${i}].attributes`),
    })),
    links: list(s.links ?? [], `${where}.links`).map((l, i) => ({
      trace_id: hexId(object(l, `${where}.links[${i}]`).trace_id, `${where}.links[${i}].trace_id`),
      span_id: hexId(l.span_id, `${where}.links[${i}].span_id`),
      attributes: attributes(l.attributes, `${where}.links[${i}].attributes`),
    })),
  };
}

/** Jaeger's key/value lists (tags, a log's fields) as one object (without a prototype: a key "__proto__" is a key). */
function keyValues(v, where) {
  const out = Object.create(null);
  list(v ?? [], where).forEach((kv, i) => { out[text(object(kv, `${where}[${i}]`).key, `${where}[${i}].key`)] = kv.value ?? null; });
  return out;
}

/** A span of Jaeger's JSON (µs times, tags, logs, references) as our record's fields. */
function fromJaeger(s, processes, where) {
  object(s, where);
  const start = number(s.startTime, `${where}.startTime`) * 1000;
  const tags = keyValues(s.tags, `${where}.tags`);
  const refs = list(s.references ?? [], `${where}.references`).map((r, i) => object(r, `${where}.references[${i}]`));
  const parent = refs.find((r) => r.refType === "CHILD_OF") ?? refs.find((r) => r.traceID === s.traceID);
  const failedSpan = tags.error === true || tags.error === "true";
  return {
    trace_id: s.traceID, span_id: s.spanID, parent_span_id: parent ? parent.spanID : null, name: s.operationName,
    kind: typeof tags["span.kind"] === "string" ? tags["span.kind"] : "internal",
    start_ns: start, end_ns: start + number(s.duration, `${where}.duration`) * 1000,
    outcome: failedSpan ? "error" : "ok", status: { code: failedSpan ? "error" : "unset", message: "" },
    service: isObject(processes[s.processID]) ? processes[s.processID].serviceName ?? null : null,
    attributes: tags,
    events: list(s.logs ?? [], `${where}.logs`).map((log, i) => {
      const fields = keyValues(object(log, `${where}.logs[${i}]`).fields, `${where}.logs[${i}].fields`);
      return { name: typeof fields.event === "string" ? fields.event : "log", time_ns: number(log.timestamp, `${where}.logs[${i}].timestamp`) * 1000, attributes: fields };
    }),
    links: refs.filter((r) => r !== parent).map((r) => ({ trace_id: r.traceID, span_id: r.spanID, attributes: { "jaeger.ref_type": r.refType ?? null } })),
  };
}

/**
 * The trace in `file`: `{ traceId, spans, note }` (note: anything the reader left out), or a
 * BadTraceFile saying what is wrong with it.
 */
export async function readTraceFile(file) {
  const limit = `${MAX_FILE_BYTES / 1024 / 1024} MB`;
  if (file.size > MAX_FILE_BYTES) throw new BadTraceFile(`${file.name} is ${(file.size / 1024 / 1024).toFixed(1)} MB; a trace file may be up to ${limit}`);
  let data;
  try {
    data = JSON.parse(await file.text());
  } catch (error) {
    throw new BadTraceFile(`${file.name} is not JSON (${error.message})`);
  }
  let raw;
  let note = "";
  if (isObject(data) && Array.isArray(data.spans)) {
    raw = data.spans.map((s, i) => [s, `spans[${i}]`]);
  } else if (isObject(data) && Array.isArray(data.data)) {
    const trace = object(data.data[0], "data[0]");
    if (data.data.length > 1) note = `the file holds ${data.data.length} traces; the first is shown`;
    const processes = object(trace.processes ?? {}, "data[0].processes");
    raw = list(trace.spans, "data[0].spans").map((s, i) => [fromJaeger(s, processes, `data[0].spans[${i}]`), `data[0].spans[${i}]`]);
  } else {
    throw new BadTraceFile(`${file.name} is not a trace: expected the Trace page's JSON ({"trace_id", "spans": [...]}) or Jaeger's ({"data": [{"spans": [...]}]})`);
  }
  if (!raw.length) throw new BadTraceFile(`${file.name} holds no span`);
  if (raw.length > MAX_FILE_SPANS) throw new BadTraceFile(`${file.name} holds ${raw.length.toLocaleString()} spans; a trace file may hold up to ${MAX_FILE_SPANS.toLocaleString()}`);
  const spans = raw.map(([s, where]) => record(s, where));
  return { traceId: spans[0].trace_id, spans, note };
}
