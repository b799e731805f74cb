"""compose/ without a Docker engine: the file is valid against the compose specification, refuses
to start while a secret is unset, and gives every binary every variable it reads that defaults to a
loopback address (read from the Rust sources), with a value that works on the container network."""

import json
import pathlib
import re

import check_jsonschema
import jsonschema
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "compose" / ".env.example"
IMAGE = "cinema-ugc/pipeline:local"
CONSUMER_BINS = {
    "clickhouse-sink",
    "mongo-sink",
    "feed-fanout",
    "image-resize",
    "youtube-fetcher",
    "ugc-init",
    "consumers",
}
ALL_BINS = CONSUMER_BINS | {"api", "schema-registry"}
LOOPBACK = ("127.0.0.1", "localhost")


def secrets():
    """The names `.env.example` lists, with whether compose must require them."""
    names = re.findall(r"^([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M)
    assert names, ".env.example lists no variables"
    return names


def interpolate(text, env):
    """Compose's interpolation: $$, ${X}, ${X:-default}, ${X:?error} (an empty value counts as unset)."""

    def one(match):
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = env.get(name, "")
        if op == ":?" and not value:
            raise ValueError(f"{name}: {arg}")
        if op == ":-" and not value:
            return arg
        return value

    return re.sub(r"\$\$|\$\{([A-Z0-9_]+)(?:(:\?|:-)([^}]*))?\}", one, text)


def filled():
    return {name: f"value-of-{name.lower()}" for name in secrets()}


def services():
    return yaml.safe_load(interpolate(COMPOSE.read_text(), filled()))["services"]


def test_the_file_follows_the_compose_specification():
    schema_path = (
        pathlib.Path(check_jsonschema.__file__).parent
        / "builtin_schemas"
        / "vendor"
        / "compose-spec.json"
    )
    schema = json.loads(schema_path.read_text())
    raw = yaml.safe_load(COMPOSE.read_text())
    jsonschema.validate(raw, schema)
    # And after interpolation, as `docker compose config` would see it.
    jsonschema.validate(yaml.safe_load(interpolate(COMPOSE.read_text(), filled())), schema)


@pytest.mark.parametrize("missing", [n for n in secrets() if n != "YOUTUBE_API_KEYS"])
def test_the_stack_refuses_to_start_without_each_secret(missing):
    env = filled()
    env[missing] = ""
    with pytest.raises(ValueError, match=missing):
        interpolate(COMPOSE.read_text(), env)


def test_no_secret_has_a_default():
    text = COMPOSE.read_text()
    for name in secrets():
        uses = re.findall(r"\$\{" + name + r"(:[?-])?[^}]*\}", text)
        assert uses, f"{name} from .env.example is not used"
        if name != "YOUTUBE_API_KEYS":
            assert all(op == ":?" for op in uses), f"{name} must be required (${{{name}:?...}})"


def loopback_reads():
    """{variable: set of binaries} for every variable read with a loopback default."""
    reads = {}

    def binaries_of(path):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("api/src/"):
            return {"api"}
        if rel.startswith("consumers/src/bin/"):
            return {path.stem}
        if rel.startswith("consumers/src/"):
            return set(CONSUMER_BINS)
        if rel.startswith("schemas/registry/src/"):
            return {"schema-registry"}
        return set(ALL_BINS)

    call = re.compile(
        r'(?:env_or|env_parse|env_duration|env::var|std::env::var)\(\s*"([A-Z0-9_]+)",\s*"([^"]*)"'
    )
    metrics = re.compile(r'serve_from_env\(\s*"([^"]*)"')
    for crate in ["api", "consumers", "common", "producers", "stores", "schemas"]:
        for path in (ROOT / crate).rglob("*.rs"):
            rel = path.relative_to(ROOT).as_posix()
            if "/tests/" in rel or "/examples/" in rel or "/target/" in rel:
                continue
            text = path.read_text()
            found = [(m.group(1), m.group(2)) for m in call.finditer(text)]
            found += [("METRICS_ADDR", m.group(1)) for m in metrics.finditer(text)]
            for name, default in found:
                if any(host in default for host in LOOPBACK):
                    reads.setdefault(name, set()).update(binaries_of(path))
    return reads


def test_every_binary_gets_every_network_variable_it_reads():
    reads = loopback_reads()
    # The scan must see the stack's endpoints, or it proves nothing.
    for name in ["KAFKA_BROKERS", "SCHEMA_REGISTRY_URL", "CLICKHOUSE_URL", "MONGO_URL", "REDIS_URL", "API_HOST", "METRICS_ADDR"]:
        assert name in reads, f"the source scan did not find {name}"
    checked = set()
    for service, spec in services().items():
        if spec.get("image") != IMAGE:
            continue
        binary = spec["command"][0]
        env = spec.get("environment", {})
        for name, binaries in reads.items():
            if binary not in binaries:
                continue
            assert name in env, f"{service} ({binary}) reads {name} but compose does not set it"
            assert not any(h in str(env[name]) for h in LOOPBACK), (
                f"{service}: {name}={env[name]} is a loopback address inside a container"
            )
            checked.add((binary, name))
    binaries = {b for b, _ in checked}
    assert {"api", "clickhouse-sink", "mongo-sink", "feed-fanout", "image-resize", "ugc-init"} <= binaries


def test_services_are_healthy_restarted_and_built_once():
    all_services = services()
    built = [name for name, spec in all_services.items() if "build" in spec]
    assert built == ["init"], f"one service builds the image, not {built}"
    for name, spec in all_services.items():
        if name != "init":
            assert "healthcheck" in spec, f"{name} has no healthcheck"
            assert spec.get("restart") == "unless-stopped", f"{name} is not restarted"
        for dependency, condition in (spec.get("depends_on") or {}).items():
            assert condition.get("condition") in {"service_healthy", "service_completed_successfully"}, (
                f"{name} waits for {dependency} without a health condition"
            )
            assert dependency in all_services
    ours = {name: spec for name, spec in all_services.items() if spec.get("image") == IMAGE}
    assert len(ours) >= 7
    assert all(spec.get("pull_policy") == "never" for name, spec in ours.items() if name != "init")
    dockerfile = (ROOT / "compose" / "Dockerfile").read_text()
    for binary in ALL_BINS:
        assert f"/release/{binary} " in dockerfile, f"the image lacks {binary}"


def test_current_images_and_a_host_listener_for_kafka():
    images = {name: spec.get("image", "") for name, spec in services().items()}
    assert images["clickhouse"] == "clickhouse/clickhouse-server:25.8"
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", images["kafka"])
    assert re.fullmatch(r"confluentinc/cp-schema-registry:8\.\d+\.\d+", images["schema-registry"])
    assert images["mongo"] == "mongo:8"
    assert images["redis"] == "redis:7"
    kafka = services()["kafka"]["environment"]
    assert "EXTERNAL://localhost:29092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert "127.0.0.1:29092:29092" in services()["kafka"]["ports"]


def test_a_cluster_profile_with_keeper_and_two_shards_of_two_replicas():
    all_services = services()
    assert all_services["clickhouse-keeper"]["image"] == "clickhouse/clickhouse-keeper:25.8"
    servers = {n: s for n, s in all_services.items() if re.fullmatch(r"clickhouse-0\d", n)}
    assert sorted(servers) == ["clickhouse-01", "clickhouse-02", "clickhouse-03", "clickhouse-04"]
    macros = sorted((s["environment"]["CH_SHARD"], s["environment"]["CH_REPLICA"]) for s in servers.values())
    assert macros == [("01", "clickhouse-01"), ("01", "clickhouse-02"), ("02", "clickhouse-03"), ("02", "clickhouse-04")]
    for name, spec in [("clickhouse-keeper", all_services["clickhouse-keeper"]), *servers.items()]:
        assert spec["profiles"] == ["cluster"], name
    for name, spec in servers.items():
        assert spec["image"] == "clickhouse/clickhouse-server:25.8"
        assert spec["environment"]["CLICKHOUSE_USER"] == "value-of-clickhouse_user"
        assert any(v.endswith("/etc/clickhouse-server/config.d/cluster.xml:ro") for v in spec["volumes"])
        assert any(v.endswith(":/var/lib/clickhouse") and v.startswith(name) for v in spec["volumes"]), name
    config = (ROOT / "compose" / "clickhouse-cluster" / "cluster.xml").read_text()
    hosts = re.findall(r"<host>([a-z0-9-]+)</host>", config)
    assert hosts[:4] == sorted(servers), "remote_servers names the four servers, shard by shard"
    assert "<host>clickhouse-keeper</host><port>9181</port>" in config
    # The pipeline follows the profile through two variables, single server by default.
    env = services()["clickhouse-sink"]["environment"]
    assert env["CLICKHOUSE_URL"] == "http://clickhouse:8123" and env["CLICKHOUSE_CLUSTER"] == ""
    clustered = yaml.safe_load(interpolate(COMPOSE.read_text(), {
        **filled(), "CLICKHOUSE_CLUSTER": "ugc_cluster", "PIPELINE_CLICKHOUSE_URL": "http://clickhouse-01:8123"}))
    env = clustered["services"]["clickhouse-sink"]["environment"]
    assert (env["CLICKHOUSE_URL"], env["CLICKHOUSE_CLUSTER"]) == ("http://clickhouse-01:8123", "ugc_cluster")
    assert clustered["services"]["init"]["depends_on"]["clickhouse-01"] == {"condition": "service_healthy", "required": False}
