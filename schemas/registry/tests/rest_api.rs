//! The registry over HTTP, against the real broker: Confluent's status codes and error bodies, and
//! state rebuilt from the log by a second instance.

use std::net::TcpListener;

use reqwest::StatusCode;
use serde_json::{json, Value};

const CT: &str = "application/vnd.schemaregistry.v1+json";

struct Instance {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(topic: &str) -> Instance {
    start_with(topic, "").await
}

/// An instance whose writes need `auth` (`REGISTRY_AUTH`'s format; empty: open).
async fn start_with(topic: &str, auth: &str) -> Instance {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let settings = schema_registry::Settings {
        brokers: common::config::StackConfig::from_env().kafka_brokers,
        topic: topic.to_string(),
        auth: schema_registry::auth::WriteAuth::parse(auth).unwrap(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        schema_registry::run(settings, listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{url}/subjects")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Instance { url, stop }
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(b) = body {
        req = req.header("content-type", CT).body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(ct, CT);
    (status, resp.json().await.unwrap())
}

fn schema(fields: &[(&str, &str, Option<Value>)]) -> Value {
    let fields: Vec<Value> = fields
        .iter()
        .map(|(n, t, d)| match d {
            Some(d) => json!({"name": n, "type": t, "default": d}),
            None => json!({"name": n, "type": t}),
        })
        .collect();
    json!({"schema": json!({"type": "record", "name": "R", "fields": fields}).to_string()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_api_and_state_rebuilt_from_the_log() {
    use reqwest::Method as M;
    let topic = format!("_schemas-test-{}", uuid_like());
    let a = start(&topic).await;
    let u = &a.url;

    let (s, body) = call(M::GET, format!("{u}/subjects/none/versions"), None).await;
    assert_eq!(
        (s.as_u16(), body["error_code"].as_u64()),
        (404, Some(40401))
    );

    let v1 = schema(&[("a", "string", None)]);
    let (s, body) = call(
        M::POST,
        format!("{u}/subjects/s-value/versions"),
        Some(v1.clone()),
    )
    .await;
    assert_eq!(s, 200);
    let id1 = body["id"].as_u64().unwrap();
    let (_, again) = call(
        M::POST,
        format!("{u}/subjects/s-value/versions"),
        Some(v1.clone()),
    )
    .await;
    assert_eq!(
        again["id"].as_u64(),
        Some(id1),
        "identical schema keeps its id"
    );

    let (s, body) = call(
        M::POST,
        format!("{u}/subjects/s-value/versions"),
        Some(schema(&[("a", "string", None), ("b", "int", None)])),
    )
    .await;
    assert_eq!((s.as_u16(), body["error_code"].as_u64()), (409, Some(409)));

    let (s, body) = call(
        M::POST,
        format!("{u}/subjects/s-value/versions"),
        Some(json!({"schema": "{\"type\":\"nope\"}"})),
    )
    .await;
    assert_eq!(
        (s.as_u16(), body["error_code"].as_u64()),
        (422, Some(42201))
    );

    let v2 = schema(&[("a", "string", None), ("b", "int", Some(json!(0)))]);
    let (s, body) = call(
        M::POST,
        format!("{u}/compatibility/subjects/s-value/versions/latest"),
        Some(v2.clone()),
    )
    .await;
    assert_eq!(
        (s.as_u16(), body["is_compatible"].as_bool()),
        (200, Some(true))
    );
    let (_, body) = call(
        M::POST,
        format!("{u}/subjects/s-value/versions"),
        Some(v2.clone()),
    )
    .await;
    let id2 = body["id"].as_u64().unwrap();
    assert_ne!(id1, id2);

    let (_, latest) = call(
        M::GET,
        format!("{u}/subjects/s-value/versions/latest"),
        None,
    )
    .await;
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["id"].as_u64(), Some(id2));
    let (_, versions) = call(M::GET, format!("{u}/subjects/s-value/versions"), None).await;
    assert_eq!(versions, json!([1, 2]));
    let (s, body) = call(M::GET, format!("{u}/subjects/s-value/versions/0"), None).await;
    assert_eq!(
        (s.as_u16(), body["error_code"].as_u64()),
        (422, Some(42202))
    );
    let (s, body) = call(M::GET, format!("{u}/subjects/s-value/versions/9"), None).await;
    assert_eq!(
        (s.as_u16(), body["error_code"].as_u64()),
        (404, Some(40402))
    );
    let (_, by_id) = call(M::GET, format!("{u}/schemas/ids/{id1}"), None).await;
    assert!(by_id["schema"].as_str().unwrap().contains("\"a\""));
    let (s, body) = call(M::GET, format!("{u}/schemas/ids/999999"), None).await;
    assert_eq!(
        (s.as_u16(), body["error_code"].as_u64()),
        (404, Some(40403))
    );
    let (s, found) = call(M::POST, format!("{u}/subjects/s-value"), Some(v1.clone())).await;
    assert_eq!((s.as_u16(), found["version"].as_u64()), (200, Some(1)));

    let (_, cfg) = call(M::GET, format!("{u}/config"), None).await;
    assert_eq!(cfg["compatibilityLevel"], "BACKWARD");
    let (s, body) = call(
        M::PUT,
        format!("{u}/config/s-value"),
        Some(json!({"compatibility": "FULL_TRANSITIVE"})),
    )
    .await;
    assert_eq!(
        (s.as_u16(), &body["compatibility"]),
        (200, &json!("FULL_TRANSITIVE"))
    );
    let (s, body) = call(
        M::PUT,
        format!("{u}/config"),
        Some(json!({"compatibility": "SIDEWAYS"})),
    )
    .await;
    assert_eq!(
        (s.as_u16(), body["error_code"].as_u64()),
        (422, Some(42203))
    );
    let (s, body) = call(M::GET, format!("{u}/config/other-value"), None).await;
    assert_eq!(
        (s.as_u16(), body["error_code"].as_u64()),
        (404, Some(40408))
    );

    // A second instance on the same log agrees on everything.
    let b = start(&topic).await;
    let (_, latest_b) = call(
        M::GET,
        format!("{}/subjects/s-value/versions/latest", b.url),
        None,
    )
    .await;
    assert_eq!(latest_b, latest);
    let (_, cfg_b) = call(M::GET, format!("{}/config/s-value", b.url), None).await;
    assert_eq!(cfg_b["compatibilityLevel"], "FULL_TRANSITIVE");
    // ... and a write on one is visible on the other once its log is read.
    let (_, body) = call(
        M::POST,
        format!("{}/subjects/t-value/versions", b.url),
        Some(v1.clone()),
    )
    .await;
    assert_eq!(
        body["id"].as_u64(),
        Some(id1),
        "ids are global across subjects and instances"
    );

    let (s, deleted) = call(M::DELETE, format!("{u}/subjects/s-value"), None).await;
    assert_eq!((s.as_u16(), deleted), (200, json!([1, 2])));
    let (s, body) = call(M::GET, format!("{u}/subjects/s-value/versions"), None).await;
    assert_eq!(
        (s.as_u16(), body["error_code"].as_u64()),
        (404, Some(40401))
    );
    let _ = a.stop.send(());
    let _ = b.stop.send(());
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}")
}

/// With `REGISTRY_AUTH` set, register, delete and config writes need its basic credentials (401
/// with Confluent's 40101 and `WWW-Authenticate` otherwise, wrong ones included); reads, lookups
/// and compatibility checks stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_credentials_reads_do_not() {
    let topic = format!("_schemas_auth_{}", uuid::Uuid::new_v4().simple());
    let reg = start_with(&topic, "ci:s3cret").await;
    let subject = format!("auth-{}-value", uuid::Uuid::new_v4().simple());
    let body = schema(&[("a", "string", None)]);
    let client = reqwest::Client::new();
    let send =
        |method: reqwest::Method, path: String, body: Option<Value>, user: Option<(&str, &str)>| {
            let mut req = client.request(method, format!("{}{path}", reg.url));
            if let Some(b) = body {
                req = req.header("content-type", CT).body(b.to_string());
            }
            if let Some((u, p)) = user {
                req = req.basic_auth(u, Some(p));
            }
            req.send()
        };
    use reqwest::Method;
    let register = format!("/subjects/{subject}/versions");
    for user in [None, Some(("ci", "wrong")), Some(("someone", "s3cret"))] {
        let resp = send(Method::POST, register.clone(), Some(body.clone()), user)
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{user:?}");
        assert!(resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"));
        let error: Value = resp.json().await.unwrap();
        assert_eq!(error["error_code"], 40101);
    }
    for (method, path, body) in [
        (
            Method::PUT,
            "/config".to_string(),
            json!({"compatibility": "NONE"}),
        ),
        (Method::DELETE, format!("/subjects/{subject}"), Value::Null),
    ] {
        let body = (!body.is_null()).then_some(body);
        let resp = send(method.clone(), path.clone(), body, None)
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{method} {path}");
    }
    let resp = send(
        Method::POST,
        register,
        Some(body.clone()),
        Some(("ci", "s3cret")),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.json::<Value>().await.unwrap()["id"].clone();
    // Reads and lookups without credentials.
    let resp = send(Method::GET, format!("/schemas/ids/{id}"), None, None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = send(
        Method::POST,
        format!("/subjects/{subject}"),
        Some(body.clone()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200, "lookup is a read");
    let resp = send(
        Method::POST,
        format!("/compatibility/subjects/{subject}/versions/latest"),
        Some(body),
        None,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200, "a compatibility check is a read");
    // Our codec registers with the credentials, and without them is refused.
    let event = schemas::events::VideoFetchRequested {
        event_id: schemas::domain::EventId::new_random(),
        query: "auth".into(),
        requested_by: None,
        occurred_at: schemas::domain::Timestamp::now(),
    };
    let with = schemas::Codec::with_credentials(&reg.url, Some(("ci", "s3cret"))).unwrap();
    let bytes = with.encode(&event).await.unwrap();
    assert_eq!(
        with.decode::<schemas::events::VideoFetchRequested>(&bytes)
            .await
            .unwrap(),
        event
    );
    let other_topic_event = schemas::events::PostCreated {
        event_id: schemas::domain::EventId::new_random(),
        post_id: schemas::domain::PostId::from_uuid(uuid::Uuid::new_v4()),
        author_id: schemas::domain::UserId::from_uuid(uuid::Uuid::new_v4()),
        text: "hi".into(),
        occurred_at: schemas::domain::Timestamp::now(),
    };
    let without = schemas::Codec::new(&reg.url).unwrap();
    assert!(without.encode(&other_topic_event).await.is_err());
    let _ = reg.stop.send(());
}
