//! Real Azurite (the npm package pinned in `tools/azurite/`), one Table service per test binary on a free
//! loopback port, in memory, without telemetry. It is started under a small `sh` watchdog that kills it
//! when this process's end of its stdin pipe closes, so no Azurite outlives the tests. Missing Azurite
//! fails the test with the install command: tests never skip silently.

pub use reprocess_emulator::azurite::{ACCOUNT, Azurite, KEY};
use std::sync::OnceLock;
use std::time::Duration;

const INSTALL: &str = "npm ci --prefix tools/azurite";

fn binary() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/azurite/node_modules/.bin/azurite-table")
}

/// The shared Azurite, started on first use.
pub fn azurite() -> &'static Azurite {
    static AZURITE: OnceLock<Azurite> = OnceLock::new();
    AZURITE.get_or_init(|| {
        let bin = binary();
        assert!(
            bin.exists(),
            "Azurite is not installed ({} is missing): run `{INSTALL}` in the repository (needs node and npm)",
            bin.display()
        );
        let mut last = String::new();
        for _ in 0..5 {
            match reprocess_emulator::azurite::start(&bin, Duration::from_secs(30), &|| false) {
                Ok(azurite) => return azurite,
                Err(e) => last = e,
            }
        }
        panic!("Azurite did not start: {last}");
    })
}
