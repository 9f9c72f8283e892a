//! `POST /$batch`: Graph JSON batching (DESIGN §2.10).
//!
//! Each inner request is dispatched through the Graph router itself, with
//! the batch's own bearer token, so it is authenticated, authorized,
//! validated and audited exactly as if it had been sent alone; its failure
//! is its own response. Requests run one after another: in the order
//! `dependsOn` allows, otherwise in the order given. A request whose
//! dependency did not succeed is answered 424 and not run.

use super::ApiVersion;
use super::auth::Caller;
use super::error::{GraphError, parse_json};
use crate::app::AppState;
use axum::Extension;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use tower::ServiceExt;

/// Graph's limit.
pub const MAX_REQUESTS: usize = 20;

/// The largest inner response body carried back (Graph pages are far
/// smaller; this bounds what one batch can hold in memory).
const MAX_INNER_BODY: usize = 4 * 1024 * 1024;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// At most 20.
    requests: Vec<BatchItem>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchItem {
    /// Unique within the batch; the response carries it back.
    id: String,
    /// `GET`, `POST`, `PATCH`, `PUT` or `DELETE`.
    method: String,
    /// Relative to the version, e.g. `/users?$top=5` or `users/{id}`.
    url: String,
    /// Request headers; `Content-Type` is required with a body.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<Value>,
    /// Ids of requests that must succeed before this one runs.
    #[serde(default)]
    depends_on: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// One per request, in the order of the requests.
    responses: Vec<BatchItemResponse>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchItemResponse {
    id: String,
    status: u16,
    headers: BTreeMap<String, String>,
    /// The inner response's JSON body; absent when it had none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    body: Option<Value>,
}

#[utoipa::path(post, path = "/v1.0/$batch", operation_id = "batch", tag = "batch",
    description = "Graph JSON batching: up to 20 requests in one. Each is authorized as if \
                   sent alone, with this request's token; each answers with its own status.",
    request_body(content = BatchRequest, content_type = "application/json"),
    responses((status = 200, description = "One response per request", body = BatchResponse)))]
pub async fn batch(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<BatchResponse>, GraphError> {
    // The batch itself needs a valid token: without one, nothing is parsed
    // or fanned out.
    Caller::from_headers(&state, &headers, state.clock.now()).await?;
    let request: BatchRequest = parse_json(&headers, body)?;
    let order = plan(&request.requests)?;
    let graph = super::router().with_state(state);
    let authorization = headers.get(header::AUTHORIZATION).cloned();

    let mut outcomes: HashMap<&str, u16> = HashMap::new();
    let mut responses: Vec<Option<BatchItemResponse>> =
        (0..request.requests.len()).map(|_| None).collect();
    for index in order {
        let item = &request.requests[index];
        let failed = item.depends_on.iter().find(|d| {
            outcomes
                .get(d.as_str())
                .is_none_or(|s| !(200..300).contains(s))
        });
        let response = match failed {
            Some(dependency) => failed_dependency(item, dependency).await,
            None => match inner_request(item, version, authorization.as_ref()) {
                Ok(request) => run(&graph, &item.id, request).await,
                Err(e) => answer(&item.id, e.into_response()).await,
            },
        };
        outcomes.insert(&item.id, response.status);
        responses[index] = Some(response);
    }
    Ok(Json(BatchResponse {
        responses: responses.into_iter().flatten().collect(),
    }))
}

/// Checks the batch as a whole (size, ids, dependencies) and returns the
/// order to run it in: each request after its dependencies, otherwise as
/// given. A malformed batch is refused whole.
fn plan(items: &[BatchItem]) -> Result<Vec<usize>, GraphError> {
    if items.is_empty() {
        return Err(GraphError::invalid_property(
            "requests",
            "A batch needs at least one request.",
        ));
    }
    if items.len() > MAX_REQUESTS {
        return Err(GraphError::invalid_property(
            "requests",
            format!(
                "A batch holds at most {MAX_REQUESTS} requests; this one has {}.",
                items.len()
            ),
        ));
    }
    let mut position = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        if item.id.is_empty() || item.id.len() > 64 {
            return Err(GraphError::invalid_property(
                "requests.id",
                "Each request needs an id of 1 to 64 characters.",
            ));
        }
        if position.insert(item.id.as_str(), i).is_some() {
            return Err(GraphError::invalid_property(
                "requests.id",
                format!("The id '{}' is used by more than one request.", item.id),
            ));
        }
    }
    for item in items {
        for d in &item.depends_on {
            if !position.contains_key(d.as_str()) {
                return Err(GraphError::invalid_property(
                    "requests.dependsOn",
                    format!(
                        "Request '{}' depends on '{d}', which is not in the batch.",
                        item.id
                    ),
                ));
            }
        }
    }
    // Kahn's algorithm, always taking the earliest ready request.
    let mut waiting: Vec<usize> = items.iter().map(|i| i.depends_on.len()).collect();
    let mut done = vec![false; items.len()];
    let mut order = Vec::with_capacity(items.len());
    while order.len() < items.len() {
        let Some(next) = (0..items.len()).find(|&i| !done[i] && waiting[i] == 0) else {
            return Err(GraphError::invalid_property(
                "requests.dependsOn",
                "The requests' dependencies form a cycle.",
            ));
        };
        done[next] = true;
        order.push(next);
        for (i, item) in items.iter().enumerate() {
            waiting[i] -= item
                .depends_on
                .iter()
                .filter(|d| position[d.as_str()] == next)
                .count();
        }
    }
    Ok(order)
}

/// The inner request as the Graph router receives it, or why it is not one.
fn inner_request(
    item: &BatchItem,
    version: ApiVersion,
    authorization: Option<&HeaderValue>,
) -> Result<Request<Body>, GraphError> {
    let method = match item.method.to_ascii_uppercase().as_str() {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PATCH" => Method::PATCH,
        "PUT" => Method::PUT,
        "DELETE" => Method::DELETE,
        _ => {
            return Err(GraphError::invalid_property(
                "method",
                format!("Method '{}' is not supported in a batch.", item.method),
            ));
        }
    };
    let relative = item.url.trim_start_matches('/');
    let segment = relative.split(['/', '?']).next().unwrap_or_default();
    if relative.contains("://") || segment == "v1.0" || segment == "beta" || segment == "$batch" {
        return Err(GraphError::invalid_property(
            "url",
            "The url must be relative to the version of the batch (e.g. '/users'), and a batch cannot hold another.",
        ));
    }
    // Graph's clients write batch URLs as text (`$filter=city eq null`):
    // what a URI cannot hold is percent-encoded, as a client would.
    let uri = format!("/{}/{}", version.0, uri_safe(relative));
    let mut builder = Request::builder().method(method).uri(&uri);
    if let Some(a) = authorization {
        builder = builder.header(header::AUTHORIZATION, a);
    }
    let mut content_type = None;
    for (name, value) in &item.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            GraphError::invalid_property("headers", format!("'{name}' is not a header name."))
        })?;
        // The batch's own token and framing apply, never the item's.
        if matches!(
            name,
            header::AUTHORIZATION | header::HOST | header::CONTENT_LENGTH | header::COOKIE
        ) {
            continue;
        }
        let value = HeaderValue::from_str(value).map_err(|_| {
            GraphError::invalid_property("headers", format!("The value of '{name}' is not valid."))
        })?;
        if name == header::CONTENT_TYPE {
            content_type = Some(value.clone());
        }
        builder = builder.header(name, value);
    }
    let body = match &item.body {
        None => Body::empty(),
        Some(_) if content_type.is_none() => {
            return Err(GraphError::invalid_property(
                "headers",
                "A request with a body needs a Content-Type header (e.g. application/json).",
            ));
        }
        Some(value) => Body::from(value.to_string()),
    };
    builder.body(body).map_err(|_| {
        GraphError::invalid_property("url", format!("'{}' is not a valid url.", item.url))
    })
}

/// `s` with every byte a URI cannot hold (spaces, quotes, non-ASCII…)
/// percent-encoded; `%` escapes already there are kept.
fn uri_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~:/?@!$&'()*+,;=%".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn run(graph: &axum::Router, id: &str, request: Request<Body>) -> BatchItemResponse {
    match graph.clone().oneshot(request).await {
        Ok(response) => answer(id, response).await,
        Err(never) => match never {},
    }
}

/// An inner response as the batch carries it: status, the headers a
/// client acts on, the JSON body.
async fn answer(id: &str, response: Response) -> BatchItemResponse {
    let status = response.status();
    let mut headers = BTreeMap::new();
    for (name, canonical) in [
        (header::CONTENT_TYPE, "Content-Type"),
        (header::LOCATION, "Location"),
        (header::RETRY_AFTER, "Retry-After"),
    ] {
        if let Some(v) = response.headers().get(&name).and_then(|v| v.to_str().ok()) {
            headers.insert(canonical.to_owned(), v.to_owned());
        }
    }
    let body = match axum::body::to_bytes(response.into_body(), MAX_INNER_BODY).await {
        Ok(b) if b.is_empty() => None,
        Ok(b) => Some(
            serde_json::from_slice(&b)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&b).into_owned())),
        ),
        Err(_) => {
            let e = GraphError::internal("batch.body", "an inner response was too large", false);
            return Box::pin(answer(id, e.into_response())).await;
        }
    };
    BatchItemResponse {
        id: id.to_owned(),
        status: status.as_u16(),
        headers,
        body,
    }
}

async fn failed_dependency(item: &BatchItem, dependency: &str) -> BatchItemResponse {
    let e = GraphError::new(
        StatusCode::FAILED_DEPENDENCY,
        "FailedDependency",
        format!(
            "Request '{}' was not run: request '{dependency}', which it depends on, did not succeed.",
            item.id
        ),
    );
    answer(&item.id, e.into_response()).await
}
