// ioredis-cluster-warm.js - the ioredis Cluster peer of `cachectl warm`
// into a Redis Cluster: read key<TAB>value lines and SET each with EX =
// TTL plus up to JITTER% at random, in batches of 1,000 lines split by the
// master that serves each key's slot, one pipeline per master, the
// masters' pipelines of a batch run at once and awaited before the next
// batch (an ioredis pipeline must stay on one node).
//
//   node ioredis-cluster-warm.js HOST:PORT[,HOST:PORT...] FILE TTL_SECONDS JITTER_PCT
'use strict';
const fs = require('node:fs');
const readline = require('node:readline');
const Redis = require('ioredis');
const calculateSlot = require('cluster-key-slot');

async function main() {
  const [seeds, file, ttlArg, jitterArg] = process.argv.slice(2);
  const ttl = Number(ttlArg);
  const jitter = Number(jitterArg) / 100;
  const nodes = seeds.split(',').map((hp) => {
    const i = hp.lastIndexOf(':');
    return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
  });
  const cluster = new Redis.Cluster(nodes, { enableOfflineQueue: true });
  await new Promise((resolve, reject) => {
    cluster.once('ready', resolve);
    cluster.once('error', reject);
  });
  // node key ("host:port") -> its connection
  const byKey = new Map();
  for (const n of cluster.nodes('master')) byKey.set(`${n.options.host}:${n.options.port}`, n);
  const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  let batch = new Map();
  let inBatch = 0;
  let total = 0;
  const flush = async () => {
    const results = await Promise.all([...batch.values()].map((p) => p.exec()));
    for (const res of results) for (const [err] of res) if (err) throw err;
    batch = new Map();
    inBatch = 0;
  };
  for await (const line of rl) {
    const tab = line.indexOf('\t');
    if (tab < 0) continue;
    const key = line.slice(0, tab);
    const owner = cluster.slots[calculateSlot(key)][0];
    let p = batch.get(owner);
    if (!p) {
      p = byKey.get(owner).pipeline();
      batch.set(owner, p);
    }
    const ex = ttl + Math.floor(Math.random() * ttl * jitter);
    p.set(key, line.slice(tab + 1), 'EX', ex);
    total++;
    if (++inBatch === 1000) await flush();
  }
  if (inBatch) await flush();
  await cluster.quit();
  process.stderr.write(`ioredis-cluster-warm: ${total} keys\n`);
}

main().catch((e) => {
  process.stderr.write(`ioredis-cluster-warm: ${e.message}\n`);
  process.exit(1);
});
