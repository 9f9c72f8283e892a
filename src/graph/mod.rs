//! The Graph-compatible management API (DESIGN §2.6).
//!
//! Served under `/v1.0/` and `/beta/` with the same handlers, so scripts
//! written for Microsoft Graph work with the base URL swapped. Only access
//! tokens whose `aud` is `{issuer}/graph` are accepted: an RP's token can
//! never be replayed here. Every handler calls [`auth::Caller::require`]
//! explicitly with the permission its operation needs.

pub mod audit_logs;
pub mod auth;
pub mod batch;
pub mod combination_configurations;
pub mod conditional_access;
pub mod error;
pub mod fido2;
pub mod groups;
pub mod methods;
pub mod methods_policy;
pub mod requirements;
pub mod roles;
pub mod users;

use crate::app::AppState;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, delete, get, post};
use serde_json::{Map, Value};

/// A path extractor whose rejection (e.g. a segment that is not UTF-8) is a
/// Graph-shaped 400 instead of axum's plain-text one.
pub struct GraphPath<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for GraphPath<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = error::GraphError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| GraphPath(v))
            .map_err(|e| {
                error::GraphError::bad_request(format!("Invalid path segment: {}", e.body_text()))
            })
    }
}

/// Which API version a request came in on (for `@odata.context`).
#[derive(Debug, Clone, Copy)]
pub struct ApiVersion(pub &'static str);

pub fn router() -> Router<AppState> {
    Router::new()
        .nest("/v1.0", routes(ApiVersion("v1.0")))
        .nest("/beta", routes(ApiVersion("beta")))
        // `nest` leaves "/v1.0/" itself unmatched; answer it the Graph way
        // rather than with the site's empty 404.
        .route("/v1.0/", any(error::not_found_route))
        .route("/beta/", any(error::not_found_route))
        // DPoP (RFC 9449): the request's method, path and proof for
        // `Caller::from_headers`; challenges on a 401.
        .layer(axum::middleware::from_fn(
            crate::web::dpop::graph_request_scope,
        ))
}

/// Every Graph route, relative to the version (`/v1.0`, `/beta`). Each is
/// described in `/openapi.json`; a test holds the two to each other.
pub fn route_table() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/$batch", post(batch::batch)),
        ("/users", get(users::list).post(users::create)),
        (
            "/users/{id}",
            get(users::get).patch(users::update).delete(users::remove),
        ),
        (
            "/users/{id}/revokeSignInSessions",
            post(users::revoke_sign_in_sessions),
        ),
        ("/me", get(users::me)),
        ("/me/revokeSignInSessions", post(users::revoke_my_sessions)),
        (
            "/users/{id}/authentication/methods",
            get(methods::list_methods),
        ),
        (
            "/users/{id}/authentication/temporaryAccessPassMethods",
            get(methods::list_passes).post(methods::create_pass),
        ),
        (
            "/users/{id}/authentication/temporaryAccessPassMethods/{method}",
            get(methods::get_pass).delete(methods::delete_pass),
        ),
        ("/me/authentication/methods", get(methods::my_methods)),
        (
            "/users/{id}/authentication/requirements",
            get(requirements::get).patch(requirements::update),
        ),
        ("/users/{id}/authentication/fido2Methods", get(fido2::list)),
        (
            "/users/{id}/authentication/fido2Methods/{method}",
            get(fido2::get).delete(fido2::delete),
        ),
        ("/me/authentication/fido2Methods", get(fido2::list_mine)),
        (
            "/me/authentication/fido2Methods/{method}",
            get(fido2::get_mine).delete(fido2::delete_mine),
        ),
        (
            "/me/authentication/temporaryAccessPassMethods",
            get(methods::my_passes),
        ),
        (
            "/me/authentication/temporaryAccessPassMethods/{method}",
            get(methods::my_pass).delete(methods::delete_my_pass),
        ),
        (
            "/policies/authenticationMethodsPolicy",
            get(methods_policy::get_methods_policy).patch(methods_policy::update_methods_policy),
        ),
        (
            "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass",
            get(methods::get_policy).patch(methods::update_policy),
        ),
        (
            "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/Fido2",
            get(methods_policy::get_fido2).patch(methods_policy::update_fido2),
        ),
        ("/groups", get(groups::list).post(groups::create)),
        ("/groups/{id}", get(groups::get)),
        ("/groups/{id}/members", get(groups::members)),
        ("/groups/{id}/members/$ref", post(groups::add_member)),
        (
            "/groups/{id}/members/{member}/$ref",
            delete(groups::remove_member),
        ),
        (
            "/roleManagement/directory/roleAssignments",
            get(roles::list).post(roles::create),
        ),
        (
            "/roleManagement/directory/roleAssignments/{id}",
            get(roles::get).delete(roles::remove),
        ),
        (
            "/roleManagement/directory/roleDefinitions",
            get(roles::definitions),
        ),
        (
            "/identity/conditionalAccess/policies",
            get(conditional_access::list_policies).post(conditional_access::create_policy),
        ),
        (
            "/identity/conditionalAccess/policies/{id}",
            get(conditional_access::get_policy)
                .patch(conditional_access::update_policy)
                .delete(conditional_access::delete_policy),
        ),
        (
            "/identity/conditionalAccess/namedLocations",
            get(conditional_access::list_locations).post(conditional_access::create_location),
        ),
        (
            "/identity/conditionalAccess/namedLocations/{id}",
            get(conditional_access::get_location)
                .patch(conditional_access::update_location)
                .delete(conditional_access::delete_location),
        ),
        (
            "/identity/conditionalAccess/authenticationStrength/policies",
            get(conditional_access::list_strengths).post(conditional_access::create_strength),
        ),
        (
            "/identity/conditionalAccess/authenticationStrength/policies/{id}",
            get(conditional_access::get_strength)
                .patch(conditional_access::update_strength)
                .delete(conditional_access::delete_strength),
        ),
        (
            "/identity/conditionalAccess/authenticationStrength/policies/{id}/combinationConfigurations",
            get(combination_configurations::list_configurations)
                .post(combination_configurations::create_configuration),
        ),
        (
            "/identity/conditionalAccess/authenticationStrength/policies/{id}/combinationConfigurations/{configurationId}",
            get(combination_configurations::get_configuration)
                .patch(combination_configurations::update_configuration)
                .delete(combination_configurations::delete_configuration),
        ),
        (
            "/identity/conditionalAccess/evaluate",
            post(conditional_access::evaluate),
        ),
        ("/auditLogs/signIns", get(audit_logs::sign_ins)),
        (
            "/auditLogs/directoryAudits",
            get(audit_logs::directory_audits),
        ),
    ]
}

fn routes(version: ApiVersion) -> Router<AppState> {
    route_table()
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods)
        })
        .fallback(error::not_found_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::map_response(graph_shaped_failure))
        .layer(axum::Extension(version))
}

/// axum answers some failures itself, before or instead of our handlers: a
/// wrong method (405, empty body) or an undecodable path segment (400,
/// text). Graph clients parse `{"error":{…}}` on every failure, so any
/// non-JSON error is replaced by a Graph error with the same status (and
/// the `Allow` header kept). axum's own text is dropped: it may quote the
/// request.
async fn graph_shaped_failure(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            "Specified HTTP method is not allowed for the request target."
        }
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large.",
        _ => "The request could not be understood: a path segment or header could not be decoded.",
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut graph = error::GraphError::new(status, "Request_BadRequest", message).into_response();
    if let Some(allow) = allow {
        graph.headers_mut().insert(header::ALLOW, allow);
    }
    graph
}

/// `{"@odata.context": …, "value": [...]}` with `$top` paging.
pub fn collection(
    state: &AppState,
    version: ApiVersion,
    entity_set: &str,
    items: Vec<Value>,
    query: &ListQuery,
) -> Value {
    let total = items.len();
    let skip = query.offset().min(total);
    let take = query.page_size();
    let page: Vec<Value> = items.into_iter().skip(skip).take(take).collect();
    let next = (skip + page.len() < total).then(|| (skip + page.len()).to_string());
    page_body(state, version, entity_set, page, next.as_deref(), query)
}

/// One page of a collection read from the store a page at a time; `next`
/// is the opaque `$skiptoken` of the page after it.
pub fn page_body(
    state: &AppState,
    version: ApiVersion,
    entity_set: &str,
    page: Vec<Value>,
    next: Option<&str>,
    query: &ListQuery,
) -> Value {
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(format!(
            "{}/{}/$metadata#{entity_set}",
            state.settings.issuer, version.0
        )),
    );
    if let Some(token) = next {
        // The next page must answer the same query: carry the filter along.
        let filter = match &query.filter {
            Some((prop, value)) => {
                let clause = format!("{prop} eq '{}'", value.replace('\'', "''"));
                format!("&$filter={}", encode(&clause))
            }
            None => String::new(),
        };
        body.insert(
            "@odata.nextLink".into(),
            Value::String(format!(
                "{}/{}/{entity_set}?$top={}&$skiptoken={}{filter}",
                state.settings.issuer,
                version.0,
                query.page_size(),
                encode(token)
            )),
        );
    }
    body.insert("value".into(), Value::Array(page));
    Value::Object(body)
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Most entries one request reads while looking for `$top` that pass a
/// `$filter`; past it the page ends early, with a next link.
const MAX_SCANNED: usize = 5_000;

/// One page of a collection read from the store a batch at a time (a log,
/// the users) until `$top` entries pass the filter, the collection ends, or
/// [`MAX_SCANNED`] were read — never the whole collection.
pub async fn filtered_page<T, E, F, Fut>(
    top: usize,
    after: Option<String>,
    keep: impl Fn(&Value) -> bool,
    read: F,
) -> Result<Page, error::GraphError>
where
    T: serde::Serialize,
    F: Fn(Option<String>, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<(String, T)>, E>>,
    error::GraphError: From<E>,
{
    let mut items = Vec::with_capacity(top);
    let mut cursor = after;
    let mut scanned = 0;
    let next = loop {
        let batch = read(cursor.clone(), top).await?;
        let full = batch.len() == top;
        for (key, entry) in batch {
            scanned += 1;
            cursor = Some(key);
            let value = serde_json::to_value(entry)
                .map_err(|e| error::GraphError::internal("page.encode", &e.to_string(), false))?;
            if keep(&value) {
                items.push(value);
                if items.len() == top {
                    break;
                }
            }
        }
        if items.len() == top || (full && scanned >= MAX_SCANNED) {
            break cursor;
        }
        if !full {
            break None;
        }
    };
    Ok(Page { items, next })
}

/// A directory collection (users, groups, role assignments) as one Graph
/// page: read from the store a page at a time by `read(after, n)`, shaped
/// by `to_json`, then filtered and paged as `query` says.
pub async fn store_collection<T, F, Fut>(
    state: &AppState,
    version: ApiVersion,
    entity_set: &str,
    query: &ListQuery,
    read: F,
    to_json: fn(&T) -> Value,
) -> Result<Value, error::GraphError>
where
    F: Fn(Option<String>, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<(String, T)>, crate::directory::DirectoryError>>,
{
    let page = filtered_page(
        query.page_size(),
        query.skip_token.clone(),
        |v| query.matches(v),
        |after, n| {
            let rows = read(after, n);
            async move {
                rows.await.map(|rows| {
                    rows.iter()
                        .map(|(key, t)| (key.clone(), to_json(t)))
                        .collect::<Vec<_>>()
                })
            }
        },
    )
    .await?;
    Ok(page_body(
        state,
        version,
        entity_set,
        page.items,
        page.next.as_deref(),
        query,
    ))
}

/// One page, and the store cursor of the next.
pub struct Page {
    pub items: Vec<Value>,
    pub next: Option<String>,
}

/// The OData query options Gatepass understands on collections.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub top: Option<usize>,
    /// `$skiptoken` as sent: an offset for in-memory collections, a store
    /// key for those read a page at a time.
    pub skip_token: Option<String>,
    /// A single `property eq 'value'` clause.
    pub filter: Option<(String, String)>,
}

/// Longest `$skiptoken` accepted (a store key).
const MAX_SKIP_TOKEN: usize = 512;

impl ListQuery {
    /// `$top`, or Graph's default page of 100.
    pub fn page_size(&self) -> usize {
        self.top.unwrap_or(100)
    }

    /// Parses `$top`, `$skiptoken` and a simple `$filter`; anything else is
    /// a 400 that names the option.
    pub fn parse(raw: Option<&str>) -> Result<ListQuery, error::GraphError> {
        let q = Self::parse_paged(raw)?;
        if q.skip_token
            .as_deref()
            .is_some_and(|t| t.parse::<usize>().is_err())
        {
            return Err(error::GraphError::bad_request("Invalid $skiptoken."));
        }
        Ok(q)
    }

    /// [`ListQuery::parse`] for collections paged by store key, whose
    /// `$skiptoken` is opaque.
    pub fn parse_paged(raw: Option<&str>) -> Result<ListQuery, error::GraphError> {
        let mut q = ListQuery::default();
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "$top" => {
                    let n: usize = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=999).contains(n))
                        .ok_or_else(|| {
                            error::GraphError::bad_request(
                                "Invalid value for $top: it must be an integer from 1 to 999.",
                            )
                        })?;
                    q.top = Some(n);
                }
                "$skiptoken" => {
                    if v.len() > MAX_SKIP_TOKEN {
                        return Err(error::GraphError::bad_request("Invalid $skiptoken."));
                    }
                    q.skip_token = Some(v.into_owned());
                }
                "$filter" => q.filter = Some(parse_eq_filter(&v)?),
                "$count" | "$select" | "$orderby" => {} // accepted, not applied
                other => {
                    return Err(error::GraphError::bad_request(format!(
                        "Query option '{other}' is not supported."
                    )));
                }
            }
        }
        Ok(q)
    }

    /// The offset `$skiptoken` names (collections held in memory).
    pub fn offset(&self) -> usize {
        self.skip_token
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
    }

    /// Whether `item` passes the filter (`property eq 'value'`).
    pub fn matches(&self, item: &Value) -> bool {
        match &self.filter {
            None => true,
            Some((prop, value)) => item
                .get(prop)
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(value)),
        }
    }
}

fn parse_eq_filter(f: &str) -> Result<(String, String), error::GraphError> {
    let bad = || {
        error::GraphError::bad_request(format!(
            "Unsupported $filter '{f}': only \"property eq 'value'\" is supported."
        ))
    };
    let (prop, rest) = f.trim().split_once(' ').ok_or_else(bad)?;
    let rest = rest
        .trim_start()
        .strip_prefix("eq ")
        .ok_or_else(bad)?
        .trim();
    let value = rest
        .strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .ok_or_else(bad)?;
    Ok((prop.to_owned(), value.replace("''", "'")))
}

/// Records a directory-audit event for a change made through the API. A
/// failure to log is logged, not returned: the change already happened.
pub async fn record_change(
    state: &AppState,
    caller: &auth::Caller,
    activity: &str,
    category: &str,
    target: crate::audit::TargetResource,
    details: Vec<crate::audit::KeyValue>,
    now: time::OffsetDateTime,
) {
    let Ok(entry) = crate::audit::DirectoryAudit::success(
        activity,
        category,
        caller.initiator(),
        target,
        details,
        now,
    ) else {
        return;
    };
    if let Err(e) = state.audit.record_directory(&entry).await {
        tracing::error!(error = %e, activity, "could not write the directory audit");
    }
}
