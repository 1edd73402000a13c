// A wasm module's layout, for scripts/wasm-sizes.mjs and scripts/wasm-snip.mjs:
// its sections, how many functions it imports (they come first in the
// function index space) and its function names (from the `name` section).

const SECTION = ['custom', 'type', 'import', 'function', 'table', 'memory', 'global', 'export',
  'start', 'element', 'code', 'data', 'data count', 'tag'];

export function readModule(wasm, file = 'the module') {
  if (wasm.readUInt32LE(0) !== 0x6d736100) throw new Error(`${file} is not a wasm module`);
  const leb = (at) => {
    let value = 0, shift = 0, byte;
    do {
      byte = wasm[at++];
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return [value, at];
  };
  const text = (at) => {
    const [len, start] = leb(at);
    return [wasm.toString('utf8', start, start + len), start + len];
  };
  const sections = [];
  for (let at = 8; at < wasm.length;) {
    const id = wasm[at];
    const [size, body] = leb(at + 1);
    const name = id === 0 ? text(body)[0] : SECTION[id] ?? `id ${id}`;
    sections.push({ id, name, from: at, body, end: body + size });
    at = body + size;
  }
  const nameSection = sections.find((s) => s.id === 0 && s.name === 'name') ?? null;
  return {
    leb, text, sections, nameSection,
    imported: importedFunctions(sections, leb, text, wasm),
    names: functionNames(nameSection, leb, text, wasm),
  };
}

function importedFunctions(sections, leb, text, wasm) {
  let imported = 0;
  const imports = sections.find((s) => s.id === 2);
  if (!imports) return 0;
  let [count, at] = leb(imports.body);
  for (; count > 0; count--) {
    [, at] = text(at);
    [, at] = text(at);
    const kind = wasm[at++];
    if (kind === 0) { [, at] = leb(at); imported++; }
    else if (kind === 1) { at++; const flags = wasm[at++]; [, at] = leb(at); if (flags & 1) [, at] = leb(at); }
    else if (kind === 2) { const flags = wasm[at++]; [, at] = leb(at); if (flags & 1) [, at] = leb(at); }
    else if (kind === 3) at += 2;
    else if (kind === 4) { at++; [, at] = leb(at); }
  }
  return imported;
}

function functionNames(nameSection, leb, text, wasm) {
  const names = new Map();
  if (!nameSection) return names;
  let [, at] = text(nameSection.body);
  while (at < nameSection.end) {
    const sub = wasm[at];
    const [len, start] = leb(at + 1);
    if (sub === 1) {
      let [count, p] = leb(start);
      for (; count > 0; count--) {
        let index, name;
        [index, p] = leb(p);
        [name, p] = text(p);
        names.set(index, name);
      }
    }
    at = start + len;
  }
  return names;
}
