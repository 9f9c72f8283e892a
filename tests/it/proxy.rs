//! Behind a reverse proxy (DESIGN §2.11 `[server] trusted_proxies`): a real
//! nginx in front of two Gatepass instances on one Redis. Clients are told
//! apart by their loopback source address (127.0.0.2, 127.0.0.3, ...).
//!
//! nginx comes from Debian's package (`.ci/run` installs it). Without it
//! the test says it was skipped — unless `GATEPASS_REQUIRE_NGINX=1`.

use crate::harness::*;
use crate::redis::{Instance, Namespace, find_on_path, redis_for};
use gatepass::clock::Clock;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const TRUSTED: &str = "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n";

/// An nginx child process, killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> Option<PathBuf> {
    find_on_path("nginx").or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/nginx");
        sbin.is_file().then_some(sbin)
    })
}

impl Nginx {
    /// nginx on a free loopback port, round-robin over `upstreams`, adding
    /// the client to `X-Forwarded-For` as a production config would.
    async fn start(test: &str, upstreams: &[u16]) -> Option<Nginx> {
        let Some(binary) = nginx_binary() else {
            if std::env::var("GATEPASS_REQUIRE_NGINX").is_ok_and(|v| v == "1") {
                panic!("{test}: GATEPASS_REQUIRE_NGINX=1 but nginx is not installed");
            }
            eprintln!("SKIPPED {test}: nginx is not installed");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::process::free_port();
        let servers: String = upstreams
            .iter()
            .map(|p| format!("server 127.0.0.1:{p};\n"))
            .collect();
        let d = dir.path().display();
        let conf = format!(
            r#"
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream gatepass {{ {servers} }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://gatepass;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
"#
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(nginx);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nginx did not start listening on {port}");
    }

    fn base(&self) -> String {
        format!("http://localhost:{}", self.port)
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One password attempt through `browser`, which may add a spoofed
/// `X-Forwarded-For` of its own; the final page.
async fn attempt(
    browser: &Browser,
    base: &str,
    username: &str,
    password: &str,
    spoof: Option<&str>,
) -> Page {
    let with = |r: reqwest::RequestBuilder| match spoof {
        Some(s) => r.header("x-forwarded-for", s),
        None => r,
    };
    let page = |r: reqwest::Response| async move {
        let status = r.status();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Page {
            status,
            location,
            html: r.text().await.unwrap_or_default(),
        }
    };
    let first = page(
        with(
            browser
                .http
                .get(pkce_authorize_url(base, "openid", PKCE_CHALLENGE, "")),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let flow = first.hidden("flow").expect("flow");
    let csrf = first.hidden("csrf").expect("csrf");
    let form = [
        ("flow", flow.as_str()),
        ("csrf", csrf.as_str()),
        ("username", username),
    ];
    let next = page(
        with(browser.http.post(format!("{base}/signin/username")))
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let pw_page = page(
        with(
            browser
                .http
                .get(format!("{base}{}", next.location.unwrap())),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let csrf = pw_page.hidden("csrf").expect("csrf");
    let form = [
        ("flow", flow.as_str()),
        ("csrf", csrf.as_str()),
        ("password", password),
    ];
    page(
        with(browser.http.post(format!("{base}/signin/password")))
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn proxy_failures_from_one_client_lock_that_client_not_everyone_behind_the_proxy() {
    let test = "proxy_failures_from_one_client_lock_that_client_not_everyone_behind_the_proxy";
    let Some(redis) = redis_for(test).await else {
        return;
    };
    let ns = Namespace::new(&redis.url);
    let a = TestApp::spawn_on(
        Arc::new(ns.store().await),
        tempfile::tempdir().unwrap(),
        TRUSTED,
    )
    .await;
    let b = Instance::spawn_beside_with(&a, &redis.url, &ns.prefix, TRUSTED).await;
    let b_port: u16 = b.base.rsplit(':').next().unwrap().parse().unwrap();
    let Some(nginx) = Nginx::start(test, &[a.addr.port(), b_port]).await else {
        return;
    };
    a.create_user("alice", Some("alice password 1")).await;
    let base = nginx.base();

    // The attacker at 127.0.0.2 blames the victim in its own header; the
    // harness locks a source after 20 failures.
    let attacker = Browser::from_address(base.clone(), ip("127.0.0.2"));
    for i in 0..21 {
        let page = attempt(
            &attacker,
            &base,
            &format!("guess{i}"),
            "wrong",
            Some("127.0.0.3"),
        )
        .await;
        assert!(page.location.is_none());
    }
    let locked = attempt(
        &attacker,
        &base,
        "alice",
        "alice password 1",
        Some("127.0.0.3"),
    )
    .await;
    assert!(
        locked.html.contains("temporarily locked"),
        "the attacking client is locked: {}",
        locked.html
    );
    // The victim, behind the same proxy, is not.
    let victim = Browser::from_address(base.clone(), ip("127.0.0.3"));
    let ok = attempt(&victim, &base, "alice", "alice password 1", None).await;
    assert!(
        ok.location.as_deref().is_some_and(|l| l.contains("code=")),
        "the victim signs in: {}",
        ok.html
    );
    // The log names the real client of every attempt.
    let log = a.state.audit.sign_ins(a.clock.now()).await.unwrap();
    let failures: Vec<_> = log.iter().filter(|e| e.status.error_code != 0).collect();
    assert!(failures.len() >= 20);
    assert!(
        failures.iter().all(|e| e.ip_address == "127.0.0.2"),
        "{:?}",
        failures.iter().map(|e| &e.ip_address).collect::<Vec<_>>()
    );
    assert!(
        log.iter()
            .any(|e| e.status.error_code == 0 && e.ip_address == "127.0.0.3")
    );

    // Straight to an instance, not through the proxy: the header is ignored.
    let direct = Browser::from_address(a.issuer.clone(), ip("127.0.0.4"));
    attempt(&direct, &a.issuer, "nobody", "wrong", Some("198.51.100.1")).await;
    let log = a.state.audit.sign_ins(a.clock.now()).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.user_principal_name == "nobody" && e.ip_address == "127.0.0.4"),
        "a spoofed X-Forwarded-For from an untrusted peer is ignored"
    );
    assert!(log.iter().all(|e| e.ip_address != "198.51.100.1"));
    drop(b);
    ns.remove().await;
}
