//! `[backchannel_logout]` and the clients' `backchannel_logout_uri`:
//! parsed here, validated at start-up with errors naming the key.

use serde::Deserialize;
use std::time::Duration;
use url::Url;

/// `[backchannel_logout]` as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawBackchannelLogout {
    enabled: bool,
    timeout_seconds: i64,
    max_attempts: i64,
    retry_seconds: i64,
}

impl Default for RawBackchannelLogout {
    fn default() -> Self {
        let d = BackchannelSettings::default();
        Self {
            enabled: d.enabled,
            timeout_seconds: d.timeout.as_secs() as i64,
            max_attempts: i64::from(d.max_attempts),
            retry_seconds: d.retry.as_secs() as i64,
        }
    }
}

/// How logout tokens are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelSettings {
    /// Off: not advertised, no client may set `backchannel_logout_uri`.
    pub enabled: bool,
    /// How long one POST may take before it counts as failed.
    pub timeout: Duration,
    /// Deliveries per token, the first included; then it is dropped.
    pub max_attempts: u32,
    /// The wait before the first retry; each later one doubles it.
    pub retry: Duration,
}

impl Default for BackchannelSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout: Duration::from_secs(5),
            max_attempts: 8,
            retry: Duration::from_secs(10),
        }
    }
}

impl BackchannelSettings {
    /// How long a claimed delivery is reserved for the instance that claimed
    /// it: longer than the POST may take, so two instances never deliver the
    /// same token while both are alive; after it, another instance delivers
    /// (the claimer died mid-delivery).
    pub fn lease(&self) -> Duration {
        self.timeout + Duration::from_secs(5)
    }
}

pub(crate) fn validate(
    raw: &RawBackchannelLogout,
) -> Result<BackchannelSettings, crate::config::ConfigError> {
    let range = |key: &str, v: i64, min: i64, max: i64| {
        if (min..=max).contains(&v) {
            Ok(v.unsigned_abs())
        } else {
            Err(invalid(
                &format!("backchannel_logout.{key}"),
                format!("must be between {min} and {max}"),
            ))
        }
    };
    Ok(BackchannelSettings {
        enabled: raw.enabled,
        timeout: Duration::from_secs(range("timeout_seconds", raw.timeout_seconds, 1, 60)?),
        max_attempts: u32::try_from(range("max_attempts", raw.max_attempts, 1, 20)?).unwrap_or(20),
        retry: Duration::from_secs(range("retry_seconds", raw.retry_seconds, 1, 3600)?),
    })
}

fn invalid(key: &str, message: impl Into<String>) -> crate::config::ConfigError {
    crate::config::ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// A client's `backchannel_logout_uri` (Back-Channel Logout 1.0 §2.2): an
/// absolute https URL, or http on a loopback host only (a logout token
/// sent in clear over a network could be replayed by whoever reads it), no
/// fragment.
pub(crate) fn validate_uri(key: &str, uri: &str) -> Result<(), crate::config::ConfigError> {
    let url =
        Url::parse(uri).map_err(|_| invalid(key, format!("{uri:?} is not an absolute URL")))?;
    if url.fragment().is_some() {
        return Err(invalid(key, format!("{uri:?} must not have a fragment")));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(invalid(
            key,
            format!(
                "{uri:?}: http is allowed only on a loopback host (localhost, 127.0.0.1, ::1); use https"
            ),
        )),
        _ => Err(invalid(key, format!("{uri:?} must be an https URL"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn backchannel_uri_rules_name_the_key() {
        for ok in [
            "https://rp.example/logout",
            "http://127.0.0.1:9000/bcl",
            "http://localhost/bcl",
            "http://[::1]:8/x",
        ] {
            assert!(validate_uri("k", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://rp.example/logout",
            "http://10.0.0.1/logout",
            "https://rp.example/logout#frag",
            "ftp://rp.example/",
            "/relative",
        ] {
            let e = validate_uri("clients[0].backchannel_logout_uri", bad).unwrap_err();
            assert!(
                e.to_string().contains("clients[0].backchannel_logout_uri"),
                "{e}"
            );
        }
    }

    #[test]
    fn backchannel_settings_out_of_range_name_the_key() {
        let mut raw = RawBackchannelLogout::default();
        assert_eq!(validate(&raw).unwrap(), BackchannelSettings::default());
        raw.max_attempts = 0;
        let e = validate(&raw).unwrap_err().to_string();
        assert!(e.contains("backchannel_logout.max_attempts"), "{e}");
    }
}
