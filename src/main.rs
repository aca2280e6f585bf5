//! Entry point: `reprocess-handler` serves the Functions host; `reprocess-handler sandbox` runs this same
//! binary as a handler process against an emulated tenant and Functions host (crates/emulator; only in
//! builds with the default `emulator` feature, the deployed package is built without it).

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
            // Once, on stderr: the log (when serving) already has its own line from `serve`.
            eprintln!("reprocess-handler: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The sandbox runs this very binary as its handler process, as the Functions host would.
#[cfg(feature = "emulator")]
fn sandbox(args: &[String]) -> anyhow::Result<()> {
    let handler = std::env::current_exe().context("locating this binary")?;
    reprocess_emulator::sandbox::run(handler, args)
}

#[cfg(not(feature = "emulator"))]
fn sandbox(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("this build has no sandbox: build with the default `emulator` feature")
}

fn serve() -> anyhow::Result<()> {
    telemetry::init();
    let served = Settings::from_env().context("invalid settings").and_then(|settings| {
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build(settings).context("start-up failed")?;
            tracing::info!(port = app.port(), "listening on 127.0.0.1");
            app.run_until_stopped().await.context("server stopped")
        })
    });
    if let Err(e) = &served {
        // The host keeps stdout lines as the function's log; stderr gets the same cause from `main`.
        tracing::error!(error = format!("{e:#}"), "reprocess-handler stopped");
    }
    served
}
