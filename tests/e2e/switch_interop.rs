//! The switch against independent implementations of the host interface: a jPOS terminal
//! (`NACChannel` + `ISO87BPackager`, the `bcd` port) and a pyiso8583 host link (4-digit ASCII
//! framing, `default_ascii`, the `ascii` port) each run sign-on, purchase, balance inquiry,
//! reversal, balance inquiry and batch close against a real `ssn-switch serve --demo`. The
//! peers check every answer themselves (tests/peers/README.md); these tests check them again
//! from the peers' JSON lines, so that a peer that checks too little cannot pass.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::peers::{ClientRun, Peer, python, workspace_root};

/// How long the switch may take to provision the demo city and announce its ports.
const LISTENING_DEADLINE: Duration = Duration::from_secs(60);

/// The steps each peer runs, in order, with the MTI of the answer each must get.
const STEPS: [(&str, &str); 6] = [
    ("sign_on", "0810"),
    ("purchase", "0210"),
    ("balance_inquiry", "0210"),
    ("reversal", "0410"),
    ("balance_after_reversal", "0210"),
    ("batch_close", "0510"),
];

/// DE54 (contract §5): account type 00, available amount, IDR, credit, then 12 digits.
const BALANCE_PREFIX: &str = "0002360C";

#[test]
fn jpos_terminal_runs_the_everyday_conversation_over_bcd() {
    let switch = Switch::start();
    let run = Peer::JposBinary.client(&switch.bcd, &switch.data_dir.join("demo.json"));
    check(&switch, &run);
    for step in &run.steps {
        assert_eq!(
            step["tpdu"], "6000000001",
            "the answer's TPDU has the request's NIIs swapped: {step}"
        );
    }
}

#[test]
fn pyiso8583_host_runs_the_everyday_conversation_over_ascii() {
    let switch = Switch::start();
    let run = Peer::PyIso8583.client(&switch.ascii, &switch.data_dir.join("demo.json"));
    check(&switch, &run);
}

/// Host interface §10 against jPOS's own MAC (`JCESecurityModule.generateCBC_MAC`, the
/// BouncyCastle retail MAC) and key import, on each listener: jPOS MACs a sign-on and a purchase
/// the switch approves, with answers whose MACs jPOS verifies over the bytes it received; a
/// purchase with one byte changed after MACing gets `63` and no MAC; the key change's DE48
/// opens under jPOS with both check values right, and the new TAK works where the old one gets
/// `63`. A switch per profile: the first run changes the terminal's keys.
#[test]
fn jpos_macs_what_the_switch_verifies_and_verifies_what_the_switch_macs() {
    for profile in ["bcd", "ascii"] {
        let switch = Switch::start();
        let address = if profile == "bcd" {
            &switch.bcd
        } else {
            &switch.ascii
        };
        let run = Peer::JposBinary.mac_client(profile, address, &switch.data_dir.join("demo.json"));
        let seen: Vec<(String, String, String)> = run
            .steps
            .iter()
            .map(|step| {
                let field = |value: &Value| value.as_str().unwrap_or_default().to_string();
                (
                    field(&step["step"]),
                    field(&step["fields"]["39"]),
                    field(&step["mac"]),
                )
            })
            .collect();
        let expected = [
            ("sign_on", "00", "verified"),
            ("purchase", "00", "verified"),
            ("tampered", "63", "none"),
            ("key_change", "00", "verified"),
            ("purchase_new_keys", "00", "verified"),
            ("purchase_old_tak", "63", "none"),
        ]
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
        assert_eq!(
            seen,
            expected,
            "{profile}: {}\n{}",
            run.stderr,
            switch.log()
        );
        assert!(run.success, "{profile}: {}", run.stderr);
        assert_eq!(
            text(&run.steps[3]["fields"], "48").len(),
            76,
            "DE48 carries the TPK and the TAK"
        );
    }
}

/// TLS on every listener, with Python's `ssl` and curl as the clients: the pyiso8583 host link
/// runs the whole conversation over TLS with the one client certificate the `ascii` listener
/// lets in (mutual TLS), and is refused with another certificate, with none, and in the clear;
/// the `bcd` listener echoes a keep-alive over TLS; the admin API answers over HTTPS only.
#[test]
fn every_listener_speaks_tls_and_the_host_link_lets_in_only_its_certificate() {
    let certs = TempCerts::new();
    let (server_cert, server_key) = certs.make("switch");
    let (bank_cert, bank_key) = certs.make("bank");
    let (other_cert, other_key) = certs.make("other");
    let switch = Switch::start_with(&[
        OsStr::new("--tls-cert"),
        server_cert.as_os_str(),
        OsStr::new("--tls-key"),
        server_key.as_os_str(),
        OsStr::new("--ascii-client-certs"),
        bank_cert.as_os_str(),
    ]);
    let manifest = switch.data_dir.join("demo.json");
    let tls = |cert: Option<(&Path, &Path)>| {
        let mut args: Vec<&OsStr> = vec![OsStr::new("--tls-ca"), server_cert.as_os_str()];
        if let Some((cert, key)) = cert {
            args.extend([
                OsStr::new("--tls-cert"),
                cert.as_os_str(),
                OsStr::new("--tls-key"),
                key.as_os_str(),
            ]);
        }
        Peer::PyIso8583.client_with(&switch.ascii, &manifest, &args)
    };

    let run = tls(Some((&bank_cert, &bank_key)));
    check(&switch, &run);

    for (who, run) in [
        (
            "another client certificate",
            tls(Some((&other_cert, &other_key))),
        ),
        ("no client certificate", tls(None)),
        (
            "plaintext",
            Peer::PyIso8583.client_with(&switch.ascii, &manifest, &[]),
        ),
    ] {
        assert!(!run.success, "{who} was let in: {:?}", run.steps);
        assert!(run.steps.is_empty(), "{who} got answers: {:?}", run.steps);
    }

    // The terminals' listener: a keep-alive (a frame of length zero) comes back over TLS.
    let echo = Command::new(python())
        .args(["-c", KEEP_ALIVE_OVER_TLS, &switch.bcd])
        .arg(&server_cert)
        .output()
        .expect("python runs");
    assert!(
        echo.status.success() && echo.stdout == b"0000",
        "bcd keep-alive over TLS: {:?} {}",
        String::from_utf8_lossy(&echo.stdout),
        String::from_utf8_lossy(&echo.stderr)
    );

    // The admin API: HTTPS with the switch's certificate, nothing in the clear.
    let curl = |url: String| {
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg("--cacert")
            .arg(&server_cert)
            .arg(url)
            .output()
            .expect("curl runs")
    };
    let https = curl(format!("https://{}/healthz", switch.admin));
    assert_eq!(
        String::from_utf8_lossy(&https.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&https.stderr)
    );
    let clear = curl(format!("http://{}/healthz", switch.admin));
    assert_ne!(String::from_utf8_lossy(&clear.stdout), "200");
}

/// Python: connect over TLS to argv[1] trusting argv[2], send a `bcd` keep-alive, print the
/// two bytes that come back in hex.
const KEEP_ALIVE_OVER_TLS: &str = "
import socket, ssl, sys
host, port = sys.argv[1].rsplit(':', 1)
context = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection((host, int(port)), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(bytes(2))
        data = b''
        while len(data) < 2:
            chunk = tls.recv(2 - len(data))
            if not chunk:
                break
            data += chunk
sys.stdout.write(data.hex())
";

/// Self-signed certificates made by the `openssl` command for one test, removed on drop.
struct TempCerts(PathBuf);

impl TempCerts {
    fn new() -> TempCerts {
        let dir = std::env::temp_dir().join(format!(
            "ssn-certs-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempCerts(dir)
    }

    /// A P-256 certificate for 127.0.0.1 and localhost named `name`, and its key.
    fn make(&self, name: &str) -> (PathBuf, PathBuf) {
        ssn_ledger::testing::self_signed_certificate(&self.0, name)
    }
}

impl Drop for TempCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Checks the peer's run: every step answered `00` with its MTI, the purchase authorized, the
/// balance unchanged by the inquiry and restored by the reversal.
fn check(switch: &Switch, run: &ClientRun) {
    let context = || {
        format!(
            "peer stderr:\n{}\npeer steps:\n{}\nswitch log:\n{}",
            run.stderr,
            run.steps
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            switch.log()
        )
    };
    assert!(
        run.success,
        "the peer found an unexpected answer\n{}",
        context()
    );
    let names: Vec<&str> = run
        .steps
        .iter()
        .map(|s| s["step"].as_str().unwrap_or("?"))
        .collect();
    let expected: Vec<&str> = STEPS.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, expected, "{}", context());

    let terminal_id = switch.manifest["terminals"][0]["terminal_id"]
        .as_str()
        .unwrap();
    let fields: Vec<&Value> = run.steps.iter().map(|s| &s["fields"]).collect();
    for ((name, mti), (step, fields)) in STEPS.iter().zip(run.steps.iter().zip(&fields)) {
        assert_eq!(step["mti"], *mti, "{name}: MTI\n{}", context());
        assert_eq!(fields["39"], "00", "{name}: DE39\n{}", context());
        assert_eq!(fields["41"], terminal_id, "{name}: DE41\n{}", context());
    }
    let [_, purchase, inquiry, reversal, after_reversal, _] = fields[..] else {
        unreachable!("six steps, checked above")
    };

    assert_eq!(
        text(purchase, "37").len(),
        12,
        "purchase: RRN\n{}",
        context()
    );
    assert_eq!(
        text(purchase, "38").len(),
        6,
        "purchase: authorization id\n{}",
        context()
    );
    let amount: u64 = text(purchase, "4").parse().expect("purchase: DE4 digits");
    assert!(amount > 0, "purchase: DE4 {amount}");
    let after_purchase = balance(purchase);
    assert_eq!(
        balance(inquiry),
        after_purchase,
        "an inquiry moves no money\n{}",
        context()
    );
    assert!(
        !inquiry.as_object().unwrap().contains_key("38"),
        "an inquiry authorizes nothing"
    );

    assert_eq!(text(reversal, "2"), text(purchase, "2"), "reversal: DE2");
    assert_eq!(text(reversal, "4"), text(purchase, "4"), "reversal: DE4");
    let original = format!(
        "0200{}{}{}",
        text(purchase, "11"),
        text(purchase, "7"),
        "0".repeat(22)
    );
    assert_eq!(
        text(reversal, "90"),
        original,
        "reversal: DE90 names the purchase"
    );
    let restored = after_purchase.checked_add(amount).expect("no overflow");
    assert_eq!(
        balance(after_reversal),
        restored,
        "the reversal gives the purchase amount back\n{}",
        context()
    );
}

fn text<'a>(fields: &'a Value, key: &str) -> &'a str {
    fields[key]
        .as_str()
        .unwrap_or_else(|| panic!("DE{key} missing in {fields}"))
}

/// The available balance in DE54, in minor units.
fn balance(fields: &Value) -> u64 {
    let de54 = text(fields, "54");
    assert_eq!(de54.len(), 20, "DE54 {de54:?}");
    assert!(de54.starts_with(BALANCE_PREFIX), "DE54 {de54:?}");
    de54[8..]
        .parse()
        .unwrap_or_else(|e| panic!("DE54 {de54:?}: {e}"))
}

/// A running `ssn-switch serve --demo` on a data directory of its own, killed by PID (SIGKILL)
/// and its directory removed when dropped, whether the test passed or not.
struct Switch {
    /// The process, so that Drop can kill exactly this one.
    child: Child,
    /// The demo city the switch provisioned; removed on drop.
    data_dir: PathBuf,
    /// Where the switch wrote its stderr; shown when a test fails, removed on drop.
    log_path: PathBuf,
    /// `127.0.0.1:PORT` of the `bcd` listener.
    bcd: String,
    /// `127.0.0.1:PORT` of the `ascii` listener.
    ascii: String,
    /// `127.0.0.1:PORT` of the admin listener.
    admin: String,
    /// `DATA_DIR/demo.json`: terminals with their keys, cards with their PINs.
    manifest: Value,
}

static RUNS: AtomicU32 = AtomicU32::new(0);

impl Switch {
    fn start() -> Switch {
        Switch::start_with(&[])
    }

    /// A switch with more `serve` arguments.
    fn start_with(more: &[&OsStr]) -> Switch {
        let name = format!(
            "ssn-interop-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::SeqCst)
        );
        let data_dir = std::env::temp_dir().join(&name);
        let log_path = std::env::temp_dir().join(format!("{name}.log"));
        let _ = std::fs::remove_dir_all(&data_dir);
        let log = std::fs::File::create(&log_path).expect("switch log file");
        let child = Command::new(switch_binary())
            .args(["serve", "--demo", "--demo-cards", "12", "--data-dir"])
            .arg(&data_dir)
            .args([
                "--bcd-listen",
                "127.0.0.1:0",
                "--ascii-listen",
                "127.0.0.1:0",
            ])
            .args(["--admin-listen", "127.0.0.1:0", "--log", "warn"])
            .args(more)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("ssn-switch starts");
        // From here on Drop kills the process, whatever fails next.
        let mut switch = Switch {
            child,
            data_dir,
            log_path,
            bcd: String::new(),
            ascii: String::new(),
            admin: String::new(),
            manifest: Value::Null,
        };
        let ready = switch.listening_line();
        switch.bcd = ready["bcd"].as_str().expect("bcd address").to_string();
        switch.ascii = ready["ascii"].as_str().expect("ascii address").to_string();
        switch.admin = ready["admin"].as_str().expect("admin address").to_string();
        let manifest = std::fs::read(switch.data_dir.join("demo.json")).expect("demo manifest");
        switch.manifest = serde_json::from_slice(&manifest).expect("demo manifest is JSON");
        switch
    }

    /// Waits, with a deadline, for the one JSON line the switch prints once it listens.
    fn listening_line(&mut self) -> Value {
        let stdout = self.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining, so that the switch never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(LISTENING_DEADLINE).unwrap_or_else(|_| {
            panic!(
                "no listening line in {LISTENING_DEADLINE:?}\n{}",
                self.log()
            )
        });
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("listening line {line:?}: {e}\n{}", self.log()));
        assert_eq!(ready["event"], "listening", "{line}");
        ready
    }

    /// What the switch has written on stderr so far.
    fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// `target/debug/ssn-switch` of this workspace, built once if it is not there yet. A binary
/// that is there is used as it is: `cargo test --workspace` (scripts/test.sh) builds it first.
fn switch_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let root = workspace_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(|dir| root.join(dir))
            .unwrap_or_else(|| root.join("target"));
        let binary = target.join("debug/ssn-switch");
        if !binary.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "ssn-switch"])
                .current_dir(&root)
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cargo build -p ssn-switch failed");
        }
        assert!(binary.exists(), "no switch at {}", binary.display());
        binary
    })
}
