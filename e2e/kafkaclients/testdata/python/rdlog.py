"""librdkafka's log for the scripts: every line goes to stderr, and lines
at error level or above (a protocol parse failure, a refused connection)
are kept, so that the script fails on them instead of waiting for a
client that retries forever."""

import json
import logging
import os
import sys


class _Keep(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.errors = []

    def emit(self, record):
        self.errors.append("librdkafka: " + record.getMessage())


def logger(name):
    """Return a logger for librdkafka's 'logger' setting, and the list its
    error lines are appended to."""
    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    log.propagate = False
    out = logging.StreamHandler(sys.stderr)
    out.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    keep = _Keep()
    log.addHandler(out)
    log.addHandler(keep)
    return log, keep.errors


def extra_config():
    """Return the librdkafka settings of the environment variable
    SENSE_E2E_KAFKA_CONFIG, a JSON object (such as the SSL settings of a
    test of the Kafka listener's TLS), or none."""
    text = os.environ.get("SENSE_E2E_KAFKA_CONFIG", "")
    return json.loads(text) if text else {}
