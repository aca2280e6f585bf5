//! What every settings parser shares, with nothing above it: the error that names the variable, and
//! the loopback rule that decides where plain http (and so a token over it) may go. `config` composes
//! the subsystems' settings (`storage::StorageSettings`, …) from these, so no subsystem imports `config`.

use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{variable}: {reason}")]
    Invalid { variable: &'static str, reason: String },
    #[error("environment: {0}")]
    Env(String),
}

/// A setting's value refused, naming the variable.
pub fn invalid(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        variable,
        reason: reason.into(),
    }
}

/// True for 127.0.0.0/8, ::1 and `localhost`: the only places a token may travel over plain http.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}
