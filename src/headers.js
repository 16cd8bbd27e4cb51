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

// The same edits on a list of [name, value] pairs (names as `Headers` iterates them: lower-case;
// an edit's name is compared lower-cased). `set` and `delete` drop every pair of that name;
// `set` and `append` add one at the end (`Headers` orders by name when it iterates).
function applyToList(list, edits) {
  if (edits.length === 0) return list;
  const parts = edits.split('\0');
  let out = list;
  for (let i = 0; i + 2 < parts.length; i += 3) {
    const op = parts[i];
    const name = parts[i + 1];
    if (op === 's' || op === 'd') {
      const lower = name.toLowerCase();
      out = out.filter((pair) => pair[0] !== lower);
    } else if (op !== 'a') {
      throw new TypeError(`unknown header edit ${op}`);
    }
    if (op !== 'd') out.push([name, parts[i + 2]]);
  }
  return out;
}

// The init of the origin `fetch`: the client's header pairs, edited, as a plain list (the
// `Request` that `fetch` builds makes the one `Headers` of it: a `Headers` copy here would be a
// second runtime object per request, destroyed later in a batch with the collection that frees
// its wrapper, BENCHMARKS.md); manual redirects; the body bytes if any.
export function outboundInit(method, inbound, edits, body) {
  const headers = applyToList([...inbound], edits);
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
