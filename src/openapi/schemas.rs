//! The JSON bodies the API answers with, as OpenAPI schemas.
//!
//! Handlers build Graph's JSON with `json!`, so these types describe it
//! rather than produce it: they are never constructed. They are kept honest
//! by `tests/it/openapi.rs`, which checks live responses of every kind
//! against them (closed objects: an undocumented property fails), and by the
//! schema fuzzer in `.ci/run`.
#![allow(dead_code)]

use serde::Serialize;
use utoipa::ToSchema;

/// Graph's error body: `{"error": {"code", "message", "target"?, "innerError"?}}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphErrorBody {
    error: GraphErrorDetail,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GraphErrorDetail {
    /// e.g. `Request_ResourceNotFound`, `Authorization_RequestDenied`.
    code: String,
    message: String,
    /// The property the error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    /// Present on internal errors: the id under which the log has the detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    inner_error: Option<InnerError>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InnerError {
    #[serde(rename = "request-id")]
    request_id: String,
}

/// A page of a collection. `@odata.nextLink` is the URL of the next page.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Collection<T: ToSchema> {
    #[serde(rename = "@odata.context")]
    context: String,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    value: Vec<T>,
}

/// `{"value": true}`, the answer of an action such as `revokeSignInSessions`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BooleanValue {
    value: bool,
}

/// Graph `user`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct User {
    /// `#microsoft.graph.user` where a collection mixes object types (a group's members).
    #[serde(rename = "@odata.type", skip_serializing_if = "Option::is_none")]
    odata_type: Option<String>,
    #[schema(format = Uuid)]
    id: String,
    user_principal_name: String,
    display_name: String,
    mail: Option<String>,
    account_enabled: bool,
    #[schema(format = DateTime)]
    created_date_time: String,
}

/// Graph `group` (security groups only).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Group {
    #[schema(format = Uuid)]
    id: String,
    display_name: String,
    description: Option<String>,
    mail_nickname: Option<String>,
    mail_enabled: bool,
    security_enabled: bool,
    group_types: Vec<String>,
    #[schema(format = DateTime)]
    created_date_time: String,
}

/// Graph `unifiedRoleAssignment`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleAssignment {
    #[serde(rename = "@odata.type")]
    odata_type: String,
    id: String,
    /// The role's template id.
    role_definition_id: String,
    #[schema(format = Uuid)]
    principal_id: String,
    directory_scope_id: String,
}

/// Graph `unifiedRoleDefinition` (the built-in roles Gatepass knows).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleDefinition {
    id: String,
    template_id: String,
    display_name: String,
    is_built_in: bool,
    is_enabled: bool,
}

/// Graph `temporaryAccessPassAuthenticationMethod`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemporaryAccessPassMethod {
    #[serde(rename = "@odata.type")]
    odata_type: String,
    id: String,
    #[schema(format = DateTime)]
    created_date_time: String,
    #[schema(format = DateTime)]
    start_date_time: String,
    lifetime_in_minutes: u32,
    is_usable_once: bool,
    is_usable: bool,
    /// `EnabledByPolicy`, `DisabledByPolicy`, `Expired`, `NotYetValid`, `OneTimeUsed`.
    method_usability_reason: String,
    /// The pass itself: only in the answer to its creation, `null` after.
    temporary_access_pass: Option<String>,
}

/// Graph `fido2AuthenticationMethod` (a passkey).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fido2Method {
    #[serde(rename = "@odata.type")]
    odata_type: String,
    id: String,
    display_name: Option<String>,
    #[schema(format = DateTime)]
    created_date_time: Option<String>,
    aa_guid: Option<String>,
    model: Option<String>,
    attestation_certificates: Vec<String>,
    attestation_level: String,
}

/// Graph `passwordAuthenticationMethod` (the password is never returned).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordMethod {
    #[serde(rename = "@odata.type")]
    odata_type: String,
    id: String,
    password: Option<String>,
    created_date_time: Option<String>,
}

/// One of a user's authentication methods.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum AuthenticationMethod {
    Password(PasswordMethod),
    Fido2(Fido2Method),
    TemporaryAccessPass(TemporaryAccessPassMethod),
}

/// `strongAuthenticationRequirements` (beta): the per-user MFA state.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticationRequirements {
    #[serde(rename = "@odata.context")]
    context: String,
    per_user_mfa_state: PerUserMfaState,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum PerUserMfaState {
    Disabled,
    Enabled,
    Enforced,
}

/// Graph `temporaryAccessPassAuthenticationMethodConfiguration`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemporaryAccessPassConfiguration {
    #[serde(rename = "@odata.context")]
    context: String,
    #[serde(rename = "@odata.type")]
    odata_type: String,
    id: String,
    state: MethodState,
    default_lifetime_in_minutes: u32,
    default_length: u32,
    minimum_lifetime_in_minutes: u32,
    maximum_lifetime_in_minutes: u32,
    is_usable_once: bool,
    include_targets: Vec<MethodTarget>,
    exclude_targets: Vec<MethodTarget>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum MethodState {
    Enabled,
    Disabled,
}

/// Graph `fido2AuthenticationMethodConfiguration`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fido2Configuration {
    #[serde(rename = "@odata.context")]
    context: String,
    #[serde(rename = "@odata.type")]
    odata_type: String,
    id: String,
    state: MethodState,
    is_self_service_registration_allowed: bool,
    is_attestation_enforced: bool,
    key_restrictions: Fido2KeyRestrictions,
    include_targets: Vec<MethodTarget>,
    exclude_targets: Vec<MethodTarget>,
}

/// Graph `fido2KeyRestrictions`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fido2KeyRestrictions {
    is_enforced: bool,
    enforcement_type: Fido2Enforcement,
    /// Lower-case AAGUIDs.
    aa_guids: Vec<String>,
}

/// Graph `fido2RestrictionEnforcementType`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Fido2Enforcement {
    Allow,
    Block,
}

/// Graph `authenticationMethodsPolicy`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticationMethodsPolicy {
    #[serde(rename = "@odata.context")]
    context: String,
    id: String,
    display_name: String,
    description: String,
    policy_version: String,
    policy_migration_state: String,
    registration_enforcement: RegistrationEnforcement,
    #[serde(rename = "authenticationMethodConfigurations@odata.context")]
    configurations_context: String,
    /// The Temporary Access Pass and passkey (`Fido2`) configurations.
    authentication_method_configurations: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Graph `registrationEnforcement`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrationEnforcement {
    authentication_methods_registration_campaign: RegistrationCampaign,
}

/// Graph `authenticationMethodsRegistrationCampaign`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrationCampaign {
    state: CampaignState,
    /// 0–14.
    snooze_duration_in_days: u32,
    enforce_registration_after_allowed_snoozes: bool,
    include_targets: Vec<CampaignIncludeTarget>,
    exclude_targets: Vec<ExcludeTarget>,
}

/// Graph `advancedConfigState`; `default` behaves as `disabled` in Gatepass.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum CampaignState {
    Default,
    Enabled,
    Disabled,
}

/// Graph `authenticationMethodsRegistrationCampaignIncludeTarget`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CampaignIncludeTarget {
    /// A group id, a user id, or `all_users`.
    id: String,
    /// `group` or `user`.
    target_type: String,
    /// `fido2` (or `passkey`).
    targeted_authentication_method: String,
}

/// Graph `excludeTarget`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExcludeTarget {
    id: String,
    /// `group` or `user`.
    target_type: String,
}

/// Who a method policy applies to: a group's id, or `all_users`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MethodTarget {
    id: String,
    target_type: String,
    is_registration_required: bool,
}

/// Graph `conditionalAccessPolicy`, as stored (Graph's full shape; the
/// properties Gatepass evaluates are listed in the README).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionalAccessPolicy {
    id: String,
    display_name: String,
    /// `enabled`, `disabled` or `enabledForReportingButNotEnforced`.
    state: String,
    conditions: serde_json::Map<String, serde_json::Value>,
    grant_controls: Option<serde_json::Map<String, serde_json::Value>>,
    session_controls: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Graph `ipNamedLocation` or `countryNamedLocation`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamedLocation {
    #[serde(rename = "@odata.type")]
    odata_type: String,
    id: String,
    display_name: String,
}

/// Graph `authenticationStrengthPolicy`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationStrength {
    id: String,
    display_name: String,
    /// e.g. `password,microsoftAuthenticatorPush`, `fido2`, `temporaryAccessPassOneTime`.
    allowed_combinations: Vec<String>,
}

/// Graph `authenticationCombinationConfiguration`: in practice
/// `fido2CombinationConfiguration`, the passkey models (AAGUIDs) a
/// combination with `fido2` accepts. (`allowedIssuerSkis` and
/// `allowedPolicyOIDs` belong to `x509CertificateCombinationConfiguration`,
/// which is stored when a strength is written with one, never evaluated.)
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CombinationConfiguration {
    /// `#microsoft.graph.fido2CombinationConfiguration`.
    #[serde(rename = "@odata.type")]
    odata_type: String,
    id: String,
    /// Entries of the strength's `allowedCombinations`, e.g. `fido2`.
    applies_to_combinations: Vec<String>,
    #[serde(rename = "allowedAAGUIDs", skip_serializing_if = "Option::is_none")]
    allowed_aaguids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_issuer_skis: Option<Vec<String>>,
    #[serde(rename = "allowedPolicyOIDs", skip_serializing_if = "Option::is_none")]
    allowed_policy_oids: Option<Vec<String>>,
}

/// A `fido2CombinationConfiguration` to create (`@odata.type`,
/// `appliesToCombinations` and `allowedAAGUIDs` required) or the
/// properties to change.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CombinationConfigurationInput {
    /// `#microsoft.graph.fido2CombinationConfiguration`.
    #[serde(rename = "@odata.type")]
    odata_type: Option<String>,
    applies_to_combinations: Option<Vec<String>>,
    /// AAGUIDs (UUIDs) of the passkey models allowed.
    #[serde(rename = "allowedAAGUIDs")]
    allowed_aaguids: Option<Vec<String>>,
}

/// A conditional-access object in a request body: a policy, a named location
/// or a strength, in Graph's JSON (validated against the stored set).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionalAccessObject {
    display_name: Option<String>,
}

/// What-If input (Graph beta `evaluate`): the user, the sign-in, and
/// optionally the methods it used.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfRequest {
    /// `{"@odata.type": "#microsoft.graph.userSignIn", "userId": "<id or UPN>"}`.
    sign_in_identity: serde_json::Map<String, serde_json::Value>,
    /// `applicationContext` (`includeApplications`), `userActionContext`
    /// (`userAction`) or `authContext` (`authenticationContextValue`).
    sign_in_context: serde_json::Map<String, serde_json::Value>,
    /// `clientAppType`, `devicePlatform`, `ipAddress`, `country`, risk levels, `deviceInfo`.
    sign_in_conditions: Option<serde_json::Map<String, serde_json::Value>>,
    applied_policies_only: Option<bool>,
    /// Graph `authenticationMethodModes`, e.g. `["temporaryAccessPassOneTime"]`.
    authentication_methods: Option<Vec<String>>,
    #[schema(format = DateTime)]
    authenticated_date_time: Option<String>,
}

/// What-If output: every policy's analysis and the decision.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WhatIfResponse {
    /// Each policy with `policyApplies`, `analysisReasons`, `reportOnly`,
    /// `requirement` and `satisfied` added.
    value: Vec<serde_json::Map<String, serde_json::Value>>,
    decision: WhatIfDecision,
    unmet_requirements: Vec<serde_json::Map<String, serde_json::Value>>,
    blocked_by: Vec<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum WhatIfDecision {
    Allow,
    StepUp,
    Block,
}

/// Graph `signIn`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignIn {
    id: String,
    #[schema(format = DateTime)]
    created_date_time: String,
    user_id: Option<String>,
    user_principal_name: String,
    user_display_name: Option<String>,
    app_id: String,
    app_display_name: String,
    ip_address: String,
    /// `operatingSystem` and `browser`, from the `User-Agent`.
    device_detail: Option<serde_json::Map<String, serde_json::Value>>,
    client_app_used: String,
    status: SignInStatus,
    authentication_details: Vec<AuthenticationDetail>,
    /// The log names of the methods that succeeded.
    authentication_methods_used: Vec<String>,
    /// `singleFactorAuthentication` or `multiFactorAuthentication`.
    authentication_requirement: Option<String>,
    conditional_access_status: String,
    applied_conditional_access_policies: Vec<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInStatus {
    /// 0 on success.
    error_code: u32,
    failure_reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationDetail {
    authentication_method: String,
    authentication_method_detail: Option<String>,
    succeeded: bool,
    #[schema(format = DateTime)]
    authentication_step_date_time: String,
    /// `Primary authentication` or `Multi-factor authentication`.
    authentication_step_requirement: Option<String>,
}

/// Graph `directoryAudit`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryAudit {
    id: String,
    #[schema(format = DateTime)]
    activity_date_time: String,
    activity_display_name: String,
    category: String,
    /// `success` or `failure`.
    result: String,
    /// Why it failed; empty on success.
    result_reason: String,
    /// `{"user": {...}}` or `{"app": {...}}`.
    initiated_by: serde_json::Map<String, serde_json::Value>,
    target_resources: Vec<serde_json::Map<String, serde_json::Value>>,
    additional_details: Vec<KeyValue>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyValue {
    key: String,
    value: String,
}

// --- OAuth 2.0 and OpenID Connect ----------------------------------------

/// An OAuth error (RFC 6749 §5.2).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthErrorBody {
    /// e.g. `invalid_grant`, `invalid_client`, `invalid_request`.
    error: String,
    error_description: Option<String>,
}

/// A token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenResponse {
    access_token: String,
    /// `Bearer`.
    token_type: String,
    expires_in: i64,
    scope: String,
    id_token: Option<String>,
    refresh_token: Option<String>,
}

/// A token request: `grant_type` `authorization_code` (with `code`,
/// `redirect_uri`, `code_verifier`), `refresh_token` (with
/// `refresh_token`, optional `scope`), `client_credentials` (optional
/// `scope`) or `urn:ietf:params:oauth:grant-type:device_code` (with
/// `device_code`); client credentials in HTTP Basic or the body.
#[derive(Serialize, ToSchema)]
pub struct TokenRequest {
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    device_code: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` (private_key_jwt).
    client_assertion_type: Option<String>,
    /// A JWT signed with the client's key (RFC 7523 §2.2).
    client_assertion: Option<String>,
}

/// A device authorization request (RFC 8628 §3.1); client credentials in
/// HTTP Basic or the body, as at the token endpoint.
#[derive(Serialize, ToSchema)]
pub struct DeviceAuthorizationRequest {
    client_id: Option<String>,
    client_secret: Option<String>,
    /// `openid` and any of `profile`, `email`, `offline_access`, Graph scopes.
    scope: Option<String>,
}

/// A device authorization response (RFC 8628 §3.2). Poll the token
/// endpoint with `grant_type=urn:ietf:params:oauth:grant-type:device_code`
/// and `device_code`, no faster than every `interval` seconds.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceAuthorizationResponse {
    device_code: String,
    /// `XXXX-XXXX`, letters of `BCDFGHJKLMNPQRSTVWXZ`; case and hyphens
    /// are ignored when entered.
    user_code: String,
    /// `{issuer}/device`.
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: i64,
    interval: i64,
}

/// An authorization request (OIDC Core §3.1.2.1), as a form.
#[derive(Serialize, ToSchema)]
pub struct AuthorizationRequest {
    /// `code`.
    response_type: String,
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    /// `S256`.
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<u32>,
    login_hint: Option<String>,
    acr_values: Option<String>,
    id_token_hint: Option<String>,
}

/// An RP-initiated logout request, as a form.
#[derive(Serialize, ToSchema)]
pub struct LogoutRequest {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

/// A token to revoke or introspect (RFC 7009 §2.1, RFC 7662 §2.1).
#[derive(Serialize, ToSchema)]
pub struct TokenReference {
    token: String,
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` (private_key_jwt).
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// A pushed authorization request (RFC 9126 §2.1): the parameters of an
/// authorization request, and client authentication as at the token
/// endpoint (HTTP Basic, `client_secret`, or `client_assertion`).
#[derive(Serialize, ToSchema)]
pub struct PushedAuthorizationRequest {
    /// `code`.
    response_type: String,
    client_id: Option<String>,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    /// `S256`.
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<u32>,
    login_hint: Option<String>,
    acr_values: Option<String>,
    claims: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// RFC 9126 §2.2: send `request_uri` with `client_id` to `/authorize`,
/// once, within `expires_in` seconds.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushedAuthorizationResponse {
    /// `urn:ietf:params:oauth:request_uri:…`
    request_uri: String,
    expires_in: i64,
}

/// Client metadata for dynamic registration (RFC 7591 §2) and its update
/// (RFC 7592 §2.2, which also sends `client_id` and may send the current
/// `client_secret`). Other metadata is ignored; `app_permissions`,
/// `delegated_permissions` and `introspect_all_tokens` are refused.
#[derive(Serialize, ToSchema)]
pub struct ClientRegistrationRequest {
    /// https, or http on a loopback host; no fragment; matched exactly.
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    /// `authorization_code` (default), `refresh_token`, `client_credentials`,
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    grant_types: Option<Vec<String>>,
    /// `["code"]` exactly when `grant_types` has `authorization_code`.
    response_types: Option<Vec<String>>,
    /// `client_secret_basic` (default), `client_secret_post`,
    /// `private_key_jwt` (with `jwks` or `jwks_uri`) or `none` (public).
    token_endpoint_auth_method: Option<String>,
    client_name: Option<String>,
    /// A JWK Set (`{"keys": [...]}`) of public keys, for `private_key_jwt`.
    jwks: Option<serde_json::Map<String, serde_json::Value>>,
    jwks_uri: Option<String>,
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: Option<bool>,
    dpop_bound_access_tokens: Option<bool>,
    require_pushed_authorization_requests: Option<bool>,
    /// RFC 7592 update only: the client's id.
    client_id: Option<String>,
    /// RFC 7592 update only: the current secret, if sent.
    client_secret: Option<String>,
}

/// A registered client (RFC 7591 §3.2.1, RFC 7592 §3): its id, the
/// secrets of the answer that issued them, and its metadata with the
/// defaults filled in.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInformation {
    client_id: String,
    /// Only in the answer that issued it.
    client_secret: Option<String>,
    client_id_issued_at: i64,
    /// 0 (never) for a client with a secret.
    client_secret_expires_at: Option<i64>,
    /// Only in the registration answer.
    registration_access_token: Option<String>,
    registration_client_uri: String,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    response_types: Vec<String>,
    token_endpoint_auth_method: String,
    client_name: Option<String>,
    jwks: Option<serde_json::Map<String, serde_json::Value>>,
    jwks_uri: Option<String>,
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
    dpop_bound_access_tokens: bool,
    require_pushed_authorization_requests: bool,
}

/// RFC 7662 §2.2; an inactive or foreign token is just `{"active": false}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Introspection {
    active: bool,
    token_type: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    sub: Option<String>,
    aud: Option<serde_json::Value>,
    iss: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
    username: Option<String>,
    acr: Option<String>,
    amr: Option<Vec<String>>,
}

/// OpenID Connect claims about the signed-in user (OIDC Core §5.3.2).
#[derive(Serialize, ToSchema)]
pub struct UserInfo {
    sub: String,
    name: Option<String>,
    preferred_username: Option<String>,
    email: Option<String>,
}

/// OpenID Provider metadata (OIDC Discovery §3).
#[derive(Serialize, ToSchema)]
pub struct ProviderMetadata {
    issuer: String,
    /// RFC 7591: only while registration is on.
    registration_endpoint: Option<String>,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    response_types_supported: Vec<String>,
    subject_types_supported: Vec<String>,
    id_token_signing_alg_values_supported: Vec<String>,
}

/// The signing keys (RFC 7517 JWK Set).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JwkSet {
    keys: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// `/healthz` and `/readyz`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    status: String,
    /// `ok` or `unreachable` (readiness only).
    store: Option<String>,
    /// `ok` or `missing` (readiness only).
    keys: Option<String>,
}
