"""Produce COUNT records to TOPIC with confluent-kafka (librdkafka), set up
as a latency-sensitive user would: no linger, one message per batch,
idempotence on (so acks=all and strict per-partition order).

usage: produce.py BOOTSTRAP TOPIC COUNT PREFIX TIMEOUT_SECONDS

Record i has key "key-{i % 7}" and value "{PREFIX}-{i}". Each delivery
report is printed as a JSON line {"index", "key", "value", "partition",
"offset"} in the order librdkafka reports them. Exits non-zero on any
delivery error, client error or librdkafka log line at error level, or
when not everything is delivered in time.
"""

import json
import sys

from confluent_kafka import Producer

import rdlog


def main():
    bootstrap, topic, count, prefix, timeout = sys.argv[1:6]
    count, timeout = int(count), float(timeout)
    failures = []
    log, log_errors = rdlog.logger("producer")

    def on_error(err):
        failures.append("client error: %s" % err)

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": "sense-e2e-python-producer",
        "linger.ms": 0,
        "batch.num.messages": 1,
        "enable.idempotence": True,
        "acks": "all",
        "message.timeout.ms": int(timeout * 1000),
        "error_cb": on_error,
        "logger": log,
        **rdlog.extra_config(),
    })

    def report(index):
        def on_delivery(err, msg):
            if err is not None:
                failures.append("record %d: delivery failed: %s" % (index, err))
                return
            print(json.dumps({
                "index": index,
                "key": msg.key().decode(),
                "value": msg.value().decode(),
                "partition": msg.partition(),
                "offset": msg.offset(),
            }), flush=True)
        return on_delivery

    for i in range(count):
        producer.produce(topic, key="key-%d" % (i % 7), value="%s-%d" % (prefix, i), on_delivery=report(i))
        producer.poll(0)
    left = producer.flush(timeout)
    if left:
        failures.append("%d records not delivered after %.0f s" % (left, timeout))
    failures.extend(log_errors)
    if failures:
        for f in failures:
            print(f, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
