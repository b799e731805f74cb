//! The Confluent Schema Registry REST API (the subset Confluent's clients and
//! schema_registry_converter use), over the store and its log.

use std::sync::{Arc, RwLock};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::error::RegistryError;
use crate::log::SchemaLog;
use crate::store::{config_record, Candidate, Level, Store, VersionSel};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub struct Registry {
    pub store: Arc<RwLock<Store>>,
    pub log: SchemaLog,
    /// Serialises this instance's writes: plan against the caught-up store, append, read back.
    pub writer: Mutex<()>,
}

type Data = web::Data<Registry>;
type Reply = Result<HttpResponse, RegistryError>;

impl actix_web::ResponseError for RegistryError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.codes().0).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .content_type(CONTENT_TYPE)
            .body(json!({"error_code": self.codes().1, "message": self.to_string()}).to_string())
    }
}

fn ok(body: Value) -> Reply {
    Ok(HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(body.to_string()))
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

fn candidate(body: &[u8]) -> Result<Candidate, RegistryError> {
    let body: SchemaBody = serde_json::from_slice(body)
        .map_err(|e| RegistryError::BadRequest(format!("request body: {e}")))?;
    if !body.references.is_empty() {
        return Err(RegistryError::InvalidSchema(
            "schema references are not supported by this registry".into(),
        ));
    }
    Candidate::parse(&body.schema, body.schema_type.as_deref())
}

/// Query flags. Clients spell booleans `true`, `True` or `1`; anything else is false.
#[derive(Deserialize, Default)]
struct Flags {
    #[serde(default, deserialize_with = "lenient_bool")]
    deleted: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    permanent: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    verbose: bool,
    #[serde(default, rename = "defaultToGlobal", deserialize_with = "lenient_bool")]
    default_to_global: bool,
}

fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let raw = String::deserialize(d)?;
    Ok(raw.eq_ignore_ascii_case("true") || raw == "1")
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(|| async { ok(json!({})) }))
        .route("/subjects", web::get().to(list_subjects))
        .route("/subjects/{subject}", web::post().to(lookup))
        .route("/subjects/{subject}", web::delete().to(delete_subject))
        .route("/subjects/{subject}/versions", web::get().to(list_versions))
        .route("/subjects/{subject}/versions", web::post().to(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            web::get().to(get_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            web::get().to(get_version_schema),
        )
        .route("/schemas/ids/{id}", web::get().to(get_by_id))
        .route("/schemas/ids/{id}/schema", web::get().to(get_raw_by_id))
        .route("/schemas/ids/{id}/versions", web::get().to(id_versions))
        .route(
            "/schemas/types",
            web::get().to(|| async { ok(json!(["AVRO"])) }),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            web::post().to(compatibility),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            web::post().to(compatibility_all),
        )
        .route("/config", web::get().to(get_global_config))
        .route("/config", web::put().to(put_global_config))
        .route("/config/{subject}", web::get().to(get_subject_config))
        .route("/config/{subject}", web::put().to(put_subject_config))
        .route("/config/{subject}", web::delete().to(delete_subject_config));
}

async fn list_subjects(r: Data, q: web::Query<Flags>) -> Reply {
    ok(json!(r.store.read().unwrap().subjects(q.deleted)))
}

async fn list_versions(r: Data, s: web::Path<String>, q: web::Query<Flags>) -> Reply {
    ok(json!(r.store.read().unwrap().versions(&s, q.deleted)?))
}

async fn get_version(r: Data, p: web::Path<(String, String)>, q: web::Query<Flags>) -> Reply {
    let sel = VersionSel::parse(&p.1)?;
    ok(json!(r
        .store
        .read()
        .unwrap()
        .version(&p.0, sel, q.deleted)?))
}

async fn get_version_schema(r: Data, p: web::Path<(String, String)>) -> Reply {
    let sel = VersionSel::parse(&p.1)?;
    let v = r.store.read().unwrap().version(&p.0, sel, false)?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(v.schema))
}

async fn get_by_id(r: Data, id: web::Path<u32>) -> Reply {
    ok(json!({"schema": r.store.read().unwrap().schema_by_id(*id)?}))
}

async fn get_raw_by_id(r: Data, id: web::Path<u32>) -> Reply {
    let schema = r.store.read().unwrap().schema_by_id(*id)?.to_string();
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(schema))
}

async fn id_versions(r: Data, id: web::Path<u32>) -> Reply {
    let store = r.store.read().unwrap();
    store.schema_by_id(*id)?;
    let usages: Vec<Value> = store
        .usages(*id)
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    ok(json!(usages))
}

async fn lookup(r: Data, s: web::Path<String>, body: web::Bytes) -> Reply {
    let c = candidate(&body)?;
    ok(json!(r.store.read().unwrap().lookup(&s, &c)?))
}

async fn register(r: Data, s: web::Path<String>, body: web::Bytes) -> Reply {
    let c = candidate(&body)?;
    let _writer = r.writer.lock().await;
    r.log.catch_up().await?;
    let (id, record) = r.store.read().unwrap().plan_register(&s, &c)?;
    if let Some(record) = record {
        r.log.append(vec![record]).await?;
        tracing::info!(subject = %s, id, "schema registered");
    }
    ok(json!({"id": id}))
}

async fn delete_subject(r: Data, s: web::Path<String>, q: web::Query<Flags>) -> Reply {
    let _writer = r.writer.lock().await;
    r.log.catch_up().await?;
    let (versions, records) = r
        .store
        .read()
        .unwrap()
        .plan_delete_subject(&s, q.permanent)?;
    r.log.append(records).await?;
    ok(json!(versions))
}

async fn check(
    r: &Registry,
    subject: &str,
    sel: Option<VersionSel>,
    body: &[u8],
    verbose: bool,
) -> Reply {
    let c = candidate(body)?;
    let store = r.store.read().unwrap();
    let level = store.effective_level(subject);
    let problems = store.incompatibilities(subject, &c, level, sel)?;
    let mut answer = json!({"is_compatible": problems.is_empty()});
    if verbose {
        answer["messages"] = json!(problems);
    }
    ok(answer)
}

async fn compatibility(
    r: Data,
    p: web::Path<(String, String)>,
    q: web::Query<Flags>,
    body: web::Bytes,
) -> Reply {
    let sel = VersionSel::parse(&p.1)?;
    check(&r, &p.0, Some(sel), &body, q.verbose).await
}

async fn compatibility_all(
    r: Data,
    s: web::Path<String>,
    q: web::Query<Flags>,
    body: web::Bytes,
) -> Reply {
    check(&r, &s, None, &body, q.verbose).await
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: String,
}

fn level_of(body: &[u8]) -> Result<Level, RegistryError> {
    let b: ConfigBody = serde_json::from_slice(body)
        .map_err(|e| RegistryError::BadRequest(format!("request body: {e}")))?;
    Level::parse(&b.compatibility)
}

async fn get_global_config(r: Data) -> Reply {
    ok(json!({"compatibilityLevel": r.store.read().unwrap().global_level()}))
}

async fn put_global_config(r: Data, body: web::Bytes) -> Reply {
    let level = level_of(&body)?;
    let _writer = r.writer.lock().await;
    r.log.append(vec![config_record(None, Some(level))]).await?;
    ok(json!({"compatibility": level}))
}

async fn get_subject_config(r: Data, s: web::Path<String>, q: web::Query<Flags>) -> Reply {
    let store = r.store.read().unwrap();
    let level = match store.subject_level(&s) {
        Some(l) => l,
        None if q.default_to_global => store.global_level(),
        None => return Err(RegistryError::SubjectLevelConfigNotFound(s.into_inner())),
    };
    ok(json!({"compatibilityLevel": level}))
}

async fn put_subject_config(r: Data, s: web::Path<String>, body: web::Bytes) -> Reply {
    let level = level_of(&body)?;
    let _writer = r.writer.lock().await;
    r.log
        .append(vec![config_record(Some(&s), Some(level))])
        .await?;
    ok(json!({"compatibility": level}))
}

async fn delete_subject_config(r: Data, s: web::Path<String>) -> Reply {
    let previous = r.store.read().unwrap().subject_level(&s);
    let Some(previous) = previous else {
        return Err(RegistryError::SubjectLevelConfigNotFound(s.into_inner()));
    };
    let _writer = r.writer.lock().await;
    r.log.append(vec![config_record(Some(&s), None)]).await?;
    ok(json!({"compatibilityLevel": previous}))
}
