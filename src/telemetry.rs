//! Structured JSON logs on stdout (the host forwards stdout lines to the function logs). Spans carry
//! the invocation ID and function name; nothing secret is ever recorded as a field.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// `RUST_LOG` overrides the default `info` for this crate and `warn` for dependencies.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,reprocess_handler=info,azure_identity=warn"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_span_events(FmtSpan::NONE)
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}
