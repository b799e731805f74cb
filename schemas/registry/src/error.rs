//! Confluent's error model: an HTTP status plus `{"error_code": N, "message": "..."}`.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(u32),
    #[error("Schema not found")]
    SchemaNotFound,
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectLevelConfigNotFound(String),
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel,
    #[error("Unprocessable request: {0}")]
    BadRequest(String),
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: {details:?}")]
    Incompatible {
        subject: String,
        details: Vec<String>,
    },
    #[error("Error while storing the schema in the Kafka log: {0}")]
    Store(String),
    #[error("Register operation timed out waiting for the Kafka log")]
    Timeout,
    #[error("Unauthorized: this write needs the credentials of REGISTRY_AUTH (HTTP basic)")]
    Unauthorized,
}

impl RegistryError {
    /// The HTTP status and Confluent error code.
    pub fn codes(&self) -> (u16, u32) {
        use RegistryError::*;
        match self {
            SubjectNotFound(_) => (404, 40401),
            VersionNotFound(_) => (404, 40402),
            SchemaNotFound => (404, 40403),
            SubjectNotSoftDeleted(_) => (404, 40405),
            SubjectLevelConfigNotFound(_) => (404, 40408),
            InvalidSchema(_) => (422, 42201),
            InvalidVersion(_) => (422, 42202),
            InvalidCompatibilityLevel => (422, 42203),
            BadRequest(_) => (422, 422),
            Incompatible { .. } => (409, 409),
            Store(_) => (500, 50001),
            Timeout => (500, 50002),
            Unauthorized => (401, 40101),
        }
    }
}
