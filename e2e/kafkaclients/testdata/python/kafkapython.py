"""kafka-python (Debian's python3-kafka, the pure-Python client) against Sense.

Usage: kafkapython.py BOOTSTRAP TOPIC GROUP TIMEOUT_S

Creates TOPIC (three partitions) with the admin client, sends 100 keyed
messages with each codec (acks=all), reads them all with a consumer group
that commits after each message, starts the group again (it must read
nothing), and prints one JSON object: what was produced (value -> codec),
what was consumed, the committed offsets, the group as ListGroups and
DescribeGroups show it, and the broker version the client probed.
"""
import json
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

bootstrap, topic, group, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
deadline = time.monotonic() + timeout

admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="sense-test")
probed = admin._client.check_version()
admin.create_topics([NewTopic(topic, 3, 1)])

produced = {}
for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2,
                      compression_type=None if codec == "none" else codec)
    futures = []
    for i in range(100):
        value = "%s-%s-%d" % (topic, codec, i)
        futures.append(p.send(topic, key=str(i % 7).encode(), value=value.encode()))
        produced[value] = codec
    p.flush(timeout=deadline - time.monotonic())
    for f in futures:
        f.get(timeout=max(1, deadline - time.monotonic()))
    p.close()


def consume(idle_ms):
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=idle_ms)
    seen = []
    for m in c:
        seen.append(m.value.decode())
        c.commit()
        if len(seen) == len(produced) or time.monotonic() > deadline:
            break
    committed = [c.committed(TopicPartition(topic, p)) for p in range(3)]
    c.close()
    return seen, committed


seen, committed = consume(int(max(1, deadline - time.monotonic()) * 1000))
again, _ = consume(2000)
groups = dict(admin.list_consumer_groups())
desc = admin.describe_consumer_groups([group])[0]
admin.close()
print(json.dumps({
    "probed": list(probed),
    "produced": produced,
    "consumed": seen,
    "committed": committed,
    "again": again,
    "listed_protocol_type": groups.get(group),
    "state": desc.state,
    "protocol_type": desc.protocol_type,
}))
