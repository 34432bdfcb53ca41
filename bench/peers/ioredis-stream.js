// ioredis-stream.js - a Redis Streams app written the usual way with
// ioredis: the peer of `qctl consume` on a stream in bench/, and the other
// side of the interop tests (tests/qctl-stream.bats).
//
//   node ioredis-stream.js produce REDIS_URL STREAM COUNT [FIELD VALUE...]
//     XADD COUNT entries, pipelined 1,000 at a time: field "body" =
//     "msg-N", then the extra fields given (the same on every entry).
//   node ioredis-stream.js consume REDIS_URL STREAM GROUP COUNT
//     a group consumer: XREADGROUP COUNT 100 (BLOCK 2000), write each
//     entry's "body" and a newline to stdout, XACK each entry on its own
//     after its line is written; stop after COUNT entries, or when a read
//     comes back empty.
'use strict';
const Redis = require('ioredis');

async function produce(redis, stream, count, extra) {
  let p = redis.pipeline();
  let n = 0;
  for (let i = 1; i <= count; i++) {
    p.xadd(stream, '*', 'body', `msg-${i}`, ...extra);
    if (++n === 1000) {
      for (const [err] of await p.exec()) if (err) throw err;
      p = redis.pipeline();
      n = 0;
    }
  }
  if (n) for (const [err] of await p.exec()) if (err) throw err;
  process.stderr.write(`ioredis-stream: produced ${count}\n`);
}

function bodyOf(fields) {
  for (let i = 0; i + 1 < fields.length; i += 2)
    if (fields[i].toString() === 'body') return fields[i + 1];
  return Buffer.alloc(0);
}

async function consume(redis, stream, group, count) {
  const nl = Buffer.from('\n');
  let n = 0;
  while (n < count) {
    const res = await redis.xreadgroupBuffer('GROUP', group, `peer-${process.pid}`,
      'COUNT', 100, 'BLOCK', 2000, 'STREAMS', stream, '>');
    if (!res) break;
    for (const [id, fields] of res[0][1]) {
      process.stdout.write(Buffer.concat([bodyOf(fields), nl]));
      await redis.xack(stream, group, id);
      n++;
    }
  }
  process.stderr.write(`ioredis-stream: consumed ${n}\n`);
}

async function main() {
  const [mode, url, stream, ...rest] = process.argv.slice(2);
  const redis = new Redis(url);
  if (mode === 'produce') await produce(redis, stream, Number(rest[0]), rest.slice(1));
  else if (mode === 'consume') await consume(redis, stream, rest[0], Number(rest[1]));
  else throw new Error(`unknown mode '${mode}'`);
  await redis.quit();
}

main().catch((e) => {
  process.stderr.write(`ioredis-stream: ${e.message}\n`);
  process.exit(1);
});
