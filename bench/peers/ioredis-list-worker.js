// ioredis-list-worker.js - the reliable-queue worker as apps write it:
// RPOPLPUSH QUEUE PROCESSING (one round trip), write the body and a newline
// to stdout, then LREM PROCESSING 1 BODY (another round trip), one message
// at a time.  Exits when the queue is empty (or after COUNT messages).
// The peer of qctl consume --backend list: bench/run's list-consume row,
// and tests/qctl-list.bats (interop: it consumes what qctl enqueued).
// With FAIL_ON set, a message whose body equals it is left in PROCESSING
// and the worker exits 3 (a worker that died mid-message).
//
//   node ioredis-list-worker.js REDIS_URL QUEUE PROCESSING [COUNT]
'use strict';
const Redis = require('ioredis');

async function main() {
  const [url, queue, processing, countArg] = process.argv.slice(2);
  const count = countArg ? Number(countArg) : Infinity;
  const failOn = process.env.FAIL_ON;
  const redis = new Redis(url);
  const out = [];
  let n = 0;
  while (n < count) {
    const body = await redis.rpoplpushBuffer(queue, processing);
    if (body === null) break;
    if (failOn !== undefined && body.toString() === failOn) {
      process.stdout.write(Buffer.concat(out));
      await redis.quit();
      process.exit(3);
    }
    out.push(body, Buffer.from('\n'));
    if (out.length >= 2000) process.stdout.write(Buffer.concat(out.splice(0)));
    await redis.lrem(processing, 1, body);
    n++;
  }
  process.stdout.write(Buffer.concat(out));
  await redis.quit();
  process.stderr.write(`ioredis-list-worker: ${n} messages\n`);
}

main().catch((e) => {
  process.stderr.write(`ioredis-list-worker: ${e.message}\n`);
  process.exit(1);
});
