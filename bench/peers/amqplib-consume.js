// amqplib-consume.js - the amqplib peer of `qctl consume`: prefetch 100,
// write each body and a newline to stdout (synchronous for a file), ack
// each message after its line is written, stop after COUNT messages.
//
//   node amqplib-consume.js AMQP_URL QUEUE COUNT > out
'use strict';
const amqp = require('amqplib');

async function main() {
  const [url, queue, countArg] = process.argv.slice(2);
  const count = Number(countArg);
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  await ch.prefetch(100);
  let n = 0;
  const nl = Buffer.from('\n');
  await new Promise((resolve, reject) => {
    ch.on('error', reject);
    ch.consume(queue, (msg) => {
      if (!msg) return reject(new Error('consumer cancelled'));
      process.stdout.write(Buffer.concat([msg.content, nl]));
      ch.ack(msg);
      if (++n === count) resolve();
    }, { noAck: false });
  });
  await ch.close();
  await conn.close();
  process.stderr.write(`amqplib-consume: ${n} messages\n`);
}

main().catch((e) => {
  process.stderr.write(`amqplib-consume: ${e.message}\n`);
  process.exit(1);
});
