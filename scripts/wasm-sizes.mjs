// Where a wasm module's bytes go: each section's size, and the code section
// by crate (from the function names in the `name` section), with zlib -9
// of the whole module with and without that section.
//   node scripts/wasm-sizes.mjs [build/index_bg.wasm] [rows]
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const file = process.argv[2] ?? 'build/index_bg.wasm';
const rows = Number(process.argv[3] ?? 15);
const wasm = readFileSync(file);
if (wasm.readUInt32LE(0) !== 0x6d736100) throw new Error(`${file} is not a wasm module`);

function leb(at) {
  let value = 0, shift = 0, byte;
  do {
    byte = wasm[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [value, at];
}
const text = (at) => {
  const [len, start] = leb(at);
  return [wasm.toString('utf8', start, start + len), start + len];
};

const SECTION = ['custom', 'type', 'import', 'function', 'table', 'memory', 'global', 'export',
  'start', 'element', 'code', 'data', 'data count', 'tag'];
const sections = [];
for (let at = 8; at < wasm.length;) {
  const id = wasm[at];
  const [size, body] = leb(at + 1);
  const name = id === 0 ? text(body)[0] : SECTION[id] ?? `id ${id}`;
  sections.push({ id, name, from: at, body, end: body + size });
  at = body + size;
}

// Imported functions come first in the function index space.
let imported = 0;
const imports = sections.find((s) => s.id === 2);
if (imports) {
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
}

const names = new Map();
const nameSection = sections.find((s) => s.id === 0 && s.name === 'name');
if (nameSection) {
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
}

const byCrate = new Map();
const functions = [];
const code = sections.find((s) => s.id === 10);
let codeBytes = 0;
if (code) {
  let [count, at] = leb(code.body);
  for (let i = 0; i < count; i++) {
    const [len, body] = leb(at);
    const size = body + len - at;
    const name = names.get(imported + i) ?? '(no name)';
    // The first crate a path names: `core::fmt::write` -> core,
    // `<f64 as core::fmt::Display>::fmt` -> core, `<&mut serde_json::de::…` -> serde_json.
    const crate = name.match(/([A-Za-z_][A-Za-z0-9_]*)(\[[0-9a-f]+\])?::/)?.[1] ?? name;
    byCrate.set(crate, (byCrate.get(crate) ?? 0) + size);
    functions.push([size, name]);
    codeBytes += size;
    at = body + len;
  }
}

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
const gz = (buf) => gzipSync(buf, { level: 9 }).length;
console.log(`${file}: ${kib(wasm.length)}, zlib -9 ${kib(gz(wasm))}`);
if (nameSection) {
  const stripped = Buffer.concat([wasm.subarray(0, nameSection.from), wasm.subarray(nameSection.end)]);
  console.log(`without the name section: ${kib(stripped.length)}, zlib -9 ${kib(gz(stripped))}`);
}
console.log('\nsections:');
for (const s of [...sections].sort((a, b) => (b.end - b.from) - (a.end - a.from))) {
  console.log(`  ${kib(s.end - s.from).padStart(11)}  ${s.name}`);
}
if (!nameSection) {
  console.log('\nno name section: function names, and so crates, are unknown');
  process.exit(0);
}
console.log(`\ncode by crate (${byCrate.size} crates, ${kib(codeBytes)}; generic code counts where it is defined, e.g. BTreeMap under alloc):`);
for (const [crate, size] of [...byCrate].sort((a, b) => b[1] - a[1]).slice(0, rows)) {
  console.log(`  ${kib(size).padStart(11)} ${(100 * size / codeBytes).toFixed(1).padStart(5)} %  ${crate}`);
}

// WASM_SIZES_TOP=N: the N largest functions.
const top = Number(process.env.WASM_SIZES_TOP ?? 0);
if (top > 0) {
  console.log(`\nthe ${top} largest functions:`);
  for (const [size, name] of functions.sort((a, b) => b[0] - a[0]).slice(0, top)) {
    console.log(`${kib(size).padStart(11)}  ${name.slice(0, 150)}`);
  }
}

// WASM_SIZES_TSV=path: every function's size and name, for ad hoc grouping.
if (process.env.WASM_SIZES_TSV) {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(process.env.WASM_SIZES_TSV, functions.map(([s, n]) => `${s}\t${n}`).join('\n'));
}
