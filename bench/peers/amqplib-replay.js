// amqplib-replay.js - the amqplib peer of `qctl replay-dlq`: the same safe
// move.  Counts the messages in DLQ at start and moves only those: each is
// republished (mandatory, same body, properties and headers) to the queue
// named in its x-death header (or TARGET when given) on a ConfirmChannel,
// and the dead-letter copy is acked only once that publish is confirmed.
// Consumes with prefetch 100 so that many moves are in flight at once.
// An unroutable (returned) or nacked message is never acked: it stays in the
// DLQ and the script exits 1.
//
//   node amqplib-replay.js AMQP_URL DLQ [TARGET]
'use strict';
const amqp = require('amqplib');

const PROPS = ['contentType', 'contentEncoding', 'headers', 'deliveryMode', 'priority',
  'correlationId', 'replyTo', 'expiration', 'messageId', 'timestamp', 'type', 'userId',
  'appId'];

function targetOf(msg, fixed) {
  if (fixed) return fixed;
  const deaths = msg.properties.headers && msg.properties.headers['x-death'];
  if (Array.isArray(deaths) && deaths.length && deaths[0].queue) return deaths[0].queue;
  throw new Error('message without x-death and no TARGET given');
}

async function main() {
  const [url, dlq, fixed] = process.argv.slice(2);
  const conn = await amqp.connect(url);
  const ch = await conn.createConfirmChannel();
  const { messageCount } = await ch.checkQueue(dlq);
  let delivered = 0;
  let settled = 0;
  let failed = 0;
  let returned = 0;
  ch.on('return', () => { returned++; });
  await ch.prefetch(100);
  await new Promise((resolve, reject) => {
    if (messageCount === 0) return resolve();
    ch.on('error', reject);
    let tag = null;
    const settle = () => { if (++settled === messageCount) resolve(); };
    ch.consume(dlq, (msg) => {
      if (!msg) return reject(new Error('consumer cancelled'));
      if (delivered >= messageCount) { ch.nack(msg, false, true); return; }
      if (++delivered === messageCount && tag) ch.cancel(tag);
      const opts = { mandatory: true };
      for (const k of PROPS) if (msg.properties[k] !== undefined) opts[k] = msg.properties[k];
      ch.publish('', targetOf(msg, fixed), msg.content, opts, (err) => {
        if (err || returned) { failed++; ch.nack(msg, false, true); } else ch.ack(msg);
        settle();
      });
    }, { noAck: false }).then((ok) => { tag = ok.consumerTag; }, reject);
  });
  await ch.close();
  await conn.close();
  process.stderr.write(`amqplib-replay: moved ${settled - failed} of ${messageCount} (${failed} failed, ${returned} returned)\n`);
  if (failed || returned) process.exit(1);
}

main().catch((e) => {
  process.stderr.write(`amqplib-replay: ${e.message}\n`);
  process.exit(1);
});
