// ioredis-list-replay.js - moving a Redis list's dead letters back the way
// scripts do it: RPOPLPUSH DLQ QUEUE, one item per round trip, until the
// DLQ is empty (or COUNT moved).  The peer of qctl replay-dlq --backend
// list in bench/run's list-replay row.
//
//   node ioredis-list-replay.js REDIS_URL DLQ QUEUE [COUNT]
'use strict';
const Redis = require('ioredis');

async function main() {
  const [url, dlq, queue, countArg] = process.argv.slice(2);
  const count = countArg ? Number(countArg) : Infinity;
  const redis = new Redis(url);
  let n = 0;
  while (n < count && (await redis.rpoplpushBuffer(dlq, queue)) !== null) n++;
  await redis.quit();
  process.stderr.write(`ioredis-list-replay: ${n} moved\n`);
}

main().catch((e) => {
  process.stderr.write(`ioredis-list-replay: ${e.message}\n`);
  process.exit(1);
});
