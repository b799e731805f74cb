//! The Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro binary body), encoded
//! and decoded through a schema registry with schema_registry_converter.
//!
//! Producers write with the schema compiled into this crate (registering it under the topic's
//! subject on first use, which the registry answers with the existing id when it is already there).
//! Consumers read with the writer's schema from the registry and, when that differs from ours, resolve
//! the record to our schema with Avro's resolution rules (defaults fill new fields).
//!
//! Decoding is on the sinks' hot path. A record written with exactly our schema (the usual case)
//! is deserialized straight from its Avro bytes into the event type, with the writer schema
//! checked once per schema id; only a record of another version goes through Avro's generic value
//! tree and schema resolution.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::Schema;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::{post_schema, SrSettings};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

use crate::topics::{self, Topic};
use crate::Event;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CodecError {
    /// The registry could not be reached or answered 5xx: try again later, the record is fine.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    /// The bytes are not a valid record of the expected schema (bad magic byte, unknown schema id,
    /// truncated body, a field that fails validation). Retrying will not help.
    #[error("invalid record: {0}")]
    Invalid(String),
    /// The registry refused our schema (incompatible, invalid) or the contract is broken.
    #[error("schema rejected: {0}")]
    Schema(String),
}

impl CodecError {
    pub fn is_retriable(&self) -> bool {
        matches!(self, CodecError::Unavailable(_))
    }

    fn from_registry(e: SRCError, invalid: fn(String) -> CodecError) -> Self {
        if e.retriable {
            CodecError::Unavailable(e.to_string())
        } else {
            invalid(e.to_string())
        }
    }
}

/// Encodes and decodes events through one registry. Cheap to clone; caches schemas and ids.
#[derive(Clone)]
pub struct Codec {
    inner: Arc<Inner>,
}

struct Inner {
    settings: SrSettings,
    encoder: AvroEncoder,
    decoder: AvroDecoder,
    /// The subject strategy (with our writer schema) per topic, built once: encoding is on the
    /// API's hot path and the strategy holds the whole schema text.
    strategies: HashMap<&'static str, SubjectNameStrategy>,
    /// Per (schema id, topic): whether the writer's schema is exactly ours (canonical form), so
    /// records of that id take the direct path.
    same_as_ours: RwLock<HashMap<(u32, &'static str), bool>>,
}

/// Our own (reader) schemas, parsed once per process, by topic.
fn ours() -> Result<&'static HashMap<&'static str, Schema>, CodecError> {
    static OURS: OnceLock<Result<HashMap<&'static str, Schema>, CodecError>> = OnceLock::new();
    OURS.get_or_init(|| {
        topics::ALL
            .iter()
            .filter_map(|t| Some((t.name, t.value_schema?)))
            .map(|(name, raw)| {
                Schema::parse_str(raw)
                    .map(|schema| (name, schema))
                    .map_err(|e| CodecError::Schema(format!("{name}: {e}")))
            })
            .collect()
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A datum reader over each of our schemas: records written with our own schema are
/// deserialized with these, without a value tree.
fn direct_readers() -> &'static HashMap<&'static str, GenericDatumReader<'static>> {
    static READERS: OnceLock<HashMap<&'static str, GenericDatumReader<'static>>> = OnceLock::new();
    READERS.get_or_init(|| {
        ours()
            .into_iter()
            .flatten()
            .filter_map(|(topic, schema)| {
                Some((*topic, GenericDatumReader::builder(schema).build().ok()?))
            })
            .collect()
    })
}

impl Codec {
    pub fn new(registry_url: &str) -> Result<Self, CodecError> {
        Self::with_credentials(registry_url, None)
    }

    /// The same, sending basic-auth `(user, password)` to the registry (needed for registering
    /// when the registry protects its writes).
    pub fn with_credentials(
        registry_url: &str,
        credentials: Option<(&str, &str)>,
    ) -> Result<Self, CodecError> {
        let mut builder = SrSettings::new_builder(registry_url.trim_end_matches('/').to_string());
        builder.no_proxy().set_timeout(Duration::from_secs(5));
        if let Some((user, password)) = credentials {
            builder.set_basic_authorization(user, Some(password));
        }
        let settings = builder
            .build()
            .map_err(|e| CodecError::Schema(format!("registry client: {e}")))?;
        // Our schemas must parse: a broken one is a startup error, not a decode error later.
        ours()?;
        let mut strategies = HashMap::new();
        for t in topics::ALL {
            if let Some(raw) = t.value_schema {
                strategies.insert(
                    t.name,
                    SubjectNameStrategy::TopicNameStrategyWithSchema(
                        t.name.to_string(),
                        false,
                        supplied(raw),
                    ),
                );
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                encoder: AvroEncoder::new(settings.clone()),
                decoder: AvroDecoder::new(settings.clone()),
                settings,
                strategies,
                same_as_ours: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// The event in the Confluent wire format, with the id of our schema for its topic.
    pub async fn encode<E: Event>(&self, event: &E) -> Result<Vec<u8>, CodecError> {
        let strategy = self
            .inner
            .strategies
            .get(E::TOPIC)
            .ok_or_else(|| CodecError::Schema(format!("no schema for topic {}", E::TOPIC)))?;
        self.inner
            .encoder
            .encode_struct(event, strategy)
            .await
            .map_err(|e| CodecError::from_registry(e, CodecError::Schema))
    }

    /// Decodes a record of `E`'s topic. Bad bytes and records that fail domain validation are
    /// `Invalid`; an unreachable registry is `Unavailable`.
    pub async fn decode<E: Event>(&self, bytes: &[u8]) -> Result<E, CodecError> {
        if let Some((id, body)) = wire_header(bytes) {
            if self.written_with_ours::<E>(id).await? {
                if let Some(reader) = direct_readers().get(E::TOPIC) {
                    let mut body = body;
                    return reader
                        .read_deser::<E>(&mut body)
                        .map_err(|e| CodecError::Invalid(e.to_string()));
                }
            }
        }
        self.decode_resolving(bytes).await
    }

    /// Whether schema `id` is exactly our schema of `E`'s topic (asked once per id).
    async fn written_with_ours<E: Event>(&self, id: u32) -> Result<bool, CodecError> {
        let key = (id, E::TOPIC);
        if let Some(same) = self
            .inner
            .same_as_ours
            .read()
            .expect("codec lock")
            .get(&key)
        {
            return Ok(*same);
        }
        let registered =
            match schema_registry_converter::async_impl::schema_registry::get_schema_by_id(
                id,
                &self.inner.settings,
            )
            .await
            {
                Ok(registered) => registered,
                Err(e) if e.retriable => return Err(CodecError::Unavailable(e.to_string())),
                // Unknown id and the like: the generic path gives the record's own error.
                Err(_) => return Ok(false),
            };
        let same = match (Schema::parse_str(&registered.schema), ours()?.get(E::TOPIC)) {
            (Ok(writer), Some(ours)) => writer.canonical_form() == ours.canonical_form(),
            _ => false,
        };
        self.inner
            .same_as_ours
            .write()
            .expect("codec lock")
            .insert(key, same);
        Ok(same)
    }

    /// The generic path: the writer's schema from the registry, a value tree, resolved to our
    /// schema when the writer's differs.
    async fn decode_resolving<E: Event>(&self, bytes: &[u8]) -> Result<E, CodecError> {
        let decoded = self
            .inner
            .decoder
            .decode(Some(bytes))
            .await
            .map_err(|e| CodecError::from_registry(e, CodecError::Invalid))?;
        match apache_avro::from_value::<E>(&decoded.value) {
            Ok(event) => Ok(event),
            // The writer's schema differs from ours (an older or newer version): resolve to ours.
            Err(first) => {
                let reader = ours()?.get(E::TOPIC).ok_or_else(|| {
                    CodecError::Schema(format!("no schema for topic {}", E::TOPIC))
                })?;
                let resolved = decoded
                    .value
                    .resolve(reader)
                    .map_err(|_| CodecError::Invalid(first.to_string()))?;
                apache_avro::from_value::<E>(&resolved)
                    .map_err(|e| CodecError::Invalid(e.to_string()))
            }
        }
    }

    /// Ok when the registry answers (lists its subjects).
    pub async fn check(&self) -> Result<(), CodecError> {
        schema_registry_converter::async_impl::schema_registry::get_all_subjects(
            &self.inner.settings,
        )
        .await
        .map(|_| ())
        .map_err(|e| CodecError::Unavailable(e.to_string()))
    }

    /// Registers the value schema of every topic under its subject; returns (subject, id).
    /// Idempotent: an identical schema gets its existing id back.
    pub async fn register_all(&self) -> Result<Vec<(String, u32)>, CodecError> {
        let mut out = Vec::new();
        for topic in topics::ALL {
            if let Some(id) = self.register(topic).await? {
                out.push((topic.value_subject(), id));
            }
        }
        Ok(out)
    }

    async fn register(&self, topic: &Topic) -> Result<Option<u32>, CodecError> {
        let Some(raw) = topic.value_schema else {
            return Ok(None);
        };
        let registered = post_schema(&self.inner.settings, topic.value_subject(), supplied(raw))
            .await
            .map_err(|e| CodecError::from_registry(e, CodecError::Schema))?;
        Ok(Some(registered.id))
    }
}

fn supplied(raw: &str) -> SuppliedSchema {
    SuppliedSchema::new(None, SchemaType::Avro, raw.to_string())
}

/// The schema id and Avro body of a record in the Confluent wire format (magic byte 0, 4-byte
/// big-endian id).
fn wire_header(bytes: &[u8]) -> Option<(u32, &[u8])> {
    match bytes {
        [0, a, b, c, d, body @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        _ => None,
    }
}
