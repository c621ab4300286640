"""Kafka transactions with confluent-kafka (librdkafka).

usage: txn.py MODE BOOTSTRAP TOPIC GROUP TIMEOUT_SECONDS

MODE is one of:

  commit-abort  init_transactions; a transaction that produces "c-0".."c-9"
                to partitions 0 and 1 of TOPIC, sends offset 5 of TOPIC's
                partition 2 for GROUP (send_offsets_to_transaction) and
                commits; then one that produces "a-0".."a-9" the same way,
                sends offset 9, is flushed (stored), and aborts. Prints {"type": "done"}.
  hang          init_transactions; a transaction that produces "h-0".."h-9"
                to partitions 0 and 1 and sends offset 7 for GROUP, flushes
                (every record is stored), prints {"type": "produced"}, and
                waits to be killed.
  read          reads partitions 0 and 1 of TOPIC from the start to their
                end with isolation.level=read_committed, then again with
                read_uncommitted, printing {"type": "record", "isolation",
                "partition", "offset", "value"} for each record, then
                GROUP's committed offset of partition 2 as
                {"type": "committed", "offset"}.

Exits non-zero on any error, librdkafka log line at error level, or when
not done in time.
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

import rdlog


def fail(msg):
    print(msg, file=sys.stderr, flush=True)
    sys.exit(1)


def producer(bootstrap, log, timeout):
    return Producer({
        "bootstrap.servers": bootstrap,
        "client.id": "sense-e2e-python-txn",
        "transactional.id": "sense-e2e-python-txn",
        "transaction.timeout.ms": 60000,
        "message.timeout.ms": int(timeout * 1000),
        "logger": log,
        **rdlog.extra_config(),
    })


def group_metadata(bootstrap, group):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    md = c.consumer_group_metadata()
    return c, md


def transaction(p, topic, prefix, offset, group_md, timeout):
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value="%s-%d" % (prefix, i), partition=i % 2)
    p.send_offsets_to_transaction([TopicPartition(topic, 2, offset)], group_md, timeout)


def read(bootstrap, topic, group, isolation, timeout):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group + "-reader-" + isolation,
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    })
    c.assign([TopicPartition(topic, 0, -2), TopicPartition(topic, 1, -2)])
    at_eof = set()
    deadline = time.monotonic() + timeout
    while at_eof != {0, 1}:
        if time.monotonic() > deadline:
            fail("read %s: timed out at the end of %s" % (isolation, sorted(at_eof)))
        msg = c.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_eof.add(msg.partition())
                continue
            fail("read %s: %s" % (isolation, msg.error()))
        at_eof.discard(msg.partition())
        print(json.dumps({"type": "record", "isolation": isolation, "partition": msg.partition(),
                          "offset": msg.offset(), "value": msg.value().decode()}), flush=True)
    c.close()


def main():
    mode, bootstrap, topic, group, timeout = sys.argv[1:6]
    timeout = float(timeout)
    log, log_errors = rdlog.logger("txn")
    if mode == "read":
        read(bootstrap, topic, group, "read_committed", timeout)
        read(bootstrap, topic, group, "read_uncommitted", timeout)
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        for tp in c.committed([TopicPartition(topic, 2)], timeout=timeout):
            if tp.error is not None:
                fail("committed: %s" % tp.error)
            print(json.dumps({"type": "committed", "offset": tp.offset}), flush=True)
        c.close()
    else:
        p = producer(bootstrap, log, timeout)
        p.init_transactions(timeout)
        gc, md = group_metadata(bootstrap, group)
        if mode == "commit-abort":
            transaction(p, topic, "c", 5, md, timeout)
            p.commit_transaction(timeout)
            transaction(p, topic, "a", 9, md, timeout)
            # Stored first: abort_transaction drops what is not sent yet.
            if p.flush(timeout) != 0:
                fail("flush: records left")
            p.abort_transaction(timeout)
            print(json.dumps({"type": "done"}), flush=True)
        elif mode == "hang":
            transaction(p, topic, "h", 7, md, timeout)
            if p.flush(timeout) != 0:
                fail("flush: records left")
            print(json.dumps({"type": "produced"}), flush=True)
            time.sleep(timeout)
            fail("hang: not killed in time")
        else:
            fail("unknown mode %s" % mode)
        gc.close()
    if log_errors:
        fail("; ".join(log_errors))


if __name__ == "__main__":
    main()
