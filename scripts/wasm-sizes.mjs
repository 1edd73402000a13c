// Where a wasm module's bytes go: each section's size, and the code section
// by crate (from the function names in the `name` section), with zlib -9
// of the whole module with and without that section.
//   node scripts/wasm-sizes.mjs [build/index_bg.wasm] [rows]
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { readModule } from './lib/wasm-module.mjs';

const file = process.argv[2] ?? 'build/index_bg.wasm';
const rows = Number(process.argv[3] ?? 15);
const wasm = readFileSync(file);
const { leb, sections, imported, names, nameSection } = readModule(wasm, file);

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
