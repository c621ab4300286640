'use strict'
// Consume COUNT records of TOPIC with a kafkajs consumer in group GROUP,
// from the beginning, committing by hand: auto commit is off and each
// record's offset is committed after the record is processed.
//
// usage: node consume.js BOOTSTRAP TOPIC GROUP COUNT TIMEOUT_SECONDS
//
// Output, JSON lines on stdout: {"type": "record", "partition", "offset",
// "key", "value"} per record, then {"type": "committed", "partition",
// "offset"} per partition of the topic, as the group coordinator returns
// them after the consumer left (OffsetFetch through the admin client).
// Exits non-zero on any error, a consumer crash, or when COUNT records are
// not processed in time.
const { client, fail, print } = require('./client')

async function main() {
  const [bootstrap, topic, group, countArg, timeoutArg] = process.argv.slice(2)
  const count = Number(countArg)
  const timer = setTimeout(() => fail(`timed out after ${timeoutArg} s`), Number(timeoutArg) * 1000)
  const kafka = client(bootstrap, 'sense-e2e-kafkajs-consumer')
  // No restart after a crash: a crash is a failure here.
  const consumer = kafka.consumer({ groupId: group, retry: { retries: 5, restartOnFailure: async () => false } })
  consumer.on(consumer.events.CRASH, e => fail(`consumer crashed: ${e.payload.error.stack || e.payload.error}`))
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  let processed = 0
  let done
  const finished = new Promise(resolve => { done = resolve })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      if (processed >= count) {
        return
      }
      print({
        type: 'record',
        partition,
        offset: Number(message.offset),
        key: message.key === null ? null : message.key.toString(),
        value: message.value === null ? null : message.value.toString(),
      })
      await consumer.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
      processed++
      if (processed === count) done()
    },
  })
  await finished
  await consumer.disconnect()

  const admin = kafka.admin()
  await admin.connect()
  const offsets = await admin.fetchOffsets({ groupId: group, topics: [topic] })
  for (const t of offsets) {
    for (const p of t.partitions) {
      print({ type: 'committed', partition: p.partition, offset: Number(p.offset) })
    }
  }
  await admin.disconnect()
  clearTimeout(timer)
}

main().catch(e => fail(`error: ${e.stack || e}`))
