//! The ledger's one integration test binary.
//!
//! `contract` runs the same tests, unchanged, against every balance backend: embedded, and
//! Redis on the real `redis-server` whose URL `./scripts/test.sh` puts in `SSN_TEST_REDIS_URL`.
//! Without that variable the Redis tests fail (they never skip): a green run means every
//! backend passed.

mod alerts;
mod contract;
mod crash;
mod failures;
mod fencing;
mod group_commit;
mod registry;
mod scylla;
mod scylla_snapshots;
mod settlement;
mod silent_redis;
mod simulation;
mod snapshots;
mod support;
mod verify;
mod working_set;
mod working_set_history;
