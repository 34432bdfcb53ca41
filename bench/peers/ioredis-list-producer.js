// ioredis-list-producer.js - a Redis list producer written the way apps
// write it: read lines (or, with -0, NUL-terminated records) from stdin and
// LPUSH each one's raw bytes to QUEUE, pipelined in batches of 1,000 (each
// batch awaited, every reply checked).  The peer of qctl enqueue --backend
// list in tests/qctl-list.bats (interop: qctl consumes what it pushed).
//
//   node ioredis-list-producer.js REDIS_URL QUEUE [-0]
'use strict';
const Redis = require('ioredis');

async function main() {
  const [url, queue, flag] = process.argv.slice(2);
  const sep = flag === '-0' ? 0 : 10;
  const redis = new Redis(url);
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  const all = Buffer.concat(chunks);
  let batch = redis.pipeline();
  let inBatch = 0;
  let total = 0;
  const flush = async () => {
    const res = await batch.exec();
    for (const [err] of res) if (err) throw err;
    batch = redis.pipeline();
    inBatch = 0;
  };
  let start = 0;
  while (start < all.length) {
    let end = all.indexOf(sep, start);
    if (end < 0) end = all.length;
    batch.lpush(queue, all.subarray(start, end));
    total++;
    start = end + 1;
    if (++inBatch === 1000) await flush();
  }
  if (inBatch) await flush();
  await redis.quit();
  process.stderr.write(`ioredis-list-producer: ${total} messages\n`);
}

main().catch((e) => {
  process.stderr.write(`ioredis-list-producer: ${e.message}\n`);
  process.exit(1);
});
