//! The switch's integration tests, one binary: `net` tests the TCP layer with an echo
//! handler; `e2e` runs the real `ssn-switch` process on a demo city and talks ISO 8583 to it
//! over TCP in both profiles; `outage` kills a private Cassandra under a running switch and
//! starts it again; `multinode` runs two switch nodes at once on one Redis and one
//! Cassandra; `mac` runs §10's message authentication against the demo's terminal with a
//! TAK; `full_disk` fills the journal's filesystem under a running switch; `alerts` raises a
//! misuse alert with real ISO 8583 purchases and follows it through review to suspension.

mod alerts;
mod e2e;
mod faults;
mod full_disk;
mod mac;
mod multinode;
mod net;
mod outage;
mod redis_restart;
mod settle;
mod silent_redis;
