'use strict'
// Produce COUNT records to TOPIC with kafkajs, acks=-1 (the default):
// the first half one record per send() call, awaited in turn, the rest
// in one send() of many records, gzip compressed.
//
// usage: node produce.js BOOTSTRAP TOPIC COUNT PREFIX TIMEOUT_SECONDS
//
// Record i has key "key-{i % 7}" and value "{PREFIX}-{i}". Output, JSON
// lines on stdout: {"index", "partition", "offset"} for each single send
// (the base offset kafkajs reports), then {"batch": N, "partitions": [...]}
// for the batch. Exits non-zero on any error or when not done in time.
const { CompressionTypes } = require('kafkajs')
const { client, fail, print } = require('./client')

async function main() {
  const [bootstrap, topic, countArg, prefix, timeoutArg] = process.argv.slice(2)
  const count = Number(countArg)
  const timer = setTimeout(() => fail(`timed out after ${timeoutArg} s`), Number(timeoutArg) * 1000)
  const producer = client(bootstrap, 'sense-e2e-kafkajs-producer').producer({ allowAutoTopicCreation: true })
  await producer.connect()
  const record = i => ({ key: `key-${i % 7}`, value: `${prefix}-${i}` })
  const half = Math.floor(count / 2)
  for (let i = 0; i < half; i++) {
    const md = await producer.send({ topic, acks: -1, messages: [record(i)] })
    if (md.length !== 1 || md[0].errorCode !== 0) {
      fail(`record ${i}: unexpected metadata ${JSON.stringify(md)}`)
    }
    print({ index: i, partition: md[0].partition, offset: Number(md[0].baseOffset) })
  }
  const rest = []
  for (let i = half; i < count; i++) rest.push(record(i))
  const md = await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: rest })
  for (const p of md) {
    if (p.errorCode !== 0) fail(`batch: unexpected metadata ${JSON.stringify(md)}`)
  }
  print({ batch: rest.length, partitions: md.map(p => p.partition).sort() })
  await producer.disconnect()
  clearTimeout(timer)
}

main().catch(e => fail(`error: ${e.stack || e}`))
