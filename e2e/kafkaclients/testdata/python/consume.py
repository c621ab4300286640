"""Consume TOPIC in consumer group GROUP with confluent-kafka (librdkafka),
committing by hand: auto commit is off and each record's offset is
committed (synchronously) after the record is processed, so a restarted
consumer resumes right after the last processed record.

usage: consume.py BOOTSTRAP TOPIC GROUP STOP TIMEOUT_SECONDS

STOP is a number N (stop after processing N records) or "eof" (stop once
every assigned partition is at its end). Output, JSON lines on stdout:
  {"type": "assigned", "partitions": [...]}
  {"type": "record", "partition", "offset", "key", "value"}, one per record
  {"type": "committed", "partition", "offset"}, per assigned partition at
  the end, as the group coordinator returns them (OffsetFetch)
Exits non-zero on any error (a client error, a librdkafka log line at
error level), or when STOP is not reached in time.
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition

import rdlog


def fail(msg):
    print(msg, file=sys.stderr, flush=True)
    sys.exit(1)


def main():
    bootstrap, topic, group, stop, timeout = sys.argv[1:6]
    timeout = float(timeout)
    until_eof = stop == "eof"
    want = 0 if until_eof else int(stop)
    log, errors = rdlog.logger("consumer")

    def on_error(err):
        errors.append("client error: %s" % err)

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "client.id": "sense-e2e-python-consumer",
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "error_cb": on_error,
        "logger": log,
        **rdlog.extra_config(),
    })
    assigned = set()
    at_eof = set()

    def on_assign(c, partitions):
        assigned.update(p.partition for p in partitions)
        print(json.dumps({"type": "assigned", "partitions": sorted(assigned)}), flush=True)

    def on_revoke(c, partitions):
        for p in partitions:
            assigned.discard(p.partition)
            at_eof.discard(p.partition)

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    deadline = time.monotonic() + timeout
    processed = 0
    while True:
        if errors:
            fail("; ".join(errors))
        if not until_eof and processed >= want:
            break
        if until_eof and assigned and assigned <= at_eof:
            break
        if time.monotonic() > deadline:
            fail("timed out after %.0f s: %d records processed, assigned %s, at end %s"
                 % (timeout, processed, sorted(assigned), sorted(at_eof)))
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_eof.add(msg.partition())
                continue
            fail("consume error: %s" % msg.error())
        at_eof.discard(msg.partition())
        print(json.dumps({
            "type": "record",
            "partition": msg.partition(),
            "offset": msg.offset(),
            "key": None if msg.key() is None else msg.key().decode(),
            "value": None if msg.value() is None else msg.value().decode(),
        }), flush=True)
        # Processed: commit the next offset to read, and wait for it.
        for tp in consumer.commit(message=msg, asynchronous=False) or []:
            if tp.error is not None:
                fail("commit %s [%d]: %s" % (tp.topic, tp.partition, tp.error))
        processed += 1

    parts = [TopicPartition(topic, p) for p in sorted(assigned)]
    for tp in consumer.committed(parts, timeout=max(1.0, deadline - time.monotonic())):
        if tp.error is not None:
            fail("committed %s [%d]: %s" % (tp.topic, tp.partition, tp.error))
        print(json.dumps({"type": "committed", "partition": tp.partition, "offset": tp.offset}), flush=True)
    consumer.close()
    if errors:
        fail("; ".join(errors))


if __name__ == "__main__":
    main()
