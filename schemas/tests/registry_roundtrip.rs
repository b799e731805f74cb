//! Every event encodes and decodes through the real registry (`make services`), poison records are
//! refused as `Invalid`, and a BACKWARD-incompatible schema change is refused.

use std::collections::HashMap;

use apache_avro::types::Value;
use schema_registry_converter::async_impl::schema_registry::{post_schema, SrSettings};
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use schemas::domain::*;
use schemas::events::*;
use schemas::{Codec, CodecError, Event};

fn registry_url() -> String {
    std::env::var("SCHEMA_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".into())
}

fn datum(schema: &apache_avro::Schema, record: Value) -> Vec<u8> {
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_value_to_vec(record)
        .unwrap()
}

fn codec() -> Codec {
    Codec::new(&registry_url()).unwrap()
}

async fn roundtrip<E: Event + PartialEq + std::fmt::Debug>(event: E) {
    let codec = codec();
    let bytes = codec.encode(&event).await.unwrap();
    assert_eq!(bytes[0], 0, "Confluent magic byte");
    let back: E = codec.decode(&bytes).await.unwrap();
    assert_eq!(back, event);
}

fn ids() -> (EventId, UserId, MovieId) {
    (
        EventId::new_random(),
        UserId::from_uuid(uuid::Uuid::new_v4()),
        MovieId::from_uuid(uuid::Uuid::new_v4()),
    )
}

#[tokio::test]
async fn every_event_roundtrips_through_the_registry() {
    let (event_id, user_id, movie_id) = ids();
    let t = Timestamp::from_millis("t", 1_795_418_337_123).unwrap();
    for event_type in PlaybackEventType::ALL {
        roundtrip(PlaybackEvent {
            event_id,
            user_id,
            movie_id,
            event_type,
            position_ms: PositionMs::parse(90_000).unwrap(),
            occurred_at: t,
        })
        .await;
    }
    roundtrip(PlaybackPosition {
        event_id,
        user_id,
        movie_id,
        position_ms: PositionMs::parse(60_000).unwrap(),
        duration_ms: Some(PositionMs::parse(5_400_000).unwrap()),
        occurred_at: t,
    })
    .await;
    roundtrip(PlaybackPosition {
        event_id,
        user_id,
        movie_id,
        position_ms: PositionMs::parse(0).unwrap(),
        duration_ms: None,
        occurred_at: t,
    })
    .await;
    roundtrip(MovieViewing {
        event_id,
        user_id,
        movie_id,
        viewed_seconds: 42,
        occurred_at: t,
    })
    .await;
    roundtrip(Rating {
        event_id,
        user_id,
        movie_id,
        score: Score::parse(7).unwrap(),
        occurred_at: t,
    })
    .await;
    roundtrip(Favourite {
        event_id,
        user_id,
        movie_id,
        action: FavouriteAction::Removed,
        occurred_at: t,
    })
    .await;
    roundtrip(Follow {
        event_id,
        follower_id: user_id,
        followee_id: UserId::from_uuid(uuid::Uuid::new_v4()),
        action: FollowAction::Unfollow,
        occurred_at: t,
    })
    .await;
    roundtrip(PostCreated {
        event_id,
        post_id: PostId::from_uuid(uuid::Uuid::new_v4()),
        author_id: user_id,
        text: "hello, followers — привет".into(),
        occurred_at: t,
    })
    .await;
    roundtrip(FanoutBatch {
        event_id,
        post_id: PostId::from_uuid(uuid::Uuid::new_v4()),
        author_id: user_id,
        created_at: t,
        page: 3,
        follower_ids: vec![user_id.to_string(), uuid::Uuid::new_v4().to_string()],
        occurred_at: t,
    })
    .await;
    roundtrip(UserEvent {
        event_id,
        user_id: None,
        anonymous_id: Some(AnonymousId::parse("anon-1").unwrap()),
        event_type: "page_view".into(),
        properties: HashMap::from([("path".to_string(), "/movies/1".to_string())]),
        occurred_at: t,
        properties_json: Some(r#"{"path":"/movies/1","depth":2.5,"seen":[1,{"a":true}]}"#.into()),
    })
    .await;
    roundtrip(UserEvent {
        event_id,
        user_id: Some(user_id),
        anonymous_id: None,
        event_type: "click".into(),
        properties: HashMap::new(),
        occurred_at: t,
        properties_json: None,
    })
    .await;
    roundtrip(VideoFetchRequested {
        event_id,
        query: "sri lanka".into(),
        requested_by: Some(user_id),
        occurred_at: t,
    })
    .await;
    roundtrip(VideoFetched {
        event_id,
        video_id: "dQw4w9WgXcQ".into(),
        title: "A title".into(),
        description: "".into(),
        channel_id: "UC1".into(),
        channel_title: "Channel".into(),
        published_at: t,
        thumbnails: HashMap::from([(
            "default".to_string(),
            "https://i.ytimg.com/x.jpg".to_string(),
        )]),
        query: "q".into(),
        fetched_at: t,
    })
    .await;
    roundtrip(VideoStatisticsFetched {
        event_id,
        video_id: "dQw4w9WgXcQ".into(),
        channel_id: "UC1".into(),
        title: "A title".into(),
        published_at: t,
        view_count: 1_700_000_000,
        like_count: Some(18_000_000),
        comment_count: None,
        duration: "PT3M33S".into(),
        duration_seconds: 213,
        fetched_at: t,
        previous_view_count: Some(1_000),
        previous_title: Some("Dune trailer".into()),
    })
    .await;
    roundtrip(ChannelStatisticsFetched {
        event_id,
        channel_id: "UC1".into(),
        title: "Channel".into(),
        description: "About".into(),
        custom_url: "@channel".into(),
        published_at: t,
        thumbnails: HashMap::from([(
            "default".to_string(),
            "https://yt3.ggpht.com/x.jpg".to_string(),
        )]),
        subscriber_count: None,
        view_count: 42,
        video_count: 7,
        fetched_at: t,
    })
    .await;
    roundtrip(ViewsPredictionRequested {
        event_id,
        title: "Dune trailer".into(),
        channel_subscribers: 12_000,
        upload_date: t,
        thumbnail_url: None,
        reply_topic: schemas::topics::VIEWS_PREDICTIONS.into(),
        occurred_at: t,
    })
    .await;
    roundtrip(ViewsPredicted {
        event_id,
        request_id: event_id.to_string(),
        status: "predicted".into(),
        message: String::new(),
        model_version: "ols-1".into(),
        views: (1..=31).collect(),
        lower: vec![0; 31],
        upper: vec![100; 31],
        training_videos: 40,
        occurred_at: t,
    })
    .await;
    roundtrip(ResizeRequested {
        event_id,
        task_id: TaskId::from_uuid(uuid::Uuid::new_v4()),
        blob_id: "blob-1".into(),
        width: 852,
        height: 567,
        fit: ResizeFit::Cover,
        format: ImageFormat::Webp,
        occurred_at: t,
    })
    .await;
}

#[tokio::test]
async fn registering_all_is_idempotent() {
    let codec = codec();
    let first = codec.register_all().await.unwrap();
    let second = codec.register_all().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(first.len(), schemas::topics::ALL.len() - 1);
}

#[tokio::test]
async fn poison_records_are_invalid_not_retriable() {
    let codec = codec();
    // Bad magic byte.
    let err = codec
        .decode::<PlaybackEvent>(&[7, 0, 0, 0, 1, 2])
        .await
        .unwrap_err();
    assert!(matches!(err, CodecError::Invalid(_)), "{err:?}");
    // Unknown schema id.
    let err = codec
        .decode::<PlaybackEvent>(&[0, 0x7f, 0, 0, 1, 2])
        .await
        .unwrap_err();
    assert!(matches!(err, CodecError::Invalid(_)), "{err:?}");
    // A well-formed Avro record whose user_id is not a UUID.
    let (event_id, user_id, movie_id) = ids();
    let good = PlaybackEvent {
        event_id,
        user_id,
        movie_id,
        event_type: PlaybackEventType::Play,
        position_ms: PositionMs::parse(1).unwrap(),
        occurred_at: Timestamp::now(),
    };
    let bytes = codec.encode(&good).await.unwrap();
    let schema = apache_avro::Schema::parse_str(PlaybackEvent::SCHEMA).unwrap();
    let record = Value::Record(vec![
        ("event_id".into(), Value::String(event_id.to_string())),
        ("user_id".into(), Value::String("not-a-uuid".into())),
        ("movie_id".into(), Value::String(movie_id.to_string())),
        ("event_type".into(), Value::Enum(0, "play".into())),
        ("position_ms".into(), Value::Long(1)),
        ("occurred_at".into(), Value::TimestampMillis(1)),
    ]);
    let mut poison = bytes[..5].to_vec();
    poison.extend(datum(&schema, record));
    let err = codec.decode::<PlaybackEvent>(&poison).await.unwrap_err();
    assert!(
        matches!(err, CodecError::Invalid(ref m) if m.contains("user_id")),
        "{err:?}"
    );
    // Truncated body.
    let err = codec
        .decode::<PlaybackEvent>(&bytes[..bytes.len() - 3])
        .await
        .unwrap_err();
    assert!(matches!(err, CodecError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn a_backward_incompatible_change_is_refused() {
    let settings = SrSettings::new(registry_url());
    let subject = format!("compat-test-{}-value", uuid::Uuid::new_v4());
    let v1 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
    let added_without_default = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"long"}]}"#;
    let added_with_default = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"long","default":0}]}"#;
    let supplied = |s: &str| SuppliedSchema::new(None, SchemaType::Avro, s.to_string());
    let first = post_schema(&settings, subject.clone(), supplied(v1))
        .await
        .unwrap();
    let err = post_schema(&settings, subject.clone(), supplied(added_without_default))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");
    let second = post_schema(&settings, subject.clone(), supplied(added_with_default))
        .await
        .unwrap();
    assert_ne!(second.id, first.id);
}

/// An anonymous click by a producer on an older UserEvent schema (registered as `schema_id`), in
/// the wire format; `properties` only when that schema has them.
fn older_user_event(
    schema_id: u32,
    schema: &str,
    event_id: EventId,
    properties: Option<HashMap<String, Value>>,
) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(schema).unwrap();
    let mut fields = vec![
        ("event_id".into(), Value::String(event_id.to_string())),
        ("user_id".into(), Value::Union(0, Box::new(Value::Null))),
        (
            "anonymous_id".into(),
            Value::Union(1, Box::new(Value::String("a".into()))),
        ),
        ("event_type".into(), Value::String("click".into())),
    ];
    if let Some(properties) = properties {
        fields.push(("properties".into(), Value::Map(properties)));
    }
    fields.push(("occurred_at".into(), Value::TimestampMillis(5)));
    let mut bytes = vec![0];
    bytes.extend(schema_id.to_be_bytes());
    bytes.extend(datum(&schema, Value::Record(fields)));
    bytes
}

#[tokio::test]
async fn an_older_writer_is_resolved_to_our_schema() {
    // A producer still on a previous version of UserEvent (without `properties`) writes a record;
    // we read it with ours, and the default fills the missing field.
    let settings = SrSettings::new(registry_url());
    let subject = format!("evolution-test-{}-value", uuid::Uuid::new_v4());
    let old = r#"{"type":"record","name":"UserEvent","namespace":"cinema.ugc","fields":[
        {"name":"event_id","type":"string"},
        {"name":"user_id","type":["null","string"],"default":null},
        {"name":"anonymous_id","type":["null","string"],"default":null},
        {"name":"event_type","type":"string"},
        {"name":"occurred_at","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
    let registered = post_schema(
        &settings,
        subject,
        SuppliedSchema::new(None, SchemaType::Avro, old.to_string()),
    )
    .await
    .unwrap();
    let event_id = EventId::new_random();
    let bytes = older_user_event(registered.id, old, event_id, None);
    let event: UserEvent = codec().decode(&bytes).await.unwrap();
    assert_eq!(event.event_id, event_id);
    assert!(event.properties.is_empty());
    assert_eq!(
        event.anonymous_id.map(|a| a.to_string()).as_deref(),
        Some("a")
    );
}

/// The first version of the UserEvent contract (a `map<string,string>` of properties only), as
/// producers of earlier releases registered it.
const USER_EVENT_V1: &str = r#"{"type":"record","name":"UserEvent","namespace":"cinema.ugc","fields":[
    {"name":"event_id","type":"string"},
    {"name":"user_id","type":["null","string"],"default":null},
    {"name":"anonymous_id","type":["null","string"],"default":null},
    {"name":"event_type","type":"string"},
    {"name":"properties","type":{"type":"map","values":"string"},"default":{}},
    {"name":"occurred_at","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;

#[tokio::test]
async fn the_user_event_contract_evolves_backward_compatibly_and_reads_first_version_records() {
    // The registry's BACKWARD check takes the current contract after the first version...
    let settings = SrSettings::new(registry_url());
    let subject = format!("user-event-evolution-{}-value", uuid::Uuid::new_v4());
    let supplied = |s: &str| SuppliedSchema::new(None, SchemaType::Avro, s.to_string());
    let v1 = post_schema(&settings, subject.clone(), supplied(USER_EVENT_V1))
        .await
        .unwrap();
    let v2 = post_schema(&settings, subject, supplied(UserEvent::SCHEMA))
        .await
        .expect("the current UserEvent contract is BACKWARD compatible with the first");
    assert_ne!(v1.id, v2.id);
    // ...and a record written by a first-version producer reads with its properties kept and no
    // JSON object.
    let event_id = EventId::new_random();
    let properties = HashMap::from([("element_id".to_string(), Value::String("play".into()))]);
    let bytes = older_user_event(v1.id, USER_EVENT_V1, event_id, Some(properties));
    let event: UserEvent = codec().decode(&bytes).await.unwrap();
    assert_eq!(event.event_id, event_id);
    assert_eq!(event.properties["element_id"], "play");
    assert_eq!(event.properties_json, None);
}
