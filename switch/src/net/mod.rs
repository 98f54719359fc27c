//! The TCP side of the switch, knowing nothing of cards or money: the accept loop with its
//! connection limit and shutdown, and per connection the loop that frames requests, keeps
//! several in flight, and writes answers back in whatever order they finish.
//!
//! Business logic plugs in through [`Handler`]; this module only guarantees that a peer cannot
//! hurt the process or other peers (limits on connections, frames, in-flight requests,
//! unflushed bytes, and time).

mod connection;
mod cores;
mod server;
pub mod tls;

use std::future::Future;
use std::time::Duration;

use ssn_codec::{Message, MessageView};

pub use connection::ConnectionEnd;
pub use cores::{CORES_MAX, Cores};
pub use server::serve;

/// Answers requests. One handler serves every connection of a listener.
pub trait Handler: Send + Sync + 'static {
    /// The answer to `request`, or `None` when nothing is to be sent back (a response-class
    /// MTI sent to the switch, §3.6).
    fn handle(&self, request: MessageView) -> impl Future<Output = Option<Message>> + Send;
}

/// The limits a listener enforces. Every wait and queue of a connection is bounded by one.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections open at once on one listener; past it the listener stops accepting and new
    /// connections wait in the kernel's backlog.
    pub connections_max: usize,
    /// Requests of one connection being handled at once; past it the connection stops
    /// reading (backpressure through TCP) until one finishes.
    pub in_flight_per_connection_max: usize,
    /// The longest frame accepted (host interface §1, `FRAME_BYTES_MAX`).
    pub frame_bytes_max: usize,
    /// Answer bytes waiting to be written; past it the connection stops reading.
    pub write_buffer_bytes_max: usize,
    /// How long a frame that has started to arrive may take to finish (slow senders).
    pub read_timeout: Duration,
    /// How long a connection may send nothing at all before it is closed.
    pub idle_timeout: Duration,
    /// How long writing answers may take before the peer is judged not to be reading.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connections_max: 20_000,
            in_flight_per_connection_max: 64,
            frame_bytes_max: ssn_codec::FRAME_BYTES_MAX_DEFAULT,
            write_buffer_bytes_max: 256 * 1024,
            read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(10),
        }
    }
}
