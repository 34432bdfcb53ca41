// amqplib-publish.js - the amqplib peer of `qctl enqueue`: one persistent
// message per stdin line to QUEUE (default exchange) on a ConfirmChannel,
// waiting for confirms every 1,000 messages and at the end.  Honours
// publish() back-pressure ('drain').
//
//   node amqplib-publish.js AMQP_URL QUEUE < lines
'use strict';
const readline = require('node:readline');
const amqp = require('amqplib');

async function main() {
  const [url, queue] = process.argv.slice(2);
  const conn = await amqp.connect(url);
  const ch = await conn.createConfirmChannel();
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  let n = 0;
  for await (const line of rl) {
    const ok = ch.publish('', queue, Buffer.from(line), { persistent: true });
    if (!ok) await new Promise((resolve) => ch.once('drain', resolve));
    if (++n % 1000 === 0) await ch.waitForConfirms();
  }
  await ch.waitForConfirms();
  await ch.close();
  await conn.close();
  process.stderr.write(`amqplib-publish: ${n} messages confirmed\n`);
}

main().catch((e) => {
  process.stderr.write(`amqplib-publish: ${e.message}\n`);
  process.exit(1);
});
