//! The accept loop of one listener.

use std::sync::Arc;
use std::time::Duration;

use ssn_codec::Profile;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection::{ConnectionEnd, serve_connection};
use super::{Cores, Handler, Limits};

/// After an accept error (out of file descriptors, usually), wait this long before the next
/// accept rather than spinning.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` until `shutdown` is cancelled, serving each on its own
/// task on one of `cores`' threads, tracked by `tracker` (so shutdown can wait for their
/// in-flight requests), over TLS when given an acceptor (the handshake within
/// `limits.read_timeout`). At most `limits.connections_max` connections are served at once.
/// Keep `cores` alive until `tracker`'s tasks have ended: dropping the last handle on it stops
/// its threads, and the connections on them with it.
#[allow(clippy::too_many_arguments)]
pub async fn serve<H: Handler>(
    listener: TcpListener,
    cores: Arc<Cores>,
    tls: Option<TlsAcceptor>,
    profile: Profile,
    handler: Arc<H>,
    limits: Limits,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    let limits = Arc::new(limits);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = shutdown.cancelled() => return,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted.and_then(|(stream, _peer)| stream.into_std()) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        // Answers are small and latency is the product: never wait for Nagle.
        let _ = stream.set_nodelay(true);
        let (handler, limits, shutdown) = (handler.clone(), limits.clone(), shutdown.clone());
        let tls = tls.clone();
        metrics::gauge!("ssn_connections", "profile" => profile.name()).increment(1.0);
        cores.spawn(tracker.track_future(async move {
            // Registered with the reactor of the thread it will live on.
            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                metrics::gauge!("ssn_connections", "profile" => profile.name()).decrement(1.0);
                return;
            };
            let end = match tls {
                None => {
                    let halves = stream.into_split();
                    serve_connection(halves, profile, &*handler, &limits, &shutdown).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(limits.read_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(session)) => {
                            let halves = tokio::io::split(session);
                            serve_connection(halves, profile, &*handler, &limits, &shutdown)
                                .await
                        }
                        _ => {
                            super::tls::handshake_failed(profile.name());
                            ConnectionEnd::Handshake
                        }
                    }
                }
            };
            metrics::gauge!("ssn_connections", "profile" => profile.name()).decrement(1.0);
            metrics::counter!("ssn_connections_ended_total", "profile" => profile.name(), "end" => format!("{end:?}"))
                .increment(1);
            drop(permit);
        }));
    }
}
