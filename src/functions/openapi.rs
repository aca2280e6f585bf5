//! `function-openapi`: GET /api/openapi answers the OpenAPI 2.0 document of the HTTP API,
//! `openapi/reprocess-handler.json`, compiled in, so the document served is the one checked in (and
//! the one CI validates and the API tests hold the handler's answers to).
//!
//! The checked-in document has no `host`: the served one gets `host` and `schemes` from `Data.req.Url`,
//! which the Functions host builds as `{http|https}://{Host}{Path}{QueryString}`
//! (azure-functions-host `src/WebJobs.Script/Extensions/HttpRequestExtensions.cs`, `GetRequestAsJObject`),
//! i.e. the address this caller reached (on Linux Consumption the host first fixes `Host` and the scheme
//! from the platform front end's headers: see `tracked`). Only a URL that parses with an `http`/`https`
//! scheme and a domain or IP host is used (`ServedAt`), `http` only on loopback as for the 202's
//! `Location`; anything else leaves `host` out, which OpenAPI 2.0 reads as "the host that served the
//! document". `X-Forwarded-Host` and the like are not read: any caller can set them.
//!
//! Auth level `function`, like every function of the app: the document holds nothing secret (it is in
//! the repository), but an anonymous route would be the one way to run the handler without a key.
//! Importing by URL works with `?code=<key>` in the URL, or from the checked-in file.

use crate::host::{Envelope, HttpReply, HttpTrigger};
use serde_json::{Value, json};
use std::sync::LazyLock;
use url::{Host, Url};

use super::http_io::error_body;

/// The document as checked in.
pub const DOCUMENT: &str = include_str!("../../openapi/reprocess-handler.json");

static PARSED: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(DOCUMENT).expect("openapi/reprocess-handler.json is JSON"));

/// Where a caller reached the API: a scheme (`http`/`https`) and a domain or IP host, with the port
/// when it is not the scheme's default. Nothing else from the request reaches the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedAt {
    scheme: &'static str,
    host: String,
}

impl ServedAt {
    pub fn parse(url: &str) -> Option<Self> {
        let url = Url::parse(url).ok()?;
        // As for the 202's `Location` (`tracked::status_url`): `http` only on loopback (local runs); the
        // app itself is `httpsOnly`.
        let scheme = match url.scheme() {
            "http" if crate::setting::is_loopback(&url) => "http",
            "https" | "http" => "https",
            _ => return None,
        };
        let host = match url.host()? {
            Host::Domain(d) if !d.is_empty() => d.to_owned(),
            Host::Domain(_) => return None,
            Host::Ipv4(ip) => ip.to_string(),
            Host::Ipv6(ip) => format!("[{ip}]"),
        };
        // `Url::port` is `None` for the scheme's default port.
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        Some(Self { scheme, host })
    }
}

/// The document, with `host` and `schemes` set when the request says where it was served.
pub fn document(served_at: Option<&ServedAt>) -> Value {
    let mut document = PARSED.clone();
    if let Some(at) = served_at {
        document["host"] = json!(at.host);
        document["schemes"] = json!([at.scheme]);
    }
    document
}

pub fn handle(envelope: &Envelope, binding: &'static str) -> HttpReply {
    let request = match HttpTrigger::from_envelope(envelope, binding) {
        Ok(request) => request,
        Err(e) => {
            tracing::error!(error = %e, "malformed HTTP trigger envelope");
            return HttpReply::json(500, error_body("bad_envelope", &e.to_string(), json!({})));
        }
    };
    if !request.method.eq_ignore_ascii_case("GET") {
        return HttpReply::json(405, error_body("method_not_allowed", "use GET", json!({})))
            .with_header("Allow", "GET");
    }
    HttpReply::json(200, document(ServedAt::parse(&request.url).as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_swagger_2_without_a_host() {
        let doc = document(None);
        assert_eq!(doc["swagger"], "2.0");
        assert!(doc.get("host").is_none());
        assert_eq!(doc["basePath"], "/api");
    }

    #[test]
    fn host_and_scheme_come_from_the_url_only_when_it_parses() {
        let at = |url| ServedAt::parse(url).map(|a| (a.scheme, a.host));
        assert_eq!(
            at("https://myapp.azurewebsites.net/api/openapi?code=k"),
            Some(("https", "myapp.azurewebsites.net".into()))
        );
        assert_eq!(
            at("http://localhost:7071/api/openapi"),
            Some(("http", "localhost:7071".into()))
        );
        assert_eq!(
            at("https://127.0.0.1:443/api/openapi"),
            Some(("https", "127.0.0.1".into()))
        );
        assert_eq!(at("http://[::1]:8080/x"), Some(("http", "[::1]:8080".into())));
        assert_eq!(
            at("http://app.azurewebsites.net/api/openapi"),
            Some(("https", "app.azurewebsites.net".into()))
        );
        assert_eq!(at("ftp://example.com/x"), None);
        assert_eq!(at("not a url"), None);
        assert_eq!(at(""), None);
        let doc = document(ServedAt::parse("https://user:pw@evil.example:8443/api/openapi").as_ref());
        assert_eq!(doc["host"], "evil.example:8443", "credentials never reach the document");
        assert_eq!(doc["schemes"], json!(["https"]));
    }
}
