// Reads a CARv1 file with the IPFS libraries and checks every block: a
// DAG-CBOR (0x71) sha2-256 CID whose digest matches the block's bytes.
import { CarReader } from '@ipld/car';
import * as dagCbor from '@ipld/dag-cbor';
import { sha256 } from 'multiformats/hashes/sha2';
import { equals } from 'multiformats/bytes';

/** `{roots: [cid strings], blocks: [{cid, value}]}`; throws on any mismatch. */
export async function readCar(bytes) {
  const reader = await CarReader.fromBytes(bytes);
  const roots = (await reader.getRoots()).map((cid) => cid.toString());
  const blocks = [];
  for await (const { cid, bytes: data } of reader.blocks()) {
    if (cid.code !== dagCbor.code) throw new Error(`${cid}: codec 0x${cid.code.toString(16)}, not 0x71`);
    if (cid.multihash.code !== sha256.code) throw new Error(`${cid}: not a sha2-256 multihash`);
    const digest = await sha256.digest(data);
    if (!equals(digest.bytes, cid.multihash.bytes)) throw new Error(`${cid}: the block's bytes hash otherwise`);
    blocks.push({ cid: cid.toString(), value: dagCbor.decode(data) });
  }
  return { roots, blocks };
}
