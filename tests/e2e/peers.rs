//! Running the independent ISO 8583 peers prepared by `tests/peers/setup.sh`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn peers_dir() -> PathBuf {
    std::env::var_os("SSN_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/peers"))
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
                let python = std::env::var_os("SSN_PYTHON")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| peers_dir().join("venv/bin/python"));
                let mut cmd = Command::new(must_exist(python, "the pyiso8583 virtualenv"));
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
