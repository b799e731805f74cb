//! The registry's state, rebuilt by applying the records of the `_schemas` log in order. Records use
//! Confluent's own key and value JSON, so the log reads the same as a Confluent registry's.
//! Writes are planned here (which records to append) and become state only when read back from the
//! log, so every instance reading the log agrees.

use std::collections::{BTreeMap, HashMap};

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::RegistryError;

/// Compatibility levels, as Confluent spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    pub fn parse(raw: &str) -> Result<Self, RegistryError> {
        serde_json::from_value(Value::String(raw.to_ascii_uppercase()))
            .map_err(|_| RegistryError::InvalidCompatibilityLevel)
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }
}

/// A schema as submitted, validated and normalised.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Compact JSON with sorted object keys: the identity of a schema.
    pub normalized: String,
    parsed: Schema,
}

impl Candidate {
    /// Validates a request body's `schema` (and `schemaType`, which must be absent or AVRO).
    pub fn parse(schema: &str, schema_type: Option<&str>) -> Result<Self, RegistryError> {
        if let Some(t) = schema_type {
            if !t.eq_ignore_ascii_case("AVRO") {
                return Err(RegistryError::InvalidSchema(format!(
                    "schemaType {t} is not supported by this registry (AVRO only)"
                )));
            }
        }
        let json: Value = serde_json::from_str(schema)
            .map_err(|e| RegistryError::InvalidSchema(format!("not JSON: {e}")))?;
        let parsed =
            Schema::parse(&json).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
        Ok(Self {
            normalized: sorted_json(&json),
            parsed,
        })
    }
}

/// Serialises JSON with object keys sorted, whatever serde_json's map ordering is built with.
fn sorted_json(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), sorted_json(&map[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(sorted_json).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// Which version of a subject a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSel {
    Latest,
    Number(u32),
}

impl VersionSel {
    pub fn parse(raw: &str) -> Result<Self, RegistryError> {
        if raw == "latest" || raw == "-1" {
            return Ok(VersionSel::Latest);
        }
        match raw.parse::<u32>() {
            Ok(n) if n >= 1 && n <= i32::MAX as u32 => Ok(VersionSel::Number(n)),
            _ => Err(RegistryError::InvalidVersion(raw.to_string())),
        }
    }
}

/// One registered version of a subject, as the REST API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
}

#[derive(Debug, Clone)]
struct VersionEntry {
    id: u32,
    deleted: bool,
}

/// A record to append to the log: key and value bytes (`None` is a tombstone).
pub type LogRecord = (Vec<u8>, Option<Vec<u8>>);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SchemaValue {
    subject: String,
    version: u32,
    id: u32,
    schema: String,
    #[serde(default)]
    deleted: bool,
}

#[derive(Debug, Default)]
pub struct Store {
    by_id: HashMap<u32, String>,
    subjects: BTreeMap<String, BTreeMap<u32, VersionEntry>>,
    global_level: Option<Level>,
    subject_levels: HashMap<String, Level>,
    max_id: u32,
}

impl Store {
    pub const DEFAULT_LEVEL: Level = Level::Backward;

    /// Applies one record of the log. Unknown key types are ignored (Confluent writes NOOP and others).
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let key: Value = serde_json::from_slice(key).map_err(|e| format!("bad key: {e}"))?;
        match key.get("keytype").and_then(Value::as_str) {
            Some("SCHEMA") => {
                let subject = key["subject"]
                    .as_str()
                    .ok_or("SCHEMA key without subject")?;
                let version = key["version"]
                    .as_u64()
                    .ok_or("SCHEMA key without version")? as u32;
                match value {
                    None => {
                        if let Some(versions) = self.subjects.get_mut(subject) {
                            versions.remove(&version);
                            if versions.is_empty() {
                                self.subjects.remove(subject);
                            }
                        }
                    }
                    Some(v) => {
                        let v: SchemaValue =
                            serde_json::from_slice(v).map_err(|e| format!("bad value: {e}"))?;
                        self.by_id.entry(v.id).or_insert(v.schema);
                        self.max_id = self.max_id.max(v.id);
                        self.subjects.entry(v.subject).or_default().insert(
                            v.version,
                            VersionEntry {
                                id: v.id,
                                deleted: v.deleted,
                            },
                        );
                    }
                }
            }
            Some("CONFIG") => {
                let level = match value {
                    None => None,
                    Some(v) => {
                        let v: Value =
                            serde_json::from_slice(v).map_err(|e| format!("bad value: {e}"))?;
                        let raw = v["compatibilityLevel"]
                            .as_str()
                            .ok_or("config without level")?;
                        Some(Level::parse(raw).map_err(|e| e.to_string())?)
                    }
                };
                match key.get("subject").and_then(Value::as_str) {
                    None => self.global_level = level,
                    Some(s) => match level {
                        Some(l) => {
                            self.subject_levels.insert(s.to_string(), l);
                        }
                        None => {
                            self.subject_levels.remove(s);
                        }
                    },
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub fn subjects(&self, include_deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, v)| include_deleted || v.values().any(|e| !e.deleted))
            .map(|(s, _)| s.clone())
            .collect()
    }

    fn live_versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<(u32, &VersionEntry)>, RegistryError> {
        let live: Vec<(u32, &VersionEntry)> = self
            .subjects
            .get(subject)
            .map(|v| {
                v.iter()
                    .filter(|(_, e)| include_deleted || !e.deleted)
                    .map(|(n, e)| (*n, e))
                    .collect()
            })
            .unwrap_or_default();
        if live.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        Ok(live)
    }

    pub fn versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        Ok(self
            .live_versions(subject, include_deleted)?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    pub fn version(
        &self,
        subject: &str,
        sel: VersionSel,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let live = self.live_versions(subject, include_deleted)?;
        let (version, entry) = match sel {
            VersionSel::Latest => *live.last().expect("live_versions is never empty"),
            VersionSel::Number(n) => *live
                .iter()
                .find(|(v, _)| *v == n)
                .ok_or(RegistryError::VersionNotFound(n))?,
        };
        Ok(SubjectVersion {
            subject: subject.to_string(),
            version,
            id: entry.id,
            schema: self.by_id[&entry.id].clone(),
        })
    }

    pub fn schema_by_id(&self, id: u32) -> Result<&str, RegistryError> {
        self.by_id
            .get(&id)
            .map(String::as_str)
            .ok_or(RegistryError::SchemaNotFound)
    }

    /// The subjects and versions that hold schema `id`.
    pub fn usages(&self, id: u32) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for (subject, versions) in &self.subjects {
            for (v, e) in versions {
                if e.id == id && !e.deleted {
                    out.push((subject.clone(), *v));
                }
            }
        }
        out
    }

    /// `POST /subjects/{s}`: the version of `subject` that holds this schema.
    pub fn lookup(&self, subject: &str, c: &Candidate) -> Result<SubjectVersion, RegistryError> {
        let live = self.live_versions(subject, false)?;
        live.iter()
            .find(|(_, e)| self.by_id[&e.id] == c.normalized)
            .map(|(v, e)| SubjectVersion {
                subject: subject.to_string(),
                version: *v,
                id: e.id,
                schema: c.normalized.clone(),
            })
            .ok_or(RegistryError::SchemaNotFound)
    }

    pub fn global_level(&self) -> Level {
        self.global_level.unwrap_or(Self::DEFAULT_LEVEL)
    }

    pub fn subject_level(&self, subject: &str) -> Option<Level> {
        self.subject_levels.get(subject).copied()
    }

    pub fn effective_level(&self, subject: &str) -> Level {
        self.subject_level(subject)
            .unwrap_or_else(|| self.global_level())
    }

    /// Incompatibilities of `c` against `subject`'s versions under `level`: against `against`
    /// (or, when `None`, the latest, or all versions for the transitive levels).
    pub fn incompatibilities(
        &self,
        subject: &str,
        c: &Candidate,
        level: Level,
        against: Option<VersionSel>,
    ) -> Result<Vec<String>, RegistryError> {
        if level == Level::None {
            return Ok(Vec::new());
        }
        let live = match self.live_versions(subject, false) {
            Ok(l) => l,
            Err(_) if against.is_none() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let targets: Vec<u32> = match against {
            Some(sel) => vec![self.version(subject, sel, false)?.version],
            None if level.transitive() => live.iter().map(|(v, _)| *v).collect(),
            None => vec![live.last().expect("never empty").0],
        };
        let mut problems = Vec::new();
        for v in targets {
            let old = self.version(subject, VersionSel::Number(v), false)?;
            let old_schema = Schema::parse_str(&old.schema).map_err(|e| {
                RegistryError::Store(format!("stored schema {} unparsable: {e}", old.id))
            })?;
            let backward = matches!(
                level,
                Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
            );
            let forward = matches!(
                level,
                Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
            );
            if backward {
                if let Err(e) = SchemaCompatibility::can_read(&old_schema, &c.parsed) {
                    problems.push(format!(
                        "version {v}: new schema cannot read data written with it: {e}"
                    ));
                }
            }
            if forward {
                if let Err(e) = SchemaCompatibility::can_read(&c.parsed, &old_schema) {
                    problems.push(format!(
                        "version {v}: it cannot read data written with the new schema: {e}"
                    ));
                }
            }
        }
        Ok(problems)
    }

    /// Plans `POST /subjects/{s}/versions`: `Ok((id, None))` when the subject already holds the schema,
    /// else the id it gets and the record to append.
    pub fn plan_register(
        &self,
        subject: &str,
        c: &Candidate,
    ) -> Result<(u32, Option<LogRecord>), RegistryError> {
        if let Ok(existing) = self.lookup(subject, c) {
            return Ok((existing.id, None));
        }
        let problems = self.incompatibilities(subject, c, self.effective_level(subject), None)?;
        if !problems.is_empty() {
            return Err(RegistryError::Incompatible {
                subject: subject.to_string(),
                details: problems,
            });
        }
        // Ids are global: the same schema under another subject keeps its id.
        let id = self
            .by_id
            .iter()
            .find(|(_, s)| **s == c.normalized)
            .map(|(id, _)| *id)
            .unwrap_or(self.max_id + 1);
        let version = self
            .subjects
            .get(subject)
            .and_then(|v| v.keys().next_back().copied())
            .unwrap_or(0)
            + 1;
        Ok((
            id,
            Some(schema_record(subject, version, id, &c.normalized, false)),
        ))
    }

    /// Plans `DELETE /subjects/{s}`: soft delete marks every version deleted; permanent delete
    /// (only after a soft delete) writes tombstones. Returns the versions and the records.
    pub fn plan_delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<(Vec<u32>, Vec<LogRecord>), RegistryError> {
        let all = self
            .subjects
            .get(subject)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
        let live: Vec<u32> = all
            .iter()
            .filter(|(_, e)| !e.deleted)
            .map(|(v, _)| *v)
            .collect();
        if permanent {
            if !live.is_empty() {
                return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
            }
            let versions: Vec<u32> = all.keys().copied().collect();
            let records = versions
                .iter()
                .map(|v| (schema_key(subject, *v), None))
                .collect();
            return Ok((versions, records));
        }
        if live.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        let records = live
            .iter()
            .map(|v| {
                let id = all[v].id;
                schema_record(subject, *v, id, &self.by_id[&id], true)
            })
            .collect();
        Ok((live, records))
    }
}

fn schema_key(subject: &str, version: u32) -> Vec<u8> {
    json!({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1})
        .to_string()
        .into_bytes()
}

fn schema_record(subject: &str, version: u32, id: u32, schema: &str, deleted: bool) -> LogRecord {
    let value = SchemaValue {
        subject: subject.to_string(),
        version,
        id,
        schema: schema.to_string(),
        deleted,
    };
    (
        schema_key(subject, version),
        Some(serde_json::to_vec(&value).expect("plain struct serialises")),
    )
}

/// The record that sets (or, with `None`, clears) a compatibility level; `subject` `None` is global.
pub fn config_record(subject: Option<&str>, level: Option<Level>) -> LogRecord {
    let key = json!({"keytype": "CONFIG", "subject": subject, "magic": 0})
        .to_string()
        .into_bytes();
    let value = level.map(|l| json!({ "compatibilityLevel": l }).to_string().into_bytes());
    (key, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"}]}"#;
    const V2_WITH_DEFAULT: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#;
    const V2_NO_DEFAULT: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#;

    fn register(store: &mut Store, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let c = Candidate::parse(schema, None)?;
        let (id, record) = store.plan_register(subject, &c)?;
        if let Some((k, v)) = record {
            store.apply(&k, v.as_deref()).unwrap();
        }
        Ok(id)
    }

    #[test]
    fn ids_are_global_and_identical_schemas_reuse_them() {
        let mut s = Store::default();
        let a = register(&mut s, "x-value", V1).unwrap();
        let again = register(&mut s, "x-value", &format!(" {V1} ")).unwrap();
        let other_subject = register(&mut s, "y-value", V1).unwrap();
        assert_eq!(a, again);
        assert_eq!(a, other_subject);
        assert_eq!(s.versions("x-value", false).unwrap(), vec![1]);
        let b = register(&mut s, "x-value", V2_WITH_DEFAULT).unwrap();
        assert_eq!(b, a + 1);
        assert_eq!(
            s.version("x-value", VersionSel::Latest, false)
                .unwrap()
                .version,
            2
        );
    }

    #[test]
    fn backward_refuses_a_new_field_without_default() {
        let mut s = Store::default();
        register(&mut s, "x-value", V1).unwrap();
        let err = register(&mut s, "x-value", V2_NO_DEFAULT).unwrap_err();
        assert_eq!(err.codes(), (409, 409));
        let (k, v) = config_record(Some("x-value"), Some(Level::None));
        s.apply(&k, v.as_deref()).unwrap();
        assert!(register(&mut s, "x-value", V2_NO_DEFAULT).is_ok());
    }

    #[test]
    fn forward_and_full_levels() {
        let mut s = Store::default();
        register(&mut s, "x-value", V2_NO_DEFAULT).unwrap();
        let (k, v) = config_record(None, Some(Level::Forward));
        s.apply(&k, v.as_deref()).unwrap();
        // Dropping a field: old readers (without a default for b) cannot read new data.
        assert!(register(&mut s, "x-value", V1).is_err());
        let (k, v) = config_record(None, Some(Level::Backward));
        s.apply(&k, v.as_deref()).unwrap();
        assert!(register(&mut s, "x-value", V1).is_ok());
    }

    #[test]
    fn soft_then_permanent_delete() {
        let mut s = Store::default();
        register(&mut s, "x-value", V1).unwrap();
        assert_eq!(
            s.plan_delete_subject("x-value", true)
                .unwrap_err()
                .codes()
                .1,
            40405
        );
        let (versions, records) = s.plan_delete_subject("x-value", false).unwrap();
        assert_eq!(versions, vec![1]);
        for (k, v) in records {
            s.apply(&k, v.as_deref()).unwrap();
        }
        assert_eq!(s.versions("x-value", false).unwrap_err().codes().1, 40401);
        assert!(s.subjects(false).is_empty());
        assert_eq!(s.subjects(true), vec!["x-value".to_string()]);
        let (_, records) = s.plan_delete_subject("x-value", true).unwrap();
        for (k, v) in records {
            s.apply(&k, v.as_deref()).unwrap();
        }
        assert!(s.subjects(true).is_empty());
        // The id still resolves, as old records on topics still carry it.
        assert!(s.schema_by_id(1).is_ok());
    }

    #[test]
    fn invalid_schema_and_version() {
        assert_eq!(Candidate::parse("{", None).unwrap_err().codes().1, 42201);
        assert_eq!(
            Candidate::parse(r#"{"type":"nope"}"#, None)
                .unwrap_err()
                .codes()
                .1,
            42201
        );
        assert_eq!(VersionSel::parse("0").unwrap_err().codes().1, 42202);
        assert_eq!(VersionSel::parse("latest").unwrap(), VersionSel::Latest);
    }
}
