//! The server's log: one line per event on stderr, with the time (UTC),
//! the level and the module that speaks. Through `tracing`, which tonic,
//! h2 and hyper speak too, so their events land in the same log.
//!
//! Written by default: turnoutctl's own events from `info` up, and its
//! libraries' warnings (their `info` is per connection, noise next to the
//! server's own lines). `RUST_LOG` replaces that with its `target=level`
//! list: `RUST_LOG=debug`, `RUST_LOG=turnoutctl=info,h2=debug`.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// Starts the log, once, before the server says anything.
pub fn start() {
    let (filter, refused) = filter(std::env::var("RUST_LOG").ok().as_deref());
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // Fails only if a subscriber is already set; nothing else in the
    // binary sets one.
    let _ = tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .try_init();
    if let Some(refused) = refused {
        tracing::warn!("{refused}");
    }
}

/// What `RUST_LOG` asks to write, or the default and why it was refused.
fn filter(rust_log: Option<&str>) -> (Targets, Option<String>) {
    let default = Targets::new()
        .with_target("turnoutctl", LevelFilter::INFO)
        .with_default(LevelFilter::WARN);
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        None => (default, None),
        Some(spec) => match spec.parse::<Targets>() {
            Ok(asked) => (asked, None),
            Err(e) => (
                default,
                Some(format!(
                    "RUST_LOG={spec:?} ignored, not a target=level list: {e}"
                )),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn the_server_speaks_at_info_its_libraries_at_warn_unless_told() {
        let (default, refused) = filter(None);
        assert!(refused.is_none());
        assert!(default.would_enable("turnoutctl::serve::xds", &Level::INFO));
        assert!(!default.would_enable("turnoutctl::serve::xds", &Level::DEBUG));
        assert!(!default.would_enable("h2::codec", &Level::INFO));
        assert!(default.would_enable("h2::codec", &Level::WARN));

        let (asked, _) = filter(Some("h2=debug,turnoutctl=warn"));
        assert!(asked.would_enable("h2::codec", &Level::DEBUG));
        assert!(!asked.would_enable("turnoutctl::serve", &Level::INFO));
        let (everything, _) = filter(Some("debug"));
        assert!(everything.would_enable("tonic", &Level::DEBUG));

        let (kept, refused) = filter(Some("turnoutctl=loud"));
        assert!(kept.would_enable("turnoutctl::serve", &Level::INFO));
        assert!(refused.is_some_and(|r| r.contains("turnoutctl=loud")));
    }
}
