// Replaces with `unreachable` the bodies of functions a module keeps but
// can never call, when the module itself shows they are dead; otherwise
// leaves it as it is. scripts/build-worker.sh runs it on worker-build's
// module, which still has its function names, before the last wasm-opt.
//   node scripts/wasm-snip.mjs build/index_bg.wasm
//
// The one case: `f64`'s `Display`. serde's `Unexpected` formats a float
// through it (`WithDecimalPoint`), and serde_json's own `JsonUnexpected`
// writes every float itself (with zmij) before it hands any other
// `Unexpected` to serde's `Display`: so in a module where nothing but
// `WithDecimalPoint` names the float formatter and nothing but
// `JsonUnexpected` names `WithDecimalPoint`, neither can run, and the
// formatter (grisu, dragon and their bignums, 13.5 KB) goes. Formatting
// functions are called through the table, which is exported, so no
// optimizer can drop them.
//
// Rust code names a function by a direct call or by its table index: an
// `i32.const` that code stores, passes or returns (never one it adds,
// compares or uses as an address or a length), or a word in a vtable in
// the data (after a header of the type's size and alignment, 8 and 8 for
// both). Any other function that may name one of the two, and nothing is
// snipped: the check errs that way when a number merely equals an index.
// (Another serde error type that formats serde's messages, reading a
// float where something else is expected, would name `WithDecimalPoint`
// and keep the formatter; DAG-CBOR's reader reports such a type mismatch
// in its own words.)
import { readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readModule } from './lib/wasm-module.mjs';

const RULES = [
  {
    what: "f64's Display",
    snip: /^<f64 as core(\[[0-9a-f]+\])?::fmt::Display>::fmt$/,
    from: /^<serde_core::de::WithDecimalPoint as core::fmt::Display>::fmt::h[0-9a-f]{16}$/,
  },
  {
    what: "serde's WithDecimalPoint",
    snip: /^<serde_core::de::WithDecimalPoint as core::fmt::Display>::fmt::h[0-9a-f]{16}$/,
    from: /^<serde_json::error::JsonUnexpected as core::fmt::Display>::fmt::h[0-9a-f]{16}$/,
  },
];

const file = process.argv[2];
if (!file) throw new Error('usage: node scripts/wasm-snip.mjs MODULE.wasm');
const wasm = readFileSync(file);

function uleb(n) {
  const out = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return Buffer.from(out);
}
const { leb, sections, imported, names, nameSection } = readModule(wasm, file);
if (!nameSection) {
  console.log('wasm-snip: the module has no names; nothing snipped');
  process.exit(0);
}
const only = (pattern) => {
  const found = [...names].filter(([, name]) => pattern.test(name));
  return found.length === 1 ? found[0] : null;
};

// The text form (binaryen's wasm-dis): each function's body, the table.
const wasmDis = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', '.bin', 'wasm-dis');
const wat = execFileSync(wasmDis, [file], { maxBuffer: 1 << 30, encoding: 'utf8' });
const bodies = new Map(); // text name -> body
{
  const lines = wat.split('\n');
  let current = null;
  for (const line of lines) {
    const head = line.match(/^ \(func \$("(?:[^"\\]|\\.)*"|\S+)/);
    if (head) {
      current = head[1].startsWith('"') ? JSON.parse(head[1]) : head[1];
      bodies.set(current, []);
    } else if (/^ \(/.test(line)) {
      current = null;
    }
    if (current !== null) bodies.get(current).push(line);
  }
}
const tableIndex = new Map(); // text name -> index
for (const m of wat.matchAll(/^ \(elem (?:\$\S+ )?(?:\(table \$\S+\) )?\(i32\.const (\d+)\) func ([^\n]*)\)$/gm)) {
  const refs = m[2].match(/\$("(?:[^"\\]|\\.)*"|[^\s")]+)/g).map((r) => (r[1] === '"' ? JSON.parse(r.slice(1)) : r.slice(1)));
  refs.forEach((ref, i) => { if (!tableIndex.has(ref)) tableIndex.set(ref, Number(m[1]) + i); });
}

// Every aligned 32-bit word of the data segments, by address.
const memory = new Map();
const data = sections.find((s) => s.id === 11);
if (data) {
  let [count, at] = leb(data.body);
  for (; count > 0; count--) {
    const flags = wasm[at++];
    let offset = null;
    if (flags === 2) [, at] = leb(at);
    if (flags !== 1) {
      if (wasm[at] === 0x41) [offset, at] = leb(at + 1); // i32.const
      while (wasm[at] !== 0x0b) at++;
      at++;
    }
    const [len, start] = leb(at);
    if (offset !== null) {
      for (let p = (4 - (offset % 4)) % 4; p + 4 <= len; p += 4) memory.set(offset + p, wasm.readUInt32LE(start + p));
    }
    at = start + len;
  }
}
// Whether `index` is in the data where it could be a slot of a vtable for
// a value of `size` and `align`: a vtable starts with the drop function,
// the size and the alignment, then its methods (a few).
function inVtable(index, size, align) {
  for (const [address, word] of memory) {
    if (word !== index) continue;
    for (let slot = 1; slot <= 16; slot++) {
      const at = address - 4 * slot;
      if (memory.get(at - 8) === size && memory.get(at - 4) === align) return true;
    }
  }
  return false;
}
// Where a function's index may be taken in code: an `i32.const` of it
// anywhere but as an operand of arithmetic, a comparison, an address or a
// length (a table index is stored, passed or returned, never computed on).
const NOT_A_POINTER = /^\((i32\.(add|sub|mul|and|or|xor|shl|shr_[su]|rotl|rotr|eq|ne|[lg][te]_[su]|div_[su]|rem_[su])|i64\.\w+|memory\.(copy|fill)|i32\.(load|store)(8|16)(_[su])?)\b/;
// Calls whose arguments are sizes, alignments or indices.
const SIZES = /^\((table\.get|call \$"?[^ ]*(__rdl_(alloc|dealloc|realloc)|__rust_(alloc|dealloc|realloc)|box_new_uninit|panic_bounds_check|slice_index_fail|slice_(start|end)_index_len_fail))\b/;
function namesIndex(lines, index) {
  const constant = `(i32.const ${index})`;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== constant) continue;
    const indent = lines[i].length - lines[i].trimStart().length;
    let j = i - 1;
    while (j >= 0 && lines[j].length - lines[j].trimStart().length >= indent) j--;
    const parent = lines[j].trim();
    const first = j === i - 1;
    // the address of a load or a store is data, not a function
    if (first && /^\(i32\.(load|store)/.test(parent)) continue;
    if (NOT_A_POINTER.test(parent) || SIZES.test(parent)) continue;
    return true;
  }
  return false;
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const snipped = new Set();
function check(rule) {
  const target = only(rule.snip);
  const caller = only(rule.from);
  if (!target || !caller) return `${rule.what}: not found once`;
  const name = target[1];
  const index = tableIndex.get(name);
  if (index === undefined) return `${rule.what}: not in the table`;
  if (inVtable(index, 8, 8)) return `${rule.what}: its index ${index} may be in a vtable`;
  const direct = new RegExp(`\\((?:call|return_call|ref\\.func) \\$(?:"${escape(JSON.stringify(name).slice(1, -1))}"|${escape(name)})[\\s)]`);
  for (const [fn, body] of bodies) {
    if (direct.test(body.join('\n'))) return `${rule.what}: called by ${fn}`;
    if (fn !== caller[1] && !snipped.has(fn) && namesIndex(body, index)) return `${rule.what}: ${fn} names its index ${index}`;
  }
  return null;
}
// The callers' rules first: a snipped function names nothing.
for (const rule of [...RULES].reverse()) {
  const why = check(rule);
  if (why) {
    console.log(`wasm-snip: nothing snipped (${why})`);
    process.exit(0);
  }
  snipped.add(only(rule.snip)[1]);
}

// The code section again, each snipped body now `unreachable`.
const code = sections.find((s) => s.id === 10);
const dead = new Set([...names].filter(([, name]) => snipped.has(name)).map(([index]) => index - imported));
let [count, at] = leb(code.body);
const parts = [uleb(count)];
let freed = 0;
for (let i = 0; i < count; i++) {
  const [len, body] = leb(at);
  if (dead.has(i)) {
    parts.push(Buffer.from([3, 0, 0x00, 0x0b])); // no locals, unreachable, end
    freed += body + len - at - 4;
  } else {
    parts.push(wasm.subarray(at, body + len));
  }
  at = body + len;
}
const payload = Buffer.concat(parts);
writeFileSync(file, Buffer.concat([
  wasm.subarray(0, code.from), Buffer.from([10]), uleb(payload.length), payload, wasm.subarray(code.end),
]));
console.log(`wasm-snip: ${RULES.map((r) => r.what).join(', ')}: ${freed} bytes of code snipped`);
