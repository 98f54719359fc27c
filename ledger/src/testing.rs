//! Test tools shared by the test suites of several crates (like `ssn_codec::testing`): real
//! faults for real servers, nothing mocked.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy on loopback that can stop forwarding in both directions without closing
/// anything, as a stalled network path or a failover does (issue 21's silent Redis).
#[derive(Debug)]
pub struct SilentProxy {
    address: SocketAddr,
    forwarding: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentProxy {
    /// The socket address of a `redis://host:port/` URL.
    pub fn address_of(url: &str) -> SocketAddr {
        let host_port = url.trim_start_matches("redis://").trim_end_matches('/');
        std::net::ToSocketAddrs::to_socket_addrs(host_port)
            .ok()
            .and_then(|mut addresses| addresses.next())
            .unwrap_or_else(|| panic!("{url} names no socket address"))
    }

    /// Listens on a free loopback port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> SilentProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let address = listener.local_addr().expect("a bound address");
        let (forwarding, watcher) = watch::channel(true);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, watcher.clone()));
                tokio::spawn(pump(server_read, client_write, watcher.clone()));
            }
        });
        SilentProxy {
            address,
            forwarding,
            task,
        }
    }

    /// `redis://` and the proxy's address.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.address)
    }

    /// Stops forwarding: bytes read are held, nothing is closed.
    pub fn silence(&self) {
        self.forwarding.send_replace(false);
    }

    /// Forwards again, held bytes first.
    pub fn resume(&self) {
        self.forwarding.send_replace(true);
    }
}

impl Drop for SilentProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies one direction, holding each chunk while forwarding is off.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut forwarding: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if forwarding.wait_for(|on| *on).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// A self-signed P-256 certificate for 127.0.0.1 and localhost, made by the `openssl` command
/// into `dir` as `NAME.pem` and `NAME.key`: an end-entity certificate (`CA:FALSE`), as rustls
/// clients want a server's to be. For the TLS tests of the listeners and their clients.
pub fn self_signed_certificate(
    dir: &std::path::Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"])
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert, key)
}
