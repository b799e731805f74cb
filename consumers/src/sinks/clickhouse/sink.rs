use std::marker::PhantomData;

use clickhouse::Client;

use super::rows::Table;
use super::service::classify;
use crate::{Record, Sink, SinkError};

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

    async fn write(&self, batch: &[Record<E>]) -> Result<(), SinkError> {
        let mut insert = self
            .client
            .insert::<E::Row>(E::TABLE)
            .await
            .map_err(classify)?;
        for r in batch {
            insert
                .write(&r.event.row(r.partition, r.offset))
                .await
                .map_err(classify)?;
        }
        insert.end().await.map_err(classify)
    }

    async fn written_through(&self, partition: i32) -> Result<Option<i64>, SinkError> {
        let (rows, max): (u64, u64) = self
            .client
            .query(&format!(
                "SELECT count(), max(kafka_offset) FROM {} WHERE kafka_partition = ?",
                E::TABLE
            ))
            .bind(partition as u32)
            .fetch_one()
            .await
            .map_err(classify)?;
        Ok((rows > 0).then_some(max as i64))
    }
}
