#!/usr/bin/env python3
"""A reference subscriber of stockwatch's alert topic (docs/consuming.md).

With --table-topic it first reads the open-alerts table (`kafka.topics.open_alerts`) from the
beginning to its end: the latest record per key "{location}|{sku}|{kind}" is that key's open
alert, a tombstone deletes it. That is the open set whatever the alert topic's retention
dropped. It then follows `kafka.topics.alerts` from --lookback-secs before the bootstrap
started (0: from the end), skips copies by `alert_id` (at-least-once delivery repeats alerts
after a crash of the service; the stretch read again repeats some too) and keeps the set of
open alerts: the latest alert per (location, sku, kind), `resolved` removing it.

Without --table-topic it follows the alert topic from its beginning when its consumer group has
no committed offsets (complete within the topic's retention). It reads with
`isolation.level=read_committed` (for `service.delivery = exactly_once`) and commits its offsets
after applying.

    python3 examples/subscriber.py --bootstrap-servers 127.0.0.1:9092 \
        [--topic stockwatch.alerts] [--table-topic stockwatch.alerts.open] \
        [--lookback-secs 300] [--group-id my-team-alerts] \
        [--until-caught-up] [--open-set-out OPEN.jsonl]

With --until-caught-up it stops once it has read every assigned partition to its end (a
test, or a one-off dump); otherwise it runs until Ctrl-C. The open set is written as JSON
lines (the latest alert of each open (location, sku, kind), sorted) to --open-set-out, or to
stdout. Dependencies: examples/requirements-subscriber.txt (pinned by hash).
"""

import argparse
import collections
import json
import signal
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

# Ids remembered per (location, sku, kind). A redelivery repeats only the work since the
# service's last commit: a few alerts of one key at most.
DEDUPE_IDS_PER_KEY = 32


class OpenSet:
    """The open alerts, built from the alert stream with dedupe by alert_id."""

    def __init__(self):
        self.open = {}
        self.seen = collections.defaultdict(lambda: collections.deque(maxlen=DEDUPE_IDS_PER_KEY))
        self.applied = 0
        self.duplicates = 0
        self.table_records = 0

    def apply(self, alert):
        key = (alert["location"], alert["sku"], alert["kind"])
        seen = self.seen[key]
        if alert["alert_id"] in seen:
            self.duplicates += 1
            return
        seen.append(alert["alert_id"])
        self.applied += 1
        if alert["status"] == "resolved":
            self.open.pop(key, None)
        else:
            self.open[key] = alert

    def apply_table(self, key, value):
        """A table record: the key's open alert, or None (a tombstone) to delete it."""
        self.table_records += 1
        location, sku, kind = key.split("|")
        if value is None:
            self.open.pop((location, sku, kind), None)
        else:
            self.open[(location, sku, kind)] = json.loads(value)

    def lines(self):
        return [json.dumps(self.open[k], sort_keys=True) for k in sorted(self.open)]


# A table partition silent this long counts as read to its end (some brokers send no
# end-of-partition event).
QUIET_S = 2.0


def bootstrap(args, state):
    """Reads the open-alerts table from the beginning to its end into `state`."""
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "group.id": args.group_id + "-table",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        md = consumer.list_topics(args.table_topic, timeout=10)
        parts = sorted(md.topics[args.table_topic].partitions)
        consumer.assign([TopicPartition(args.table_topic, p, OFFSET_BEGINNING) for p in parts])
        at_end = set()
        last = time.monotonic()
        while len(at_end) < len(parts) and time.monotonic() - last < QUIET_S:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    continue
                raise KafkaException(msg.error())
            last = time.monotonic()
            at_end.discard(msg.partition())
            state.apply_table(msg.key().decode("utf-8"), msg.value())
    finally:
        consumer.close()


def header(msg, name):
    for k, v in msg.headers() or []:
        if k == name:
            return v.decode("utf-8", "replace") if v is not None else None
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap-servers", required=True)
    ap.add_argument("--topic", default="stockwatch.alerts")
    ap.add_argument("--table-topic", help="bootstrap from this open-alerts table first")
    ap.add_argument("--lookback-secs", type=int, default=300)
    ap.add_argument("--group-id", default="stockwatch-subscriber-example")
    ap.add_argument("--until-caught-up", action="store_true")
    ap.add_argument("--open-set-out")
    args = ap.parse_args()

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "group.id": args.group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    state = OpenSet()
    at_end = set()
    assigned = set()
    stopping = False
    follow_from = None
    if args.table_topic:
        # Taken before the table is read: the alerts the table may not show yet are after it.
        t0_ms = int(time.time() * 1000) - args.lookback_secs * 1000
        bootstrap(args, state)
        follow_from = OFFSET_END if args.lookback_secs == 0 else t0_ms

    def on_assign(c, partitions):
        if follow_from is not None:
            # Bootstrapped: follow from before the bootstrap, whatever the group committed.
            if follow_from == OFFSET_END:
                for p in partitions:
                    p.offset = OFFSET_END
            else:
                for p in partitions:
                    p.offset = follow_from
                partitions = c.offsets_for_times(partitions, timeout=10)
            c.assign(partitions)
        assigned.update((p.topic, p.partition) for p in partitions)

    def on_revoke(c, partitions):
        # Our progress up to here is applied: commit it before the partitions move.
        try:
            c.commit(asynchronous=False)
        except KafkaException:
            pass
        for p in partitions:
            assigned.discard((p.topic, p.partition))
            at_end.discard((p.topic, p.partition))

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
    uncommitted = 0
    try:
        while not stopping:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            tp = (msg.topic(), msg.partition())
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(tp)
                    if args.until_caught_up and assigned and at_end >= assigned:
                        break
                    continue
                raise KafkaException(msg.error())
            at_end.discard(tp)
            # Route on the CloudEvents type: a version this subscriber does not know is skipped
            # (docs/consuming.md, schema evolution).
            ce_type = header(msg, "ce_type")
            if ce_type is not None and ce_type != "com.stockwatch.alert.v1":
                print(f"skipping an alert of type {ce_type}", file=sys.stderr)
                continue
            # Unknown fields are ignored: only the ones used here are read.
            state.apply(json.loads(msg.value()))
            uncommitted += 1
            if uncommitted >= 1000:
                consumer.commit(asynchronous=True)
                uncommitted = 0
        if uncommitted:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()

    lines = state.lines()
    if args.open_set_out:
        with open(args.open_set_out, "w") as f:
            f.writelines(line + "\n" for line in lines)
    else:
        sys.stdout.writelines(line + "\n" for line in lines)
    print(
        f"applied {state.applied} alerts, skipped {state.duplicates} duplicates, "
        f"{len(lines)} open",
        file=sys.stderr,
    )
    if args.table_topic:
        print(f"bootstrapped from {state.table_records} table records", file=sys.stderr)


if __name__ == "__main__":
    main()
