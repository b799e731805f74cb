"""What a user would run instead of our sink: a small Python consumer that moves playback events
from Kafka into ClickHouse, as the seed projects did, written competently.

confluent-kafka (librdkafka) consumes in batches (`consume(10000)`), fastavro decodes each Confluent
wire-format payload with the writer schema fetched from the registry once per schema id, and
clickhouse-driver inserts batches of `--batch` rows into `playback_events` over the native protocol
(the table and its views); the offsets are committed after each insert. (clickhouse-connect, the
other well-known client, cannot connect to ClickHouse 18.16: it reads a `readonly` column of
`system.settings` that 18.16 does not have.) It does not look resends up (the usual
script does not). The librdkafka settings are the ones our runtime uses, so the difference is the
code, not the configuration.

Prints one JSON line: rows, seconds from the first record consumed to the last offset committed,
rows/s.

    python scripts/bench/python_peer.py --topic T --database DB --events N [--batch 50000]
"""

import argparse
import io
import json
import os
import struct
import time
import urllib.request
import uuid
from datetime import datetime, timezone

import clickhouse_driver
import fastavro
from confluent_kafka import Consumer, TopicPartition

COLUMNS = ["event_id", "user_id", "movie_id", "event_type", "position_ms", "occurred_at",
           "occurred_at_ms", "kafka_partition", "kafka_offset"]


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--topic", required=True)
    args.add_argument("--database", required=True)
    args.add_argument("--events", type=int, required=True)
    args.add_argument("--batch", type=int, default=50_000)
    args = args.parse_args()

    registry = os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081")
    client = clickhouse_driver.Client(
        host=os.environ.get("CLICKHOUSE_HOST", "127.0.0.1"),
        port=int(os.environ.get("CLICKHOUSE_TCP_PORT", "9000")), database=args.database,
        user=os.environ.get("CLICKHOUSE_USER", "default"),
        password=os.environ.get("CLICKHOUSE_PASSWORD", ""))
    consumer = Consumer({
        "bootstrap.servers": os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092"),
        "group.id": f"python-peer-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 50,
        "fetch.queue.backoff.ms": 10,
    })
    consumer.subscribe([args.topic])

    schemas = {}

    def decode(payload):
        schema_id = struct.unpack(">I", payload[1:5])[0]
        schema = schemas.get(schema_id)
        if schema is None:
            with urllib.request.urlopen(f"{registry}/schemas/ids/{schema_id}") as r:
                schema = fastavro.parse_schema(json.loads(json.load(r)["schema"]))
            schemas[schema_id] = schema
        return fastavro.schemaless_reader(io.BytesIO(payload[5:]), schema, None)

    rows, done, started = [], 0, None
    offsets = {}
    while done < args.events:
        for msg in consumer.consume(num_messages=10_000, timeout=1.0):
            if msg.error():
                raise SystemExit(f"kafka: {msg.error()}")
            if started is None:
                started, cpu_started = time.monotonic(), time.process_time()
            e = decode(msg.value())
            at = e["occurred_at"]  # fastavro: an aware datetime (timestamp-millis)
            ms = int(at.timestamp() * 1000)
            rows.append([uuid.UUID(e["event_id"]), uuid.UUID(e["user_id"]), uuid.UUID(e["movie_id"]),
                         e["event_type"], e["position_ms"],
                         datetime.fromtimestamp(ms // 1000, tz=timezone.utc), ms,
                         msg.partition(), msg.offset()])
            offsets[msg.partition()] = msg.offset() + 1
            if len(rows) >= args.batch:
                done += flush(client, consumer, args.topic, rows, offsets)
        if rows and done + len(rows) >= args.events:
            done += flush(client, consumer, args.topic, rows, offsets)
    elapsed = time.monotonic() - started
    cpu = time.process_time() - cpu_started  # every thread of this process, librdkafka's too
    consumer.close()
    print(json.dumps({"rows": done, "seconds": elapsed, "rows_per_second": done / elapsed,
                      "cpu_seconds": cpu}))


def flush(client, consumer, topic, rows, offsets):
    client.execute(f"INSERT INTO playback_events ({', '.join(COLUMNS)}) VALUES", rows)
    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                    asynchronous=False)
    n = len(rows)
    rows.clear()
    return n


if __name__ == "__main__":
    main()
