'use strict'
// Shared by produce.js and consume.js: a kafkajs client that logs to
// stderr (stdout carries only the JSON lines the Go test reads), and a
// helper that ends the process with an error.
const { Kafka, logLevel } = require('kafkajs')

function client(bootstrap, clientId) {
  return new Kafka({
    clientId,
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, label, log }) => {
      process.stderr.write(`${label} [${namespace}] ${log.message} ${JSON.stringify(log)}\n`)
    },
    retry: { retries: 5 },
  })
}

function fail(msg) {
  process.stderr.write(`${msg}\n`)
  process.exit(1)
}

// print writes one JSON line to stdout.
function print(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

module.exports = { client, fail, print }
