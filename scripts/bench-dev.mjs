// `wrangler dev` for the benchmarks, without the DevTools inspector:
// wrangler's own dev server (the same workerd, the same Durable Objects and
// SQLite storage, the same proxy in front), started through wrangler's
// programmatic API with `dev.inspector: false`. The wrangler CLI always
// starts the inspector, and workerd then reports every subrequest (a
// Durable Object `fetch` included) to it as `Network.*` events, which cost
// a few ms of CPU each across workerd and wrangler's Node.js process:
// more than the request's own work. Every route is served by this one
// server, the naive baselines as much as the cluster, so a ratio compares
// the two sides under the same runtime.
//
// Usage (scripts/bench-server.sh runs it): node scripts/bench-dev.mjs
//   -c CONFIG --ip IP --port PORT --persist-to DIR [--var KEY:VALUE]...
//   [--log-level LEVEL]
// It runs until SIGTERM or SIGINT, then stops the server.

import { unstable_startWorker } from "wrangler";

const args = process.argv.slice(2);
const opts = { vars: {} };
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  const value = () => {
    if (i + 1 >= args.length) throw new Error(`bench-dev: ${arg} needs a value`);
    return args[++i];
  };
  switch (arg) {
    case "-c":
    case "--config":
      opts.config = value();
      break;
    case "--ip":
      opts.ip = value();
      break;
    case "--port":
      opts.port = Number(value());
      break;
    case "--persist-to":
      opts.persist = value();
      break;
    case "--log-level":
      opts.logLevel = value();
      break;
    case "--var": {
      const [key, ...rest] = value().split(":");
      opts.vars[key] = { type: "plain_text", value: rest.join(":") };
      break;
    }
    default:
      throw new Error(`bench-dev: unknown argument ${arg}`);
  }
}
for (const need of ["config", "ip", "port", "persist"]) {
  if (opts[need] === undefined) throw new Error(`bench-dev: --${need} is required`);
}

const worker = await unstable_startWorker({
  config: opts.config,
  bindings: opts.vars,
  dev: {
    inspector: false,
    server: { hostname: opts.ip, port: opts.port },
    persist: opts.persist,
    logLevel: opts.logLevel ?? "warn",
    watch: false,
    liveReload: false,
  },
});
await worker.ready;
console.log(`bench-dev: ready on ${await worker.url} (no inspector)`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await worker.dispose().catch((e) => console.error(`bench-dev: dispose: ${e}`));
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
