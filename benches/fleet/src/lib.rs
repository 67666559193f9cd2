//! The fleet benchmark (`cargo bench-fleet`, BENCHMARKS.md "Fleet at
//! 1,000 proxies"): the real `turnoutctl serve`, built from this
//! workspace, serving a scratch directory to a thousand simulated ECDS
//! proxies (`sim`, each deciding as its `answer::Answerer` says) beside a
//! few real Envoys (`envoys`). It measures, in one run, the time from a
//! file's rename to the last ACK, the server's CPU per push and memory,
//! and a reconnect storm after the server is killed and started again
//! (`run`), and shows them as a table and JSON lines (`figures`).

pub mod answer;
mod envoys;
pub mod figures;
mod run;
pub mod server;
mod sim;

pub use run::{run, Options};
