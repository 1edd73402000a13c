// Assembles the npm package of the browser replicas from wasm-pack's three
// modules: each module's .js, _bg.wasm and .d.ts, a package.json whose
// subpath exports name them, and the users' README (npm/README.md).
//   node scripts/browser-package.mjs <wasm-pack out dir> <package dir>
// The package dir is emptied first. The version and license are
// Cargo.toml's, as wasm-pack copied them into its own package.json.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const PACKAGE_NAME = '@edge-crdt/browser';

// Each subpath: the wasm-pack module (--out-name) behind it and the replica
// it adds. Separate modules, so a page loads only the replicas it imports.
const MODULES = [
  { subpath: '.', module: 'edge_crdt', replica: 'CounterReplica' },
  { subpath: './contacts', module: 'edge_crdt_contacts', replica: 'ContactsReplica' },
  { subpath: './stream', module: 'edge_crdt_stream', replica: 'StreamReplica' },
];

/** A module's files in the package: its code, its wasm, its types. */
const moduleFiles = (module) => [`${module}.js`, `${module}_bg.wasm`, `${module}.d.ts`];

function fail(message) {
  console.error(`browser-package: ${message}`);
  process.exit(1);
}

/** Fails unless wasm-pack wrote each module's files, with the types expected of it. */
function checkWasmPackOutput(outDir) {
  for (const { module, replica } of MODULES) {
    for (const file of moduleFiles(module)) {
      if (!existsSync(join(outDir, file))) fail(`${join(outDir, file)} is missing: did wasm-pack build ${module}?`);
    }
    const types = readFileSync(join(outDir, `${module}.d.ts`), 'utf8');
    for (const declaration of [`export class ${replica} `, 'export default function __wbg_init', 'export function initSync']) {
      if (!types.includes(declaration)) fail(`${module}.d.ts does not declare \`${declaration.trim()}\``);
    }
  }
  // JS snippets (#[wasm_bindgen(module = …)], inline_js) would need their
  // own files and sideEffects entries.
  if (existsSync(join(outDir, 'snippets'))) fail(`${outDir}/snippets exists: add it to the package's files and sideEffects`);
}

function manifest({ version, license }) {
  const exports = {};
  for (const { subpath, module } of MODULES) {
    exports[subpath] = { types: `./${module}.d.ts`, default: `./${module}.js` };
  }
  // The .wasm files too, for a server or a bundler that needs their path.
  for (const { module } of MODULES) exports[`./${module}_bg.wasm`] = `./${module}_bg.wasm`;
  exports['./package.json'] = './package.json';
  return {
    name: PACKAGE_NAME,
    version,
    description: "Browser replicas of edge-crdt's counters, address books and event streams, in WebAssembly",
    license,
    type: 'module',
    exports,
    // For tools that do not read `exports`.
    main: './edge_crdt.js',
    types: './edge_crdt.d.ts',
    files: MODULES.flatMap(({ module }) => moduleFiles(module)),
    sideEffects: false,
    keywords: ['crdt', 'wasm', 'webassembly', 'local-first', 'cloudflare-workers'],
    publishConfig: { access: 'public' },
  };
}

function main([outDir, packageDir]) {
  if (!outDir || !packageDir) fail('usage: node scripts/browser-package.mjs <wasm-pack out dir> <package dir>');
  checkWasmPackOutput(outDir);
  const wasmPack = JSON.parse(readFileSync(join(outDir, 'package.json'), 'utf8'));
  if (!wasmPack.version || !wasmPack.license) fail(`${outDir}/package.json has no version or license (from Cargo.toml)`);

  rmSync(packageDir, { recursive: true, force: true });
  mkdirSync(packageDir, { recursive: true });
  for (const { module } of MODULES) {
    for (const file of moduleFiles(module)) copyFileSync(join(outDir, file), join(packageDir, file));
  }
  copyFileSync(join(ROOT, 'npm', 'README.md'), join(packageDir, 'README.md'));
  writeFileSync(join(packageDir, 'package.json'), `${JSON.stringify(manifest(wasmPack), null, 2)}\n`);
  console.log(`browser-package: ${PACKAGE_NAME}@${wasmPack.version} in ${packageDir}`);
}

main(process.argv.slice(2));
