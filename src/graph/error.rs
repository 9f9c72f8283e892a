//! Graph-shaped errors: `{"error":{"code","message","innerError"}}`.
//!
//! The mapping from domain errors is an exhaustive `match`: a new variant
//! forces a decision about its status and code.

use crate::directory::DirectoryError;
use crate::store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Set for internal errors; the log has the detail under this id.
    pub request_id: Option<String>,
    /// The property the error is about (OData's `target`), so a form can
    /// show the message next to its field.
    pub target: Option<String>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            request_id: None,
            target: None,
        }
    }

    /// An invalid property: a 400 whose `target` names it.
    pub fn invalid_property(property: &str, message: impl Into<String>) -> Self {
        let mut e = Self::bad_request(message);
        e.target = Some(property.to_owned());
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            message,
        )
    }

    /// Every hashing slot is taken (a flood of password work): 503, and
    /// the router adds `Retry-After`.
    pub fn busy() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "serviceNotAvailable",
            "Too many password operations at once. Retry shortly.",
        )
    }

    pub fn internal(kind: &str, detail: &str, unavailable: bool) -> Self {
        let id = crate::web::error::log_internal(kind, detail);
        let (status, code, message) = if unavailable {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "The store is unavailable. Retry shortly.",
            )
        } else {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "generalException",
                "An internal error occurred.",
            )
        };
        Self {
            status,
            code,
            message: message.to_owned(),
            request_id: Some(id),
            target: None,
        }
    }
}

impl From<StoreError> for GraphError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => GraphError::internal(e.code(), &e.to_string(), true),
            StoreError::Corrupt(_) => GraphError::internal(e.code(), &e.to_string(), false),
        }
    }
}

impl From<DirectoryError> for GraphError {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::NotFound(what) => GraphError::not_found(what),
            DirectoryError::UpnTaken => GraphError::bad_request(
                "Another object with the same value for property userPrincipalName already exists.",
            ),
            DirectoryError::Invalid { field, message } => GraphError::invalid_property(
                field,
                format!("Invalid value specified for property '{field}': {message}"),
            ),
            DirectoryError::AlreadyAssigned => GraphError::new(
                StatusCode::CONFLICT,
                "Request_MultipleObjectsWithSameKeyValue",
                "A conflicting object with one or more of the specified property values is present in the directory: the principal already holds this role.",
            ),
            DirectoryError::AlreadyMember => GraphError::bad_request(
                "One or more added object references already exist for the following modified properties: 'members'.",
            ),
            DirectoryError::Contended => GraphError::new(
                StatusCode::CONFLICT,
                "Request_Conflict",
                "The object was changed concurrently; retry the request.",
            ),
            DirectoryError::Store(s) => s.into(),
            DirectoryError::Random => GraphError::internal("random", "random source failed", false),
        }
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(target) = self.target {
            error["target"] = json!(target);
        }
        if let Some(id) = self.request_id {
            error["innerError"] = json!({"request-id": id});
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

pub async fn not_found_route() -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "Resource not found for the segment: this path is not part of the Gatepass Graph API.",
    )
}

pub async fn method_not_allowed() -> GraphError {
    GraphError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Request_BadRequest",
        "The HTTP method is not allowed on this resource.",
    )
}

/// Parses a JSON body into `T`; errors name the property and the problem.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<T, GraphError> {
    let body = body.map_err(|e| {
        GraphError::new(
            e.status(),
            "RequestBodyRead",
            "The request body is too large or could not be read.",
        )
    })?;
    if !crate::web::is_json(headers) {
        return Err(GraphError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BadRequest",
            "The request body must be JSON with Content-Type: application/json.",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            GraphError::bad_request(format!(
                "Invalid JSON in the request body: {}.",
                without_value(&inner)
            ))
        } else if path.to_ascii_lowercase().contains("password") {
            GraphError::bad_request(format!(
                "Invalid value for property '{path}': {}.",
                without_value(&inner)
            ))
        } else {
            GraphError::bad_request(format!("Invalid value for property '{path}': {inner}."))
        }
    })
}

/// serde's type errors quote the value they got (`invalid type: string
/// "…", expected …`). Where that value may be a secret (a password sent in
/// the wrong shape, or a whole body that is one string), keep only what was
/// expected (DESIGN §7: secrets never appear in error messages).
fn without_value(message: &str) -> String {
    match message.split_once(", expected ") {
        Some((_, expected)) => format!("the value has the wrong type; expected {expected}"),
        None => message.to_owned(),
    }
}
