use std::marker::PhantomData;

use clickhouse::Client;

use super::rows::Table;
use super::service::classify;
use crate::{Sink, SinkError};

/// Inserts batches of `E` into `E::TABLE` with one RowBinary INSERT per batch.
pub struct ClickHouseSink<E> {
    client: Client,
    _event: PhantomData<fn() -> E>,
}

impl<E: Table> ClickHouseSink<E> {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            _event: PhantomData,
        }
    }
}

impl<E: Table> Sink for ClickHouseSink<E> {
    type Event = E;

    fn name(&self) -> &'static str {
        E::TABLE
    }

    async fn write(&self, batch: &[E]) -> Result<(), SinkError> {
        let mut insert = self
            .client
            .insert::<E::Row>(E::TABLE)
            .await
            .map_err(classify)?;
        for event in batch {
            insert.write(&event.row()).await.map_err(classify)?;
        }
        insert.end().await.map_err(classify)
    }
}
