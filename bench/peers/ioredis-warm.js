// ioredis-warm.js - the ioredis peer of `cachectl warm`: read key<TAB>value
// lines and SET each with EX = TTL plus up to JITTER% at random, pipelined
// in batches of 1,000 (one batch in flight, each awaited before the next,
// as an application script would).
//
//   node ioredis-warm.js REDIS_URL FILE TTL_SECONDS JITTER_PCT
'use strict';
const fs = require('node:fs');
const readline = require('node:readline');
const Redis = require('ioredis');

async function main() {
  const [url, file, ttlArg, jitterArg] = process.argv.slice(2);
  const ttl = Number(ttlArg);
  const jitter = Number(jitterArg) / 100;
  const redis = new Redis(url, { enableOfflineQueue: true, lazyConnect: false });
  const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  let batch = redis.pipeline();
  let inBatch = 0;
  let total = 0;
  const flush = async () => {
    const res = await batch.exec();
    for (const [err] of res) if (err) throw err;
    batch = redis.pipeline();
    inBatch = 0;
  };
  for await (const line of rl) {
    const tab = line.indexOf('\t');
    if (tab < 0) continue;
    const ex = ttl + Math.floor(Math.random() * ttl * jitter);
    batch.set(line.slice(0, tab), line.slice(tab + 1), 'EX', ex);
    total++;
    if (++inBatch === 1000) await flush();
  }
  if (inBatch) await flush();
  await redis.quit();
  process.stderr.write(`ioredis-warm: ${total} keys\n`);
}

main().catch((e) => {
  process.stderr.write(`ioredis-warm: ${e.message}\n`);
  process.exit(1);
});
