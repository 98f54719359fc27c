//! End-to-end tests: one binary, one module per subject. Peers and servers are real: the
//! test command (`scripts/test.sh`) prepares the peers and starts the servers, and passes
//! their whereabouts in the environment.

mod admin;
mod browser;
mod codec_interop;
mod console;
mod peers;
mod report;
mod settlement;
mod switch_interop;
