//! The pipeline's contracts: the Avro schemas (`avro/*.avsc`), the topics that carry them, the typed
//! events, the domain newtypes that every edge parses into, and the Confluent wire-format codec that
//! encodes and decodes through a schema registry.
//!
//! This crate knows nothing about HTTP servers or databases; every other crate depends on it.

pub mod codec;
pub mod domain;
pub mod events;
pub mod topics;

pub use codec::{Codec, CodecError};
pub use events::Event;
