//! The sandbox's emulated front end: a caller's HTTP request becomes the envelope the host sends
//! (`Data.req` as `GetRequestAsJObject` builds it, `Url` from the caller's `Host` header as the host
//! builds it), the handler is invoked, and `Outputs.res` is unwrapped into the HTTP answer. Its routes are
//! the HTTP-triggered functions of the deployment's `function.json` folders, `/api/<route>` with their
//! methods, as the host registers them: `POST /api/reprocess`, `POST /api/alert`,
//! `GET /api/operations/{correlationId}`, `GET /api/openapi`. Before the host, it does what App Service
//! authentication does to the caller's headers (`callers::authenticate`).

use super::{Shim, callers};
use crate::functions::Function;
use crate::host::{HttpCall, QueueMessageMeta, http_envelope};
use crate::host_client::HOST_VERSION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

fn host_headers(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request
        .header("X-Azure-Functions-HostVersion", HOST_VERSION)
        .header("X-Azure-Functions-InvocationId", crate::guid::random())
        .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
        .header("Content-Type", "application/json; charset=utf-8")
}

pub(super) async fn invoke(shim: &Shim, function: &str, envelope: String) -> Result<Value, String> {
    let response = host_headers(shim.client.post(format!("{}/{function}", shim.handler)))
        .body(envelope)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("handler answered {status}: {body}"))
    }
}

/// What an HTTP function answered, unwrapped as the host would, plus its queue outputs.
pub(super) struct HttpOutcome {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Value,
    pub(super) enqueued: Vec<String>,
}

/// The HTTP-triggered function at `/api/{route}` (the route as `function.json` writes it).
pub(super) fn http_function(route: &str) -> &'static Function {
    Function::with_route(route).unwrap_or_else(|| panic!("no function.json with the route {route:?}"))
}

pub(super) async fn invoke_http(shim: &Shim, function: &Function, call: &HttpCall) -> HttpOutcome {
    let envelope = http_envelope(function.name, function.trigger().name, call);
    match invoke(shim, function.name, envelope).await {
        Ok(reply) => {
            let res = function
                .outputs("http")
                .next()
                .map_or(&Value::Null, |b| &reply["Outputs"][b.name]);
            let status = res["statusCode"].as_str().and_then(|s| s.parse().ok()).unwrap_or(200);
            let headers = res["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let body = res["body"]
                .as_str()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or(Value::Null);
            let enqueued = function
                .outputs_to(shim.queue_name)
                .into_iter()
                .flat_map(|binding| messages(&reply, binding))
                .collect();
            HttpOutcome {
                status,
                headers,
                body,
                enqueued,
            }
        }
        // What the host does when the invocation fails: 500 with an empty body.
        Err(e) => HttpOutcome {
            status: 500,
            headers: Vec::new(),
            body: json!({ "sandbox": e }),
            enqueued: Vec::new(),
        },
    }
}

/// The messages of one queue output binding in a reply.
pub(super) fn messages(reply: &Value, binding: &str) -> Vec<String> {
    reply["Outputs"][binding]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// One route per HTTP-triggered function, as the host registers them: `/api/<route>` (the function's
/// name without a route), its methods (any without), route values such as `{correlationId}` to `Params`.
pub(super) fn routes(config: &mut web::ServiceConfig) {
    for function in Function::triggered_by("httpTrigger") {
        let trigger = function.trigger();
        let mut resource = web::resource(format!("/api/{}", trigger.route.unwrap_or(function.name)));
        let call = move |request: HttpRequest, body: web::Bytes, shim: web::Data<Shim>| async move {
            let mut call = caller_request(&request, &body);
            // App Service authentication runs before the host: the host never sees a forged principal,
            // and an unknown sample caller is this front's own 400 (the handler is not invoked).
            if let Err(unknown) = callers::authenticate(&mut call.headers) {
                return HttpResponse::BadRequest().json(unknown.body());
            }
            call.params = request
                .match_info()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            forward(&shim, function, &call).await
        };
        if trigger.methods.is_empty() {
            resource = resource.route(web::route().to(call));
        }
        for method in trigger.methods {
            let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
            resource = resource.route(web::method(method).to(call));
        }
        config.service(resource);
    }
}

/// The caller's request as the host's front end hands it over (`GetRequestAsJObject`): every header
/// as sent, the query decoded with repeats kept, and the body only with a `Content-Length` (the host
/// drops chunked bodies), base64 for octet-stream and multipart, else UTF-8 text (BOM removed).
fn caller_request(request: &HttpRequest, body: &[u8]) -> HttpCall {
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let has_length = header("content-length").is_some_and(|v| v.trim().parse::<u64>().is_ok_and(|n| n > 0));
    let binary = header("content-type")
        .is_some_and(|t| t.starts_with("application/octet-stream") || t.starts_with("multipart/"));
    let body = has_length.then(|| {
        if binary {
            crate::host::base64(body)
        } else {
            let text = body.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(body);
            String::from_utf8_lossy(text).into_owned()
        }
    });
    let query = url::form_urlencoded::parse(request.query_string().as_bytes())
        .into_owned()
        .collect();
    let meta = QueueMessageMeta::now(1);
    let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str());
    // `{scheme}://{Host}{Path}{QueryString}`, the Host as the caller sent it (curl sends `localhost:7071`).
    let host = header("host").unwrap_or_else(|| "localhost".into());
    HttpCall {
        url: format!("http://{host}{path_and_query}"),
        method: request.method().as_str().to_owned(),
        query,
        headers,
        body,
        function_key_name: Some("default".into()),
        utc_now: meta.utc_now,
        rand_guid: meta.rand_guid,
        params: Vec::new(),
    }
}

/// Runs an HTTP function, hands its `enqueue` outputs to the in-memory queue, returns `res`.
async fn forward(shim: &Shim, function: &Function, call: &HttpCall) -> HttpResponse {
    let outcome = invoke_http(shim, function, call).await;
    for message in outcome.enqueued {
        let _ = shim.queue.send((message, 1));
    }
    let mut response = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(outcome.status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    );
    for (name, value) in outcome
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("content-type"))
    {
        response.insert_header((name.as_str(), value.as_str()));
    }
    response.json(outcome.body)
}
