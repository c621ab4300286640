"""confluent-kafka (librdkafka) against a Sense cluster whose nodes are
killed and restarted while the client runs: the produce.py and consume.py
of a single node, but a broker that goes away is expected. Losing the
connection to a broker (librdkafka's FAIL log lines at error level and
_TRANSPORT errors) is counted, not fatal; so is _ALL_BROKERS_DOWN, which
librdkafka reports when every broker it has tried is down: a client that
happened to try the killed node first reports "1/1 brokers are down" and
goes on to the next bootstrap address. Any other error, or a librdkafka
log line at error level with another facility, fails the script (and if
the brokers do stay down, the script times out).

usage:
  cluster.py produce BOOTSTRAP TOPIC PARTITION COUNT PREFIX INTERVAL_MS TIMEOUT_SECONDS
  cluster.py consume BOOTSTRAP TOPIC GROUP STOP TIMEOUT_SECONDS

produce: idempotent, acks=all, no linger; record i has value "{PREFIX}-{i}"
and goes to PARTITION; one record every INTERVAL_MS. Each delivery report
is printed, as it comes, as a JSON line {"type": "delivered", "index",
"value", "partition", "offset"}. Exits non-zero on a delivery error or when
not everything is delivered in time.

consume: as consume.py (same arguments and output): auto commit off, each
record committed synchronously after it is printed; STOP is a number of
records or "eof".

Both print {"type": "lost_broker", "count": N} last: how many times a
broker connection was lost.
"""

import json
import logging
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition


class Errors(logging.Handler):
    """librdkafka's log, to stderr; error lines other than a lost broker
    connection are kept as failures."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.failures = []
        self.lost = 0

    def emit(self, record):
        msg = record.getMessage()
        # confluent-kafka logs "FAC [client] message".
        if msg.startswith("FAIL "):
            self.lost += 1
        else:
            self.failures.append("librdkafka: " + msg)

    def on_error(self, err):
        if err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            self.lost += 1
        else:
            self.failures.append("client error: %s" % err)

    def check(self):
        if self.failures:
            fail("; ".join(self.failures))


def fail(msg):
    print(msg, file=sys.stderr, flush=True)
    sys.exit(1)


def client_config(name, errors):
    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    log.propagate = False
    out = logging.StreamHandler(sys.stderr)
    out.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.addHandler(out)
    log.addHandler(errors)
    return {"client.id": "sense-e2e-python-" + name, "error_cb": errors.on_error, "logger": log}


def emit(obj):
    print(json.dumps(obj), flush=True)


def produce(bootstrap, topic, partition, count, prefix, interval_ms, timeout):
    partition, count, timeout = int(partition), int(count), float(timeout)
    interval = float(interval_ms) / 1000
    errors = Errors()
    conf = client_config("cluster-producer", errors)
    conf.update({
        "bootstrap.servers": bootstrap,
        "linger.ms": 0,
        "enable.idempotence": True,
        "acks": "all",
        "message.timeout.ms": int(timeout * 1000),
        # Metadata is refreshed soon after a leader is lost.
        "topic.metadata.refresh.fast.interval.ms": 50,
    })
    producer = Producer(conf)
    deadline = time.monotonic() + timeout

    def report(index):
        def on_delivery(err, msg):
            if err is not None:
                errors.failures.append("record %d: delivery failed: %s" % (index, err))
                return
            emit({"type": "delivered", "index": index, "value": msg.value().decode(),
                  "partition": msg.partition(), "offset": msg.offset()})
        return on_delivery

    for i in range(count):
        errors.check()
        if time.monotonic() > deadline:
            fail("timed out after %.0f s with %d of %d records produced" % (timeout, i, count))
        producer.produce(topic, value="%s-%d" % (prefix, i), partition=partition, on_delivery=report(i))
        producer.poll(0)
        time.sleep(interval)
    left = producer.flush(max(1.0, deadline - time.monotonic()))
    if left:
        errors.failures.append("%d records not delivered after %.0f s" % (left, timeout))
    errors.check()
    emit({"type": "lost_broker", "count": errors.lost})


def consume(bootstrap, topic, group, stop, timeout):
    timeout = float(timeout)
    until_eof = stop == "eof"
    want = 0 if until_eof else int(stop)
    errors = Errors()
    conf = client_config("cluster-consumer", errors)
    conf.update({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "topic.metadata.refresh.fast.interval.ms": 50,
    })
    consumer = Consumer(conf)
    assigned = set()
    at_eof = set()

    def on_assign(c, partitions):
        assigned.update(p.partition for p in partitions)
        emit({"type": "assigned", "partitions": sorted(assigned)})

    def on_revoke(c, partitions):
        for p in partitions:
            assigned.discard(p.partition)
            at_eof.discard(p.partition)

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    deadline = time.monotonic() + timeout
    processed = 0
    while True:
        errors.check()
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
        emit({
            "type": "record",
            "partition": msg.partition(),
            "offset": msg.offset(),
            "key": None if msg.key() is None else msg.key().decode(),
            "value": None if msg.value() is None else msg.value().decode(),
        })
        for tp in consumer.commit(message=msg, asynchronous=False) or []:
            if tp.error is not None:
                fail("commit %s [%d]: %s" % (tp.topic, tp.partition, tp.error))
        processed += 1

    parts = [TopicPartition(topic, p) for p in sorted(assigned)]
    for tp in consumer.committed(parts, timeout=max(1.0, deadline - time.monotonic())):
        if tp.error is not None:
            fail("committed %s [%d]: %s" % (tp.topic, tp.partition, tp.error))
        emit({"type": "committed", "partition": tp.partition, "offset": tp.offset})
    consumer.close()
    errors.check()
    emit({"type": "lost_broker", "count": errors.lost})


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "produce" and len(args) == 7:
        produce(*args)
    elif cmd == "consume" and len(args) == 5:
        consume(*args)
    else:
        fail(__doc__)


if __name__ == "__main__":
    main()
