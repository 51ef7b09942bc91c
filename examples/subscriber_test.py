#!/usr/bin/env python3
"""Checks examples/subscriber.py against a real broker (run by scripts/subscriber-test.sh).

1. `stockwatch simulate` writes an event stream and `stockwatch replay` its alerts;
2. a tansu broker is started on a free loopback port, the alert topic is created with 4
   partitions, and the alerts are produced as the service writes them (key
   `"{location}|{sku}"`, murmur2 partitioner, CloudEvents headers), with **redeliveries**:
   after some alerts, the last few are produced again, as at-least-once does after a crash
   (same ids, a later `emitted_at`);
3. the subscriber reads the topic from the beginning until caught up, and its open set must
   equal the one computed here from the replay output (latest alert per (location, sku, kind),
   `resolved` removes), and it must have skipped exactly the redelivered copies;
4. the open-alerts table is produced as the service writes it (a row per `raised`/`updated`,
   a tombstone per `resolved`, key "{location}|{sku}|{kind}"), and a subscriber started late
   must reach the same open set from the table alone: it bootstraps from the table, then
   follows an alert topic retention has emptied (a topic with no records, found by timestamp
   from --lookback-secs before the bootstrap).

    python3 examples/subscriber_test.py --stockwatch BIN --tansu BIN --workdir DIR
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))
TOPIC = "stockwatch.alerts"
TABLE_TOPIC = "stockwatch.alerts.open"
# The alert topic after retention dropped every record.
EXPIRED_TOPIC = "stockwatch.alerts.expired"
PARTITIONS = 4
# Every REDELIVER_EVERY alerts, the last REDELIVER_COUNT are produced again.
REDELIVER_EVERY = 37
REDELIVER_COUNT = 5


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"tansu exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"tansu did not listen on 127.0.0.1:{port} within {timeout_s} s")


def expected_open_set(alerts):
    """The open set from the replay output: latest alert per key, `resolved` removes."""
    open_ = {}
    for a in alerts:
        k = (a["location"], a["sku"], a["kind"])
        if a["status"] == "resolved":
            open_.pop(k, None)
        else:
            open_[k] = a["alert_id"]
    return open_


def produce(bootstrap, alerts):
    """Produces the alerts with redeliveries; returns the number of redelivered copies."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)]).values():
        f.result(30)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            # The partitioner of the service (Kafka's Java default), not librdkafka's default.
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
        }
    )
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(err)

    def send(a, redelivered):
        key = f"{a['location']}|{a['sku']}"
        body = dict(a, emitted_at="2099-01-01T00:00:00.000Z") if redelivered else a
        producer.produce(
            TOPIC,
            key=key.encode(),
            value=json.dumps(body).encode(),
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", a["alert_id"].encode()),
                ("ce_type", b"com.stockwatch.alert.v1"),
                ("ce_source", b"stockwatch/stockwatch"),
                ("ce_time", body["emitted_at"].encode()),
                ("ce_subject", key.encode()),
                ("content-type", b"application/json"),
            ],
            on_delivery=report,
        )
        producer.poll(0)

    copies = 0
    for i, a in enumerate(alerts, 1):
        send(a, False)
        if i % REDELIVER_EVERY == 0:
            for b in alerts[i - REDELIVER_COUNT : i]:
                send(b, True)
                copies += 1
    if producer.flush(60) != 0 or failures:
        sys.exit(f"producing failed: {failures[:3]} ({len(failures)} failures)")
    return copies


def produce_table(bootstrap, alerts):
    """The open-alerts table as the service writes it: a row or a tombstone per alert."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [
        NewTopic(TABLE_TOPIC, PARTITIONS, 1, config={"cleanup.policy": "compact"}),
        NewTopic(EXPIRED_TOPIC, PARTITIONS, 1),
    ]
    for f in admin.create_topics(topics).values():
        f.result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for a in alerts:
        key = f"{a['location']}|{a['sku']}|{a['kind']}".encode()
        value = None if a["status"] == "resolved" else json.dumps(a).encode()
        producer.produce(TABLE_TOPIC, key=key, value=value)
        producer.poll(0)
    if producer.flush(60) != 0:
        sys.exit("producing the table failed")
    return len(alerts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stockwatch", required=True)
    ap.add_argument("--tansu", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    events = os.path.join(args.workdir, "events.jsonl")
    alerts_file = os.path.join(args.workdir, "alerts.jsonl")
    open_out = os.path.join(args.workdir, "open.jsonl")

    run([args.stockwatch, "simulate", "--out", events, "--stores", "10", "--skus", "20",
         "--days", "21", "--seed", "7"])
    run([args.stockwatch, "replay", "--input", events, "--alerts-out", alerts_file, "--flush"])
    with open(alerts_file) as f:
        alerts = [json.loads(line) for line in f]
    want = expected_open_set(alerts)
    statuses = {a["status"] for a in alerts}
    if len(alerts) < 3 * REDELIVER_EVERY or statuses != {"raised", "updated", "resolved"} or not want:
        sys.exit(f"the stream is too poor to test: {len(alerts)} alerts, statuses {statuses}, "
                 f"{len(want)} open at the end")

    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    log = open(os.path.join(args.workdir, "tansu.log"), "w")
    env = {k: v for k, v in os.environ.items()
           if k not in ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")}
    tansu = subprocess.Popen(
        [args.tansu, "broker", "--listener-url", f"tcp://{bootstrap}",
         "--advertised-listener-url", f"tcp://{bootstrap}",
         "--storage-engine", "memory://tansu/", "--silent"],
        stdout=log, stderr=log, env=env,
    )
    try:
        wait_for_port(port, tansu)
        copies = produce(bootstrap, alerts)
        proc = subprocess.run(
            [sys.executable, os.path.join(HERE, "subscriber.py"), "--bootstrap-servers", bootstrap,
             "--topic", TOPIC, "--group-id", "subscriber-test", "--until-caught-up",
             "--open-set-out", open_out],
            check=True, stderr=subprocess.PIPE, text=True, timeout=120,
        )
        rows = produce_table(bootstrap, alerts)
        late_out = os.path.join(args.workdir, "open-late.jsonl")
        late = subprocess.run(
            [sys.executable, os.path.join(HERE, "subscriber.py"), "--bootstrap-servers", bootstrap,
             "--topic", EXPIRED_TOPIC, "--table-topic", TABLE_TOPIC,
             "--group-id", "subscriber-test-late", "--until-caught-up", "--open-set-out", late_out],
            check=True, stderr=subprocess.PIPE, text=True, timeout=120,
        )
    finally:
        tansu.terminate()
        tansu.wait(10)
    sys.stderr.write(proc.stderr)
    sys.stderr.write(late.stderr)
    with open(late_out) as f:
        late_got = {(a["location"], a["sku"], a["kind"]): a["alert_id"] for a in map(json.loads, f)}
    if late_got != want:
        sys.exit(f"the late subscriber's open set differs: {len(late_got)} vs {len(want)}")
    for needle in ("applied 0 alerts", f"bootstrapped from {rows} table records"):
        if needle not in late.stderr:
            sys.exit(f"the late subscriber did not start from the table alone: wanted '{needle}'")
    with open(open_out) as f:
        got_alerts = [json.loads(line) for line in f]
    got = {(a["location"], a["sku"], a["kind"]): a["alert_id"] for a in got_alerts}
    if got != want:
        missing = sorted(set(want.items()) - set(got.items()))[:5]
        extra = sorted(set(got.items()) - set(want.items()))[:5]
        sys.exit(f"open sets differ: {len(got)} vs {len(want)}; expected but not got {missing}; "
                 f"got but not expected {extra}")
    summary = f"applied {len(alerts)} alerts, skipped {copies} duplicates, {len(want)} open"
    if summary not in proc.stderr:
        sys.exit(f"the subscriber did not apply every alert once: wanted '{summary}'")
    print(f"subscriber_test: ok: {len(alerts)} alerts + {copies} redelivered copies over "
          f"{PARTITIONS} partitions; open set of {len(want)} equals the replay's, and the late "
          f"subscriber's from {rows} table records")


if __name__ == "__main__":
    main()
