//! Entry point: `reprocess-handler` serves the Functions host; `reprocess-handler sandbox` runs the
//! handler against an in-process emulated tenant (only in builds with the default `emulator` feature;
//! the deployed package is built without it).

use anyhow::Context;
use reprocess_handler::{config::Settings, startup::Application, telemetry};

const USAGE: &str = "usage: reprocess-handler            serve the Azure Functions host (reads FUNCTIONS_CUSTOMHANDLER_PORT)\n       reprocess-handler sandbox    run against an emulated tenant on this machine (see README)";

/// Exit code that makes the host restart the handler without counting an error
/// (`WorkerProcess.OnProcessExited`); exit code 0 would leave a dead worker registered.
const EXIT_RESTART_ME: u8 = 200;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => match serve() {
            Ok(()) => return std::process::ExitCode::from(EXIT_RESTART_ME),
            Err(e) => Err(e),
        },
        Some("sandbox") => sandbox(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown argument {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "reprocess-handler stopped");
            eprintln!("reprocess-handler: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "emulator")]
fn sandbox(args: &[String]) -> anyhow::Result<()> {
    reprocess_handler::sandbox::run(args)
}

#[cfg(not(feature = "emulator"))]
fn sandbox(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("this build has no sandbox: build with the default `emulator` feature")
}

fn serve() -> anyhow::Result<()> {
    telemetry::init();
    let settings = Settings::from_env().context("invalid settings")?;
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).context("start-up failed")?;
        tracing::info!(port = app.port(), "listening on 127.0.0.1");
        app.run_until_stopped().await.context("server stopped")
    })
}
