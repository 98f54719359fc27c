//! Running the independent ISO 8583 peers prepared by `tests/peers/setup.sh`.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a peer's whole conversation with a switch may take, JVM start included; the peers'
/// own socket reads give up after 30 s, so this only catches a peer that hangs elsewhere.
const CLIENT_DEADLINE: Duration = Duration::from_secs(90);

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn peers_dir() -> PathBuf {
    std::env::var_os("SSN_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/peers"))
}

/// The Python of the peers' virtualenv (pyiso8583, and `ssl` for the TLS tests).
pub fn python() -> PathBuf {
    let python = std::env::var_os("SSN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| peers_dir().join("venv/bin/python"));
    must_exist(python, "the pyiso8583 virtualenv")
}

/// The peer's command, or a failure that says how to get it: these tests never skip.
fn must_exist(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} not found at {}: run ./scripts/test.sh (it installs the peers), \
         or tests/peers/setup.sh target/peers",
        path.display()
    );
    path
}

/// Which independent implementation to run.
#[derive(Clone, Copy, Debug)]
pub enum Peer {
    /// pyiso8583 4.0.1 with its `default_ascii` spec.
    PyIso8583,
    /// jPOS with `ISO87BPackager`.
    JposBinary,
}

/// The jPOS peer's main class (tests/peers/README.md).
pub const JPOS_MAIN_CLASS: &str = "ssn.peers.Peer";

impl Peer {
    fn command(self) -> Command {
        match self {
            Peer::PyIso8583 => {
                let mut cmd = Command::new(python());
                cmd.arg(workspace_root().join("tests/peers/pyiso/peer.py"));
                cmd
            }
            Peer::JposBinary => {
                let classpath = match std::env::var("SSN_JPOS_CLASSPATH") {
                    Ok(cp) => cp,
                    Err(_) => {
                        let file =
                            must_exist(peers_dir().join("jpos/classpath.txt"), "the jPOS peer");
                        std::fs::read_to_string(file).unwrap().trim().to_string()
                    }
                };
                let mut cmd = Command::new("java");
                cmd.args(["-cp", &classpath, JPOS_MAIN_CLASS]);
                cmd
            }
        }
    }

    /// Asks the peer for `count` random messages from `seed`, as JSON lines.
    pub fn generate(self, count: usize, seed: u64) -> Vec<serde_json::Value> {
        let (count, seed) = (count.to_string(), seed.to_string());
        match self {
            Peer::PyIso8583 => self.run(&["gen", "--count", &count, "--seed", &seed], ""),
            Peer::JposBinary => self.run(&["gen", &count, &seed], ""),
        }
    }

    /// Runs the peer with `args`, feeding `input`, and returns its stdout lines as JSON.
    pub fn run(self, args: &[&str], input: &str) -> Vec<serde_json::Value> {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{self:?} did not start: {e}"));
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_string();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(
            output.status.success(),
            "{self:?} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{self:?} wrote {l:?}: {e}"))
            })
            .collect()
    }
}

/// What a peer's `client` mode did against a running switch (tests/peers/README.md).
#[derive(Debug)]
pub struct ClientRun {
    /// Whether the peer found every answer as the contract wants it (exit status 0).
    pub success: bool,
    /// One `{"step", "mti", "fields"}` object per answer, in the order the peer sent them.
    pub steps: Vec<serde_json::Value>,
    /// What the peer wrote on stderr: the reason when `success` is false.
    pub stderr: String,
}

impl Peer {
    /// Runs the peer as a terminal (jPOS, `bcd` port) or host link (pyiso8583, `ascii` port)
    /// against the switch at `address`, with the demo city described by `manifest`.
    pub fn client(self, address: &str, manifest: &Path) -> ClientRun {
        self.client_with(address, manifest, &[])
    }

    /// [`Peer::client`] with more arguments (pyiso8583's `--tls-ca`, `--tls-cert`, `--tls-key`).
    pub fn client_with(self, address: &str, manifest: &Path, more: &[&OsStr]) -> ClientRun {
        let mut args = vec![
            OsStr::new("client"),
            OsStr::new(address),
            manifest.as_os_str(),
        ];
        args.extend(more);
        self.converse(&args)
    }

    /// The jPOS terminal that MACs its messages (`mac-client`, host interface §10) on the
    /// `profile` (`bcd` or `ascii`) listener at `address`.
    pub fn mac_client(self, profile: &str, address: &str, manifest: &Path) -> ClientRun {
        self.converse(&[
            OsStr::new("mac-client"),
            OsStr::new(profile),
            OsStr::new(address),
            manifest.as_os_str(),
        ])
    }

    /// Runs the peer with `args` against a running switch and collects its JSON lines.
    fn converse(self, args: &[&OsStr]) -> ClientRun {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{self:?} client did not start: {e}"));
        // Both pipes are read to their end on threads, which ends when the peer exits; the
        // deadline bounds the wait for that.
        let (tx, rx) = mpsc::channel();
        let pipes: [(bool, Box<dyn Read + Send>); 2] = [
            (true, Box::new(child.stdout.take().unwrap())),
            (false, Box::new(child.stderr.take().unwrap())),
        ];
        for (is_stdout, mut pipe) in pipes {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                let _ = tx.send((is_stdout, text));
            });
        }
        let end = Instant::now() + CLIENT_DEADLINE;
        let (mut stdout, mut stderr) = (String::new(), String::new());
        for _ in 0..2 {
            match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
                Ok((true, text)) => stdout = text,
                Ok((false, text)) => stderr = text,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{self:?} client did not finish within {CLIENT_DEADLINE:?}");
                }
            }
        }
        let status = child.wait().unwrap();
        let steps = stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{self:?} client wrote {l:?}: {e}\n{stderr}"))
            })
            .collect();
        ClientRun {
            success: status.success(),
            steps,
            stderr,
        }
    }
}
