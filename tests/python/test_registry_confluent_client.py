"""Our schema registry driven by Confluent's own Python client (confluent-kafka), an implementation
independent of ours and of schema_registry_converter: registration, lookups, compatibility, config,
and the Avro serializer/deserializer round trip in the Confluent wire format."""

import json
import os
import pathlib
import struct
import uuid

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

URL = os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081")
AVRO_DIR = pathlib.Path(__file__).resolve().parents[2] / "schemas" / "avro"


@pytest.fixture()
def client():
    return SchemaRegistryClient({"url": URL})


def subject():
    return f"py-{uuid.uuid4()}-value"


def record(fields):
    return json.dumps({"type": "record", "name": "R", "namespace": "t", "fields": fields})


def test_register_lookup_and_versions(client):
    s = subject()
    v1 = Schema(record([{"name": "a", "type": "string"}]), "AVRO")
    schema_id = client.register_schema(s, v1)
    assert client.register_schema(s, v1) == schema_id
    latest = client.get_latest_version(s)
    assert latest.schema_id == schema_id and latest.version == 1
    assert json.loads(client.get_schema(schema_id).schema_str)["name"] == "R"
    assert client.lookup_schema(s, v1).version == 1
    assert s in client.get_subjects()
    assert client.get_versions(s) == [1]


def test_incompatible_change_refused_and_compatible_accepted(client):
    s = subject()
    client.register_schema(s, Schema(record([{"name": "a", "type": "string"}]), "AVRO"))
    bad = Schema(record([{"name": "a", "type": "string"}, {"name": "b", "type": "int"}]), "AVRO")
    assert client.test_compatibility(s, bad) is False
    with pytest.raises(SchemaRegistryError) as err:
        client.register_schema(s, bad)
    assert err.value.http_status_code == 409
    good = Schema(
        record([{"name": "a", "type": "string"}, {"name": "b", "type": "int", "default": 0}]), "AVRO"
    )
    assert client.test_compatibility(s, good) is True
    assert client.register_schema(s, good) > 0
    assert client.get_versions(s) == [1, 2]


def test_config_levels(client):
    s = subject()
    client.register_schema(s, Schema(record([{"name": "a", "type": "string"}]), "AVRO"))
    client.set_compatibility(s, "NONE")
    assert client.get_compatibility(s) == "NONE"
    with pytest.raises(SchemaRegistryError) as err:
        client.set_compatibility(s, "SIDEWAYS")
    assert err.value.http_status_code == 422


def test_unknown_subject_is_40401(client):
    with pytest.raises(SchemaRegistryError) as err:
        client.get_latest_version(subject())
    assert err.value.http_status_code == 404
    assert err.value.error_code == 40401


def test_avro_serializer_round_trip_with_our_playback_schema(client):
    topic = f"py-{uuid.uuid4()}"
    schema_str = (AVRO_DIR / "playback_event.avsc").read_text()
    ser = AvroSerializer(client, schema_str)
    de = AvroDeserializer(client, schema_str)
    event = {
        "event_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "movie_id": str(uuid.uuid4()),
        "event_type": "fast_forward",
        "position_ms": 123456,
        "occurred_at": 1795418337123,
    }
    ctx = SerializationContext(topic, MessageField.VALUE)
    data = ser(event, ctx)
    assert data[0] == 0
    (schema_id,) = struct.unpack(">I", data[1:5])
    assert client.get_latest_version(f"{topic}-value").schema_id == schema_id
    back = de(data, ctx)
    back["occurred_at"] = int(back["occurred_at"].timestamp() * 1000) if hasattr(back["occurred_at"], "timestamp") else back["occurred_at"]
    assert back == event


def test_delete_subject(client):
    s = subject()
    client.register_schema(s, Schema(record([{"name": "a", "type": "string"}]), "AVRO"))
    assert client.delete_subject(s) == [1]
    assert s not in client.get_subjects()
