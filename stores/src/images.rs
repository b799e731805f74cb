//! Image resize jobs in MongoDB: the uploaded originals and the results in GridFS (bucket `images`;
//! the local MongoDB-wire server stores and returns GridFS files intact), and one job document per
//! task in `resize_jobs`: PENDING -> STARTED -> SUCCESS | FAILURE. Also the limits the API and the
//! worker both enforce, and the header probe (format sniffed from the bytes, dimensions read
//! without decoding).

use std::io::Cursor;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use image::{ImageFormat, ImageReader};
use mongodb::bson::{doc, oid::ObjectId, Bson};
use mongodb::gridfs::GridFsBucket;
use mongodb::options::GridFsBucketOptions;
use mongodb::Database;
use serde::{Deserialize, Serialize};

pub const RESIZE_JOBS: &str = "resize_jobs";
pub const BUCKET: &str = "images";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Pending,
    Started,
    Success,
    Failure,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobDoc {
    pub task_id: String,
    pub status: JobStatus,
    #[serde(default)]
    pub error: Option<String>,
    /// GridFS id (hex) of the original.
    pub source_blob: String,
    #[serde(default)]
    pub result_blob: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// After this (epoch ms) the result is gone (404).
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Who created the job: `user:<id>` or `service:<key name>` (none on jobs of earlier releases:
    /// services only may read those).
    #[serde(default)]
    pub owner: Option<String>,
    /// When the sweeper deleted the job's blobs (epoch ms). Absent, never null, until then: the
    /// sweeper selects with `$exists` (the local MongoDB-wire server matches `null` differently
    /// from MongoDB once a query has more than one condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swept_at: Option<i64>,
}

/// Where originals and results live: GridFS (`IMAGE_BLOB_STORE=gridfs`, for a real MongoDB), or
/// files under `IMAGE_BLOB_DIR` (`fs`, the local default). The local MongoDB-wire server stores
/// GridFS files but hands `uploadDate` back as a string, which the Rust driver's GridFS cannot read,
/// so the local stack uses the filesystem (one machine: the API and the worker share the folder).
#[derive(Clone)]
pub enum BlobStore {
    GridFs(GridFsBucket),
    Fs(std::path::PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("blob file: {0}")]
    Io(#[from] std::io::Error),
}

impl BlobStore {
    /// From `IMAGE_BLOB_STORE` (`fs` or `gridfs`, default `fs`) and `IMAGE_BLOB_DIR` (default
    /// `.stack/blobs`).
    pub fn from_env(db: &Database) -> Result<Self, common::config::ConfigError> {
        match common::config::env_or("IMAGE_BLOB_STORE", "fs").as_str() {
            "gridfs" => Ok(Self::GridFs(
                db.gridfs_bucket(
                    GridFsBucketOptions::builder()
                        .bucket_name(BUCKET.to_string())
                        .build(),
                ),
            )),
            "fs" => Ok(Self::Fs(
                common::config::env_or("IMAGE_BLOB_DIR", ".stack/blobs").into(),
            )),
            other => Err(common::config::ConfigError {
                name: "IMAGE_BLOB_STORE".into(),
                value: other.into(),
                reason: "must be fs or gridfs".into(),
            }),
        }
    }

    /// Stores bytes durably; returns the blob id.
    pub async fn put(&self, name: &str, bytes: &[u8]) -> Result<String, BlobError> {
        match self {
            Self::GridFs(bucket) => {
                let mut upload = bucket.open_upload_stream(name).await?;
                upload.write_all(bytes).await?;
                upload.close().await?;
                Ok(match upload.id() {
                    Bson::ObjectId(id) => id.to_hex(),
                    other => other.to_string(),
                })
            }
            Self::Fs(dir) => {
                let id = ObjectId::new().to_hex();
                tokio::fs::create_dir_all(dir).await?;
                let tmp = dir.join(format!("{id}.tmp"));
                tokio::fs::write(&tmp, bytes).await?;
                tokio::fs::rename(&tmp, dir.join(&id)).await?;
                Ok(id)
            }
        }
    }

    /// Deletes the blob; one already gone is not an error (sweeps repeat after a crash).
    pub async fn delete(&self, id: &str) -> Result<(), BlobError> {
        let Ok(oid) = ObjectId::parse_str(id) else {
            return Ok(());
        };
        match self {
            Self::GridFs(bucket) => match bucket.delete(Bson::ObjectId(oid)).await {
                Ok(()) => Ok(()),
                Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::GridFs(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
            Self::Fs(dir) => match tokio::fs::remove_file(dir.join(oid.to_hex())).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// The blob's bytes, if it exists (ids are ObjectId hex: nothing else is looked up).
    pub async fn get(&self, id: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let Ok(oid) = ObjectId::parse_str(id) else {
            return Ok(None);
        };
        match self {
            Self::GridFs(bucket) => {
                let mut download = match bucket.open_download_stream(Bson::ObjectId(oid)).await {
                    Ok(d) => d,
                    Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::GridFs(_)) => {
                        return Ok(None)
                    }
                    Err(e) => return Err(e.into()),
                };
                let mut bytes = Vec::new();
                download.read_to_end(&mut bytes).await?;
                Ok(Some(bytes))
            }
            Self::Fs(dir) => match tokio::fs::read(dir.join(oid.to_hex())).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
        }
    }
}

#[derive(Clone)]
pub struct ImageJobs {
    db: Database,
    blobs: BlobStore,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl ImageJobs {
    pub fn new(db: Database, blobs: BlobStore) -> Self {
        Self { db, blobs }
    }

    pub async fn put_blob(&self, name: &str, bytes: &[u8]) -> Result<String, BlobError> {
        self.blobs.put(name, bytes).await
    }

    pub async fn get_blob(&self, id: &str) -> Result<Option<Vec<u8>>, BlobError> {
        self.blobs.get(id).await
    }

    pub async fn delete_blob(&self, id: &str) -> Result<(), BlobError> {
        self.blobs.delete(id).await
    }

    /// A PENDING job for `source_blob`, owned by `owner` (`user:<id>` / `service:<name>`).
    pub async fn create(
        &self,
        task_id: &str,
        source_blob: &str,
        owner: &str,
    ) -> Result<(), mongodb::error::Error> {
        let now = now_ms();
        self.db
            .collection::<JobDoc>(RESIZE_JOBS)
            .insert_one(JobDoc {
                task_id: task_id.to_string(),
                status: JobStatus::Pending,
                error: None,
                source_blob: source_blob.to_string(),
                result_blob: None,
                content_type: None,
                created_at: now,
                updated_at: now,
                expires_at: None,
                owner: Some(owner.to_string()),
                swept_at: None,
            })
            .await?;
        Ok(())
    }

    pub async fn get(&self, task_id: &str) -> Result<Option<JobDoc>, mongodb::error::Error> {
        self.db
            .collection::<JobDoc>(RESIZE_JOBS)
            .find_one(doc! {"task_id": task_id})
            .await
    }

    pub async fn mark(
        &self,
        task_id: &str,
        status: JobStatus,
        error: Option<&str>,
    ) -> Result<(), mongodb::error::Error> {
        let status = mongodb::bson::to_bson(&status).unwrap_or(Bson::Null);
        self.db
            .collection::<JobDoc>(RESIZE_JOBS)
            .update_one(
                doc! {"task_id": task_id},
                doc! {"$set": {"status": status, "error": error, "updated_at": now_ms()}},
            )
            .await?;
        Ok(())
    }

    pub async fn succeed(
        &self,
        task_id: &str,
        result_blob: &str,
        content_type: &str,
        expires_at: i64,
    ) -> Result<(), mongodb::error::Error> {
        self.db
            .collection::<JobDoc>(RESIZE_JOBS)
            .update_one(
                doc! {"task_id": task_id},
                doc! {"$set": {"status": "SUCCESS", "error": Bson::Null, "result_blob": result_blob,
                "content_type": content_type, "expires_at": expires_at, "updated_at": now_ms()}},
            )
            .await?;
        Ok(())
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Jobs whose blobs (original and result) were deleted.
    pub jobs: u64,
    /// Job documents deleted (swept a TTL earlier).
    pub forgotten: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

impl ImageJobs {
    /// Deletes what has outlived `ttl_ms` (`IMAGE_RESULT_TTL_SECS`): the original and the result of
    /// a job whose result expired, the original of a job that failed or was never processed that
    /// long ago (a never-processed one becomes FAILURE), and, a further TTL later, the job document
    /// itself (its status is then 404 like an unknown id). Blobs are deleted before the job is
    /// marked swept, so a crash in between only repeats the deletes; several sweepers at once only
    /// repeat them too.
    pub async fn sweep(&self, ttl_ms: i64, now: i64) -> Result<Swept, SweepError> {
        use futures::TryStreamExt;
        let jobs = self.db.collection::<JobDoc>(RESIZE_JOBS);
        let due = now - ttl_ms;
        let mut candidates = jobs
            .find(doc! {"swept_at": {"$exists": false}, "$or": [
                {"status": "SUCCESS", "expires_at": {"$lte": now}},
                {"status": "FAILURE", "updated_at": {"$lte": due}},
                {"status": {"$in": ["PENDING", "STARTED"]}, "created_at": {"$lte": due}},
            ]})
            .await?;
        let mut swept = Swept::default();
        while let Some(job) = candidates.try_next().await? {
            self.blobs.delete(&job.source_blob).await?;
            if let Some(result) = &job.result_blob {
                self.blobs.delete(result).await?;
            }
            let mut set = doc! {"swept_at": now};
            if matches!(job.status, JobStatus::Pending | JobStatus::Started) {
                set.insert("status", "FAILURE");
                set.insert("error", "not processed within IMAGE_RESULT_TTL_SECS");
                set.insert("updated_at", now);
            }
            let marked = jobs
                .update_one(
                    doc! {"task_id": &job.task_id, "swept_at": {"$exists": false}},
                    doc! {"$set": set},
                )
                .await?;
            swept.jobs += marked.modified_count;
        }
        swept.forgotten = jobs
            .delete_many(doc! {"swept_at": {"$lte": due}})
            .await?
            .deleted_count;
        Ok(swept)
    }
}

/// `IMAGE_MAX_SOURCE_PIXELS` (default 40 MP), `IMAGE_MAX_OUTPUT_SIDE` (8192),
/// `IMAGE_MAX_OUTPUT_PIXELS` (16 MP).
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    pub max_source_pixels: u64,
    pub max_output_side: u32,
    pub max_output_pixels: u64,
}

impl ImageLimits {
    pub fn from_env() -> Result<Self, common::config::ConfigError> {
        use common::config::env_parse;
        Ok(Self {
            max_source_pixels: env_parse("IMAGE_MAX_SOURCE_PIXELS", 40_000_000)?,
            max_output_side: env_parse("IMAGE_MAX_OUTPUT_SIDE", 8192)?,
            max_output_pixels: env_parse("IMAGE_MAX_OUTPUT_PIXELS", 16_000_000)?,
        })
    }
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_source_pixels: 40_000_000,
            max_output_side: 8192,
            max_output_pixels: 16_000_000,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResizeError {
    #[error("not a PNG, JPEG or WebP image")]
    UnknownFormat,
    #[error("unreadable image header: {0}")]
    Header(String),
    #[error("source is {width}x{height}, over the limit of {limit} pixels")]
    TooLarge { width: u32, height: u32, limit: u64 },
    #[error("requested size {0}x{1} is out of bounds")]
    BadSize(u32, u32),
    #[error("corrupt or truncated image: {0}")]
    Decode(String),
    #[error("encoding: {0}")]
    Encode(String),
}

/// The format sniffed from the bytes (never from a file name) and the header's dimensions.
pub fn probe(bytes: &[u8], limits: &ImageLimits) -> Result<(ImageFormat, u32, u32), ResizeError> {
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP)) => f,
        _ => return Err(ResizeError::UnknownFormat),
    };
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| ResizeError::Header(e.to_string()))?;
    if u64::from(width) * u64::from(height) > limits.max_source_pixels {
        return Err(ResizeError::TooLarge {
            width,
            height,
            limit: limits.max_source_pixels,
        });
    }
    Ok((format, width, height))
}

/// Checks a requested output size against the limits.
pub fn check_size(width: u32, height: u32, limits: &ImageLimits) -> Result<(), ResizeError> {
    let ok = width >= 1
        && height >= 1
        && width <= limits.max_output_side
        && height <= limits.max_output_side
        && u64::from(width) * u64::from(height) <= limits.max_output_pixels;
    ok.then_some(()).ok_or(ResizeError::BadSize(width, height))
}
