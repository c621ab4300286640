"""Produce N records to a topic with SASL, consume them back, print JSON.

usage: sasl.py ADDR TOPIC N MECHANISM USER PASSWORD TIMEOUT

The librdkafka settings of SENSE_E2E_KAFKA_CONFIG (rdlog.extra_config) are
added last: security.protocol SASL_SSL and ssl.ca.location, for SASL over
TLS.

Prints {"produced": n, "consumed": [values...]} on success; on an error
(authentication refused, say) prints {"error": "..."} and exits 1.
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer
from rdlog import extra_config

addr, topic, n, mech, user, password, timeout = sys.argv[1:8]
n, timeout = int(n), float(timeout)
sasl = {
    "bootstrap.servers": addr,
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanisms": mech,
    "sasl.username": user,
    "sasl.password": password,
}
sasl.update(extra_config())
deadline = time.monotonic() + timeout
errors = []


def on_error(err):
    errors.append(str(err))


try:
    p = Producer(dict(sasl, **{"error_cb": on_error, "message.timeout.ms": int(timeout * 1000)}))
    delivered = []

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append(msg.value().decode())

    for i in range(n):
        p.produce(topic, value=("v%d" % i).encode(), callback=report)
    while len(delivered) + len([e for e in errors]) < n and time.monotonic() < deadline:
        p.poll(0.1)
        if any("authentication" in e.lower() for e in errors):
            break
    p.flush(max(0.0, deadline - time.monotonic()))
    if len(delivered) != n:
        print(json.dumps({"error": "; ".join(errors) or "delivered %d of %d" % (len(delivered), n)}))
        sys.exit(1)

    c = Consumer(dict(sasl, **{"group.id": topic + "-g", "auto.offset.reset": "earliest", "error_cb": on_error}))
    c.subscribe([topic])
    got = []
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        got.append(m.value().decode())
    c.close()
    print(json.dumps({"produced": len(delivered), "consumed": sorted(got)}))
    sys.exit(0 if len(got) == n else 1)
except Exception as e:  # noqa: BLE001 - report any failure as JSON
    print(json.dumps({"error": str(e) + "; " + "; ".join(errors)}))
    sys.exit(1)
