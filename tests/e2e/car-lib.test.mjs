// The CAR checker (lib/car.mjs) on a CAR written by @ipld/car's CarWriter:
// it reads back roots and values, and throws once a block's byte is flipped.
// With CAR_FILE set it also reads that file (e.g. one written by the Rust
// test with CAR_OUT) and prints what it holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CarWriter } from '@ipld/car';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { readCar } from './lib/car.mjs';

async function block(value) {
  const bytes = dagCbor.encode(value);
  return { cid: CID.createV1(dagCbor.code, await sha256.digest(bytes)), bytes };
}

async function carOf(roots, blocks) {
  const { writer, out } = CarWriter.create(roots);
  const chunks = [];
  const collected = (async () => { for await (const c of out) chunks.push(c); })();
  for (const b of blocks) await writer.put(b);
  await writer.close();
  await collected;
  return new Uint8Array(Buffer.concat(chunks));
}

test('readCar returns the roots and decoded blocks of a CarWriter CAR', async () => {
  const first = await block({ topic: 't', message: new Uint8Array([1]), links: [] });
  const second = await block({ topic: 't', message: new Uint8Array([2]), links: [first.cid] });
  const car = await carOf([second.cid], [first, second]);
  const { roots, blocks } = await readCar(car);
  assert.deepEqual(roots, [second.cid.toString()]);
  assert.deepEqual(blocks.map((b) => b.cid), [first.cid.toString(), second.cid.toString()]);
  assert.deepEqual(blocks[1].value.links.map(String), [first.cid.toString()]);
  assert.deepEqual(blocks[0].value.message, new Uint8Array([1]));

  const flipped = car.slice();
  flipped[flipped.length - 1] ^= 1; // the last byte of the second block's data
  await assert.rejects(readCar(flipped), /hash otherwise/);
});

test('readCar refuses a block that is not DAG-CBOR', async () => {
  const bytes = new Uint8Array([1, 2, 3]);
  const raw = { cid: CID.createV1(0x55, await sha256.digest(bytes)), bytes };
  await assert.rejects(readCar(await carOf([raw.cid], [raw])), /not 0x71/);
});

test('readCar reads CAR_FILE', { skip: !process.env.CAR_FILE && 'CAR_FILE not set' }, async () => {
  const { roots, blocks } = await readCar(readFileSync(process.env.CAR_FILE));
  assert.ok(blocks.length > 0);
  console.log(JSON.stringify({ roots, blocks: blocks.map(({ cid, value }) => ({ cid, links: value.links?.map(String) })) }));
});
