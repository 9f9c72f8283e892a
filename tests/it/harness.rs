//! `TestApp`: a real Gatepass on a loopback port (embedded store in a temp
//! dir, temporary keys, a manual clock), plus a cookie-keeping `Browser`
//! that fills in the sign-in pages the way a person would (plain HTML forms,
//! no JavaScript), and the relying-party client built from discovery.

use gatepass::app::AppState;
use gatepass::clock::{Clock, ManualClock, SystemClock};
use gatepass::config::Settings;
use gatepass::store::Store;
use gatepass::store::embedded::EmbeddedStore;
use openidconnect::core::{CoreClient, CoreProviderMetadata};
use openidconnect::{
    ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, RedirectUrl,
};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tempfile::TempDir;

pub const RP_ID: &str = "rp";
pub const RP_SECRET: &str = "rp-secret-0123456789";
pub const RP_REDIRECT: &str = "http://127.0.0.1:9000/callback";
pub const RP_LOGOUT_REDIRECT: &str = "http://127.0.0.1:9000/";
pub const SPA_ID: &str = "spa";
pub const AUTOMATION_ID: &str = "automation";
pub const AUTOMATION_SECRET: &str = "automation-secret-0123456789";
pub const TAP_WRITER_ID: &str = "tap-writer";
pub const TAP_WRITER_SECRET: &str = "tap-writer-secret-0123456789";
pub const TAP_READER_ID: &str = "tap-reader";
pub const TAP_READER_SECRET: &str = "tap-reader-secret-0123456789";
pub const READER_APP_ID: &str = "reader";
/// An app holding `User.ReadWrite.All` and nothing else.
pub const USER_WRITER_ID: &str = "user-writer";
pub const USER_WRITER_SECRET: &str = "user-writer-secret-0123456789";
/// A resource server allowed to introspect every client's tokens.
pub const INTROSPECTOR_ID: &str = "introspector";
pub const INTROSPECTOR_SECRET: &str = "introspector-secret-0123456789";
pub const READER_APP_SECRET: &str = "reader-secret-0123456789";

pub type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

pub struct TestApp {
    pub state: AppState,
    pub clock: ManualClock,
    pub issuer: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    /// Holds the store file and keys for the test's lifetime.
    #[allow(dead_code)]
    pub dir: TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn config_text(issuer: &str, dir: &Path) -> String {
    format!(
        r#"
issuer = "{issuer}"
listen = "127.0.0.1:0"
[store]
backend = "embedded"
path = "{store}"
[keys]
dir = "{keys}"
[throttling]
max_failures = 5
max_failures_per_source = 20
window_minutes = 15
lockout_minutes = 5
max_lockout_minutes = 60
[password_hashing]
memory_kib = 64
iterations = 1
parallelism = 1

[[clients]]
client_id = "{RP_ID}"
client_secret = "{RP_SECRET}"
redirect_uris = ["{RP_REDIRECT}"]
post_logout_redirect_uris = ["{RP_LOGOUT_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]
delegated_permissions = ["User.Read", "User.ReadWrite.All", "AuditLog.Read.All", "Group.ReadWrite.All", "RoleManagement.ReadWrite.Directory", "UserAuthenticationMethod.ReadWrite.All", "UserAuthenticationMethod.Read.All", "UserAuthMethod-TAP.ReadWrite.All", "Policy.ReadWrite.AuthenticationMethod", "Policy.Read.All"]

[[clients]]
client_id = "{SPA_ID}"
redirect_uris = ["{RP_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]

[[clients]]
client_id = "{AUTOMATION_ID}"
client_secret = "{AUTOMATION_SECRET}"
grant_types = ["client_credentials"]
app_permissions = ["User.ReadWrite.All", "User-PasswordProfile.ReadWrite.All", "Group.ReadWrite.All", "RoleManagement.ReadWrite.Directory", "AuditLog.Read.All", "UserAuthenticationMethod.ReadWrite.All", "Policy.ReadWrite.AuthenticationMethod", "Policy.ReadWrite.ConditionalAccess"]

[[clients]]
client_id = "{TAP_WRITER_ID}"
client_secret = "{TAP_WRITER_SECRET}"
grant_types = ["client_credentials"]
app_permissions = ["UserAuthMethod-TAP.ReadWrite.All"]

[[clients]]
client_id = "{TAP_READER_ID}"
client_secret = "{TAP_READER_SECRET}"
grant_types = ["client_credentials"]
app_permissions = ["UserAuthMethod-TAP.Read.All"]

[[clients]]
client_id = "{USER_WRITER_ID}"
client_secret = "{USER_WRITER_SECRET}"
grant_types = ["client_credentials"]
app_permissions = ["User.ReadWrite.All"]

[[clients]]
client_id = "{INTROSPECTOR_ID}"
client_secret = "{INTROSPECTOR_SECRET}"
grant_types = ["client_credentials"]
introspect_all_tokens = true

[[clients]]
client_id = "{READER_APP_ID}"
client_secret = "{READER_APP_SECRET}"
grant_types = ["client_credentials"]
app_permissions = ["User.Read.All"]
"#,
        store = dir.join("gatepass.redb").display(),
        keys = dir.join("keys").display(),
    )
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with("").await
    }

    /// Like [`TestApp::spawn`], with extra TOML appended to the config
    /// (e.g. another `[[clients]]`).
    pub async fn spawn_with(extra_config: &str) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.path().join("gatepass.redb")).expect("store"));
        Self::spawn_on(store, dir, extra_config).await
    }

    pub async fn spawn_on(store: Arc<dyn Store>, dir: TempDir, extra_config: &str) -> TestApp {
        Self::spawn_on_scheme(store, dir, extra_config, "http", "localhost").await
    }

    /// A Gatepass whose issuer is an IP address (`http://127.0.0.1:{port}`),
    /// as in lab setups: WebAuthn needs a host name, so passkeys are off.
    pub async fn spawn_ip_issuer() -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.path().join("gatepass.redb")).expect("store"));
        Self::spawn_on_scheme(store, dir, "", "http", "127.0.0.1").await
    }

    /// A Gatepass whose issuer is `https://localhost:{port}` (as behind a
    /// TLS-terminating proxy) while it serves plain HTTP on the port: for
    /// what an https issuer changes (cookies, HSTS). Reach it by `addr`.
    pub async fn spawn_https() -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.path().join("gatepass.redb")).expect("store"));
        Self::spawn_on_scheme(store, dir, "", "https", "localhost").await
    }

    async fn spawn_on_scheme(
        store: Arc<dyn Store>,
        dir: TempDir,
        extra_config: &str,
        scheme: &str,
        host: &str,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let issuer = format!("{scheme}://{host}:{}", addr.port());
        // `[throttling]` lines in `extra_config` join the harness's table.
        let (throttling, extra_config): (Vec<&str>, Vec<&str>) = {
            let mut in_throttling = false;
            extra_config.lines().partition(|line| {
                if line.starts_with('[') {
                    in_throttling = line.trim() == "[throttling]";
                    return false;
                }
                in_throttling
            })
        };
        let extra_config: Vec<&str> = extra_config
            .into_iter()
            .filter(|l| l.trim() != "[throttling]")
            .collect();
        let base = config_text(&issuer, dir.path()).replace(
            "[throttling]\n",
            &format!("[throttling]\n{}\n", throttling.join("\n")),
        );
        let settings = Settings::from_toml(
            &format!("{base}\n{}", extra_config.join("\n")),
            Path::new("test.toml"),
            std::iter::empty(),
        )
        .expect("test config");
        // Start at the real time: the relying party checks `exp`/`iat`
        // against its own wall clock.
        let clock = ManualClock::new(SystemClock.now());
        let state = AppState::with_store(settings, Arc::new(clock.clone()), store).expect("app");
        // The server `gatepass serve` runs, with its limits and timeouts.
        let server = tokio::spawn(gatepass::server::serve_on(
            listener,
            state.clone(),
            std::future::pending(),
        ));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        TestApp {
            state,
            clock,
            issuer,
            addr,
            http,
            dir,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Creates a user with a password directly in the directory.
    pub async fn create_user(
        &self,
        upn: &str,
        password: Option<&str>,
    ) -> gatepass::directory::User {
        let hash = match password {
            Some(p) => Some(self.state.hasher.hash(p).await.expect("hash")),
            None => None,
        };
        self.state
            .directory
            .create_user(
                gatepass::directory::NewUser {
                    user_principal_name: upn.to_owned(),
                    display_name: format!("Test {upn}"),
                    mail: Some(format!("{upn}@example.test")),
                    account_enabled: true,
                    password_hash: hash,
                },
                self.clock.now(),
            )
            .await
            .expect("create user")
    }

    pub async fn grant_role(
        &self,
        user: &gatepass::directory::User,
        role: gatepass::directory::roles::BuiltinRole,
    ) {
        self.state
            .directory
            .assign_role(role, user.id, self.clock.now())
            .await
            .expect("assign role");
    }

    /// The relying party, configured purely from discovery.
    pub async fn rp(&self, client_id: &str, secret: Option<&str>) -> Rp {
        let metadata = CoreProviderMetadata::discover_async(
            IssuerUrl::new(self.issuer.clone()).expect("issuer url"),
            &self.http,
        )
        .await
        .expect("discovery");
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(client_id.to_owned()),
            secret.map(|s| ClientSecret::new(s.to_owned())),
        )
        .set_redirect_uri(RedirectUrl::new(RP_REDIRECT.to_owned()).expect("redirect url"))
    }

    pub fn browser(&self) -> Browser {
        Browser::new(self.issuer.clone())
    }

    /// A browser sending `user_agent`.
    pub fn browser_with_agent(&self, user_agent: &str) -> Browser {
        Browser::with_agent(self.issuer.clone(), user_agent)
    }

    /// A client-credentials access token for the Graph API.
    pub async fn app_token(&self, client_id: &str, secret: &str) -> String {
        let r = self
            .http
            .post(self.url("/token"))
            .basic_auth(client_id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token request");
        assert_eq!(r.status(), 200, "client_credentials failed");
        let body: serde_json::Value = r.json().await.expect("json");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Issues a Temporary Access Pass through the Graph API (as the
    /// automation app); returns the create response.
    pub async fn issue_tap(
        &self,
        user: &gatepass::directory::User,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let token = self.app_token(AUTOMATION_ID, AUTOMATION_SECRET).await;
        let r = self
            .http
            .post(self.url(&format!(
                "/v1.0/users/{}/authentication/temporaryAccessPassMethods",
                user.id
            )))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("create TAP");
        assert_eq!(r.status(), 201, "TAP creation failed");
        r.json().await.expect("json")
    }

    /// Runs the whole code flow as `client_id` (confidential `rp`) and
    /// returns the token endpoint's JSON.
    pub async fn user_tokens(
        &self,
        username: &str,
        password: &str,
        scope: &str,
    ) -> serde_json::Value {
        self.user_tokens_in(&self.browser(), username, password, scope)
            .await
    }

    /// [`TestApp::user_tokens`] in `browser`, which keeps the session.
    pub async fn user_tokens_in(
        &self,
        browser: &Browser,
        username: &str,
        password: &str,
        scope: &str,
    ) -> serde_json::Value {
        let url = pkce_authorize_url(&self.issuer, scope, PKCE_CHALLENGE, "");
        let location = browser
            .sign_in(&url, username, password)
            .await
            .expect("sign-in redirect");
        self.redeem_as_rp(&location).await
    }

    /// [`TestApp::user_tokens`], signing in with a Temporary Access Pass.
    pub async fn tap_user_tokens(
        &self,
        username: &str,
        tap: &str,
        scope: &str,
    ) -> serde_json::Value {
        let url = pkce_authorize_url(&self.issuer, scope, PKCE_CHALLENGE, "");
        let location = self
            .browser()
            .sign_in_with_tap(&url, username, tap)
            .await
            .expect("sign-in redirect");
        self.redeem_as_rp(&location).await
    }

    /// Redeems the code in a redirect to the `rp` client (made from a
    /// [`pkce_authorize_url`] with [`PKCE_CHALLENGE`]).
    pub async fn redeem_as_rp(&self, location: &str) -> serde_json::Value {
        let code = query_param(location, "code").expect("code in redirect");
        let r = self
            .http
            .post(self.url("/token"))
            .basic_auth(RP_ID, Some(RP_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", RP_REDIRECT),
                ("code_verifier", PKCE_VERIFIER),
            ])
            .send()
            .await
            .expect("token request");
        assert_eq!(r.status(), 200);
        r.json().await.expect("json")
    }

    /// A refresh at the token endpoint as the confidential `rp`.
    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.http
            .post(self.url("/token"))
            .basic_auth(RP_ID, Some(RP_SECRET))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await
            .expect("refresh request")
    }
}

/// The PKCE verifier the hand-made authorization URLs use, and its S256
/// challenge.
pub const PKCE_VERIFIER: &str = "verifier-0123456789-0123456789-0123456789-0123456789";
pub const PKCE_CHALLENGE: &str = "KElgYLOZSi_EwtKDY_TIOQJd-_wWQYu3Jb0RXZxu81A";

#[test]
fn pkce_challenge_is_the_verifiers() {
    use base64::Engine as _;
    let d = ring::digest::digest(&ring::digest::SHA256, PKCE_VERIFIER.as_bytes());
    assert_eq!(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref()),
        PKCE_CHALLENGE
    );
}

/// An authorization URL for the confidential `rp` at `base` with `scope`,
/// a PKCE `challenge`, `state=st`, and `extra` query parameters.
pub fn pkce_authorize_url(base: &str, scope: &str, challenge: &str, extra: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", RP_ID)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", RP_REDIRECT)
        .append_pair("scope", scope)
        .append_pair("state", "st")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    format!("{base}/authorize?{query}{extra}")
}

/// Reads a query parameter from a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A browser: keeps cookies, follows no redirects on its own, reads forms.
pub struct Browser {
    pub http: reqwest::Client,
    issuer: String,
}

/// What a page or response turned out to be.
#[derive(Debug)]
pub struct Page {
    pub status: reqwest::StatusCode,
    pub location: Option<String>,
    pub html: String,
}

impl Page {
    /// The value of a hidden input `name` in the page.
    pub fn hidden(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.html.find(&marker)? + marker.len();
        let end = self.html[start..].find('"')? + start;
        Some(self.html[start..end].to_owned())
    }

    pub fn has_label(&self, label: &str) -> bool {
        self.html.contains(&format!(">{label}</label>"))
    }

    pub fn has_button(&self, label: &str) -> bool {
        self.html.contains(&format!(">{label}</button>"))
    }
}

impl Browser {
    pub fn new(issuer: String) -> Browser {
        Self::build(issuer, None)
    }

    /// A browser whose connections come from `local` (a loopback address
    /// such as 127.0.0.2): another client, as far as the server can tell.
    pub fn from_address(issuer: String, local: std::net::IpAddr) -> Browser {
        Self::build(issuer, Some(local))
    }

    /// A browser that sends `user_agent` (what the sign-in log reads the
    /// operating system and browser from).
    pub fn with_agent(issuer: String, user_agent: &str) -> Browser {
        let http = Self::builder(None)
            .user_agent(user_agent)
            .build()
            .expect("browser");
        Browser { http, issuer }
    }

    fn build(issuer: String, local: Option<std::net::IpAddr>) -> Browser {
        let http = Self::builder(local).build().expect("browser");
        Browser { http, issuer }
    }

    fn builder(local: Option<std::net::IpAddr>) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .local_address(local)
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.issuer)
        } else {
            url.to_owned()
        }
    }

    pub async fn get(&self, url: &str) -> Page {
        let r = self.http.get(self.absolute(url)).send().await.expect("GET");
        Self::page(r).await
    }

    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .http
            .post(self.absolute(url))
            .form(form)
            .send()
            .await
            .expect("POST");
        Self::page(r).await
    }

    async fn page(r: reqwest::Response) -> Page {
        let status = r.status();
        let location = r
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let html = r.text().await.unwrap_or_default();
        Page {
            status,
            location,
            html,
        }
    }

    /// Username page → Next: posts `username` with the page's flow and
    /// CSRF token; the flow id and the answer (a redirect to the method
    /// page).
    pub async fn enter_username(&self, username_page: &Page, username: &str) -> (String, Page) {
        let flow = username_page.hidden("flow").expect("flow");
        let csrf = username_page.hidden("csrf").expect("csrf");
        let answer = self
            .post_form(
                "/signin/username",
                &[("flow", &flow), ("csrf", &csrf), ("username", username)],
            )
            .await;
        (flow, answer)
    }

    /// Username page → Next → password page → Sign in. Returns the final
    /// page (a redirect to the client on success).
    pub async fn submit_credentials(
        &self,
        username_page: &Page,
        username: &str,
        password: &str,
    ) -> Page {
        assert!(
            username_page.has_label("Username"),
            "no Username field: {}",
            username_page.html
        );
        assert!(username_page.has_button("Next"));
        let (flow, after_username) = self.enter_username(username_page, username).await;
        let next = after_username
            .location
            .expect("redirect to the password page");
        let password_page = self.get(&next).await;
        assert!(
            password_page.has_label("Password"),
            "no Password field: {}",
            password_page.html
        );
        assert!(password_page.has_button("Sign in"));
        let csrf = password_page.hidden("csrf").expect("csrf");
        self.post_form(
            "/signin/password",
            &[("flow", &flow), ("csrf", &csrf), ("password", password)],
        )
        .await
    }

    /// Username page → Next → Temporary Access Pass page → Sign in; the
    /// redirect back to the client, or the page that stopped it.
    pub async fn sign_in_with_tap(
        &self,
        authorize_url: &str,
        username: &str,
        tap: &str,
    ) -> Result<String, Page> {
        let first = self.get(authorize_url).await;
        let (flow, next) = self.enter_username(&first, username).await;
        let page = self.get(&next.location.expect("redirect")).await;
        assert!(page.has_label("Temporary Access Pass"), "{}", page.html);
        let csrf = page.hidden("csrf").expect("csrf");
        let done = self
            .post_form(
                "/signin/tap",
                &[("flow", &flow), ("csrf", &csrf), ("tap", tap)],
            )
            .await;
        match done.location.clone() {
            Some(loc) if done.status.is_redirection() => Ok(loc),
            _ => Err(done),
        }
    }

    /// Full interactive sign-in from an authorization URL; the redirect
    /// back to the client, or `None` with the page that stopped it.
    pub async fn sign_in(
        &self,
        authorize_url: &str,
        username: &str,
        password: &str,
    ) -> Result<String, Page> {
        let first = self.get(authorize_url).await;
        if let Some(loc) = first.location.clone() {
            return Ok(loc);
        }
        let done = self.submit_credentials(&first, username, password).await;
        match done.location.clone() {
            Some(loc) if done.status.is_redirection() => Ok(loc),
            _ => Err(done),
        }
    }
}

/// A software passkey (webauthn-authenticator-rs `SoftPasskey`) acting for
/// a browser at `origin`.
///
/// `SoftPasskey` keeps no resident keys, so this wrapper plays the part of
/// the authenticator's resident-key store: it remembers the credential and
/// the user handle it registered, and for a discoverable request (empty
/// allow-list) it answers with that credential and returns the user handle
/// — what a resident-key authenticator returns. The signature covers
/// authenticatorData and clientDataJSON, not the handle, so the server
/// verifies exactly what it would from real hardware.
pub struct SoftAuthenticator {
    inner: webauthn_authenticator_rs::WebauthnAuthenticator<
        webauthn_authenticator_rs::softpasskey::SoftPasskey,
    >,
    pub origin: url::Url,
    pub user_handle: Option<String>,
    pub credential_id: Option<String>,
}

impl SoftAuthenticator {
    pub fn new(origin: &str) -> Self {
        Self {
            inner: webauthn_authenticator_rs::WebauthnAuthenticator::new(
                webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true),
            ),
            origin: url::Url::parse(origin).expect("origin"),
            user_handle: None,
            credential_id: None,
        }
    }

    /// Answers `navigator.credentials.create` options (as Gatepass sends them).
    pub fn register(&mut self, mut options: serde_json::Value) -> serde_json::Value {
        // SoftPasskey refuses residentKey=required; see the type's doc.
        if let Some(sel) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(|v| v.as_object_mut())
        {
            sel.insert("requireResidentKey".into(), false.into());
            sel.insert("residentKey".into(), "discouraged".into());
        }
        self.user_handle = options
            .pointer("/publicKey/user/id")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let ccr: webauthn_rs::prelude::CreationChallengeResponse =
            serde_json::from_value(options).expect("creation options");
        let reg = self
            .inner
            .do_registration(self.origin.clone(), ccr)
            .expect("soft passkey registration");
        let json = serde_json::to_value(&reg).expect("json");
        self.credential_id = json["id"].as_str().map(str::to_owned);
        json
    }

    /// Answers `navigator.credentials.get` options.
    pub fn authenticate(&mut self, mut options: serde_json::Value) -> serde_json::Value {
        let discoverable = options
            .pointer("/publicKey/allowCredentials")
            .and_then(|v| v.as_array())
            .is_none_or(|a| a.is_empty());
        if discoverable {
            let id = self.credential_id.clone().expect("a registered credential");
            options["publicKey"]["allowCredentials"] =
                serde_json::json!([{"type": "public-key", "id": id}]);
        }
        let rcr: webauthn_rs::prelude::RequestChallengeResponse =
            serde_json::from_value(options).expect("request options");
        let cred = self
            .inner
            .do_authentication(self.origin.clone(), rcr)
            .expect("soft passkey assertion");
        let mut json = serde_json::to_value(&cred).expect("json");
        if discoverable {
            json["response"]["userHandle"] =
                serde_json::Value::String(self.user_handle.clone().expect("user handle"));
        }
        json
    }
}

/// A software authenticator a test registers: it answers the creation
/// options the server sends as a browser's `navigator.credentials.create`.
pub trait Device {
    fn register(&mut self, options: serde_json::Value) -> serde_json::Value;
}

impl Device for SoftAuthenticator {
    fn register(&mut self, options: serde_json::Value) -> serde_json::Value {
        SoftAuthenticator::register(self, options)
    }
}

impl Device for crate::authenticator::KeyAuthenticator {
    fn register(&mut self, options: serde_json::Value) -> serde_json::Value {
        crate::authenticator::KeyAuthenticator::register(self, options)
    }
}

/// A PKCE authorization URL for `rp` with extra `scopes`; returns the URL,
/// the verifier to redeem the code with, and the nonce to check.
pub fn authorize_url(
    rp: &Rp,
    scopes: &[&str],
) -> (
    String,
    openidconnect::PkceCodeVerifier,
    openidconnect::Nonce,
) {
    use openidconnect::core::CoreAuthenticationFlow;
    use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge, Scope};
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for s in scopes {
        req = req.add_scope(Scope::new((*s).to_owned()));
    }
    let (url, _, nonce) = req.url();
    (url.to_string(), verifier, nonce)
}

/// Redeems `code` at the token endpoint as the relying party does, with
/// the PKCE verifier from [`authorize_url`]; panics if it is refused.
pub async fn redeem(
    app: &TestApp,
    rp: &Rp,
    code: String,
    verifier: openidconnect::PkceCodeVerifier,
) -> openidconnect::core::CoreTokenResponse {
    rp.exchange_code(openidconnect::AuthorizationCode::new(code))
        .expect("token endpoint configured")
        .set_pkce_verifier(verifier)
        .request_async(&app.http)
        .await
        .expect("code exchange")
}

/// The ID token's claims, verified by the relying party (signature,
/// issuer, audience, expiry, `nonce`).
pub fn id_claims(
    rp: &Rp,
    tokens: &openidconnect::core::CoreTokenResponse,
    nonce: &openidconnect::Nonce,
) -> openidconnect::core::CoreIdTokenClaims {
    use openidconnect::TokenResponse;
    tokens
        .id_token()
        .expect("id_token")
        .claims(&rp.id_token_verifier(), nonce)
        .expect("verified ID token")
        .clone()
}

/// The claims' `amr` values.
pub fn amr(claims: &openidconnect::core::CoreIdTokenClaims) -> Vec<String> {
    claims
        .auth_method_refs()
        .expect("amr")
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect()
}

/// The security-info page's CSRF token (its `<meta name="csrf">`).
pub fn meta_csrf(page: &Page) -> String {
    let marker = "<meta name=\"csrf\" content=\"";
    let start = page.html.find(marker).expect("csrf meta") + marker.len();
    page.html[start..start + page.html[start..].find('"').expect("closing quote")].to_owned()
}

/// POSTs JSON as the browser's script does (optionally with the CSRF
/// header); returns the status and the JSON body (`null` if none).
pub async fn post_json(
    browser: &Browser,
    app: &TestApp,
    path: &str,
    csrf: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut req = browser.http.post(app.url(path)).json(&body);
    if let Some(c) = csrf {
        req = req.header("x-csrf-token", c);
    }
    let r = req.send().await.expect("POST");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// Add passkey from the security-info page; returns (status, body) of the
/// step that answered last.
pub async fn add_passkey(
    app: &TestApp,
    browser: &Browser,
    auth: &mut impl Device,
    name: &str,
) -> (u16, serde_json::Value) {
    let page = browser.get("/account/security-info").await;
    assert!(page.has_button("Add passkey"), "{}", page.html);
    let csrf = meta_csrf(&page);
    let (status, start) = post_json(
        browser,
        app,
        "/account/passkeys/register/start",
        Some(&csrf),
        serde_json::json!({}),
    )
    .await;
    if status != 200 {
        return (status, start);
    }
    let credential = auth.register(start["options"].clone());
    let body =
        serde_json::json!({"ceremony": start["ceremony"], "name": name, "credential": credential});
    post_json(
        browser,
        app,
        "/account/passkeys/register/finish",
        Some(&csrf),
        body,
    )
    .await
}

/// Who a caller acts on, in the role matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixTarget {
    /// A user without a directory role.
    Member,
    /// A user holding a directory role.
    Admin,
    OwnAccount,
}

/// The Temporary Access Pass matrix of `graph::methods`' module doc, row
/// by row: what a delegated caller with `role` may do to `target` —
/// (issue, view, delete). Every interface (Graph API, admin console) is
/// tested against this one table.
pub fn tap_matrix(
    role: Option<gatepass::directory::roles::BuiltinRole>,
    target: MatrixTarget,
) -> (bool, bool, bool) {
    use gatepass::directory::roles::BuiltinRole::*;
    const ALL: (bool, bool, bool) = (true, true, true);
    const VIEW: (bool, bool, bool) = (false, true, false);
    const NONE: (bool, bool, bool) = (false, false, false);
    match (role, target) {
        (_, MatrixTarget::OwnAccount) => NONE,
        (Some(GlobalAdministrator | PrivilegedAuthenticationAdministrator), _) => ALL,
        (Some(AuthenticationAdministrator), MatrixTarget::Member) => ALL,
        (Some(GlobalReader), _) => VIEW,
        _ => NONE,
    }
}
