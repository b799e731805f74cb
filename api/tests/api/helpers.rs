use std::sync::Once;
use std::time::Duration;

use api::configuration::Settings;
use api::startup::Application;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

static INIT: Once = Once::new();

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts the app on a free port, after making sure topics and schemas exist.
pub async fn spawn_app() -> TestApp {
    INIT.call_once(|| common::telemetry::init("api-tests"));
    let mut settings = Settings::from_env().expect("settings");
    settings.port = 0;
    settings.workers = 2;
    ensure_initialised(&settings).await;
    let app = Application::build(&settings).expect("build");
    let address = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::new(),
        settings,
        _stop: stop,
    }
}

async fn ensure_initialised(settings: &Settings) {
    let specs = consumers::init::topic_specs().unwrap();
    producers::admin::ensure_topics(&settings.stack.kafka_brokers, &specs)
        .await
        .expect("topics");
    schemas::Codec::new(&settings.stack.schema_registry_url)
        .unwrap()
        .register_all()
        .await
        .expect("schemas");
}

impl TestApp {
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.post_raw(path, body.to_string()).await
    }

    pub async fn post_raw(&self, path: &str, body: String) -> reqwest::Response {
        self.client
            .post(format!("{}{}", self.address, path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// Every record of `topic` written so far (read from the start, until the end offsets).
    pub async fn records(&self, topic: &str) -> Vec<OwnedMessage> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.settings.stack.kafka_brokers)
            .set("group.id", format!("api-test-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        let mut remaining = 0;
        for p in metadata.topics()[0].partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(5))
                .unwrap();
            if high > low {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                    .unwrap();
                remaining += high - low;
            }
        }
        if remaining == 0 {
            return Vec::new();
        }
        consumer.assign(&tpl).unwrap();
        let mut out = Vec::new();
        while remaining > 0 {
            let msg = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
                .await
                .expect("record within 10 s")
                .unwrap();
            out.push(msg.detach());
            remaining -= 1;
        }
        out
    }

    /// The record on `topic` whose decoded event has `event_id`, decoded.
    pub async fn find<E: schemas::Event>(&self, event_id: &str) -> Option<(OwnedMessage, E)> {
        let codec = schemas::Codec::new(&self.settings.stack.schema_registry_url).unwrap();
        for msg in self.records(E::TOPIC).await {
            let Some(payload) = msg.payload() else {
                continue;
            };
            if let Ok(event) = codec.decode::<E>(payload).await {
                if event.event_id().to_string() == event_id {
                    return Some((msg, event));
                }
            }
        }
        None
    }
}
