// Header edits worked out in Rust (`gateway_core::header_edit`, encoded by `crate::http`),
// applied to a copy of a header block the runtime already holds, in one call from wasm.
//
// No decision is made here: which headers the origin and the client get is decided in Rust; this
// only replays `Headers.delete/set/append` so the unchanged headers never cross the wasm
// boundary. `edits` is "op\0name\0value" triples joined by "\0" (op: d = delete, s = set,
// a = append; NUL can be in no header name or value). A `TypeError` from `Headers` (a value the
// runtime refuses) is thrown to the caller, which maps it to an error.

function apply(headers, edits) {
  if (edits.length === 0) return;
  const parts = edits.split('\0');
  for (let i = 0; i + 2 < parts.length; i += 3) {
    const op = parts[i];
    if (op === 's') headers.set(parts[i + 1], parts[i + 2]);
    else if (op === 'd') headers.delete(parts[i + 1]);
    else if (op === 'a') headers.append(parts[i + 1], parts[i + 2]);
    else throw new TypeError(`unknown header edit ${op}`);
  }
}

// The response the client gets: the origin's status, status text, body (streamed untouched) and
// headers, copied natively, then edited.
export function decorated(upstream, edits) {
  const out = new Response(upstream.body, upstream);
  apply(out.headers, edits);
  return out;
}

// The init of the origin `fetch`: the client's headers copied natively, then edited; manual
// redirects; the body bytes if any.
export function outboundInit(method, inbound, edits, body) {
  const headers = new Headers(inbound);
  apply(headers, edits);
  return body === undefined
    ? { method, headers, redirect: 'manual' }
    : { method, headers, redirect: 'manual', body };
}

// A header block as one string for `gateway_core::header_block`: "name\0value\0" per entry, in
// the order `Headers` iterates them (lower-case names, repeated names combined, `Set-Cookie`
// entries apart).
export function block(headers) {
  let text = '';
  for (const [name, value] of headers) text += `${name}\0${value}\0`;
  return text;
}
