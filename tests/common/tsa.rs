//! A real RFC 3161 Time-Stamp Authority on 127.0.0.1 for tests, built from
//! the `openssl` command: a throwaway root CA, a TSA certificate with the
//! critical timeStamping extended key usage RFC 3161 §2.3 requires, and an
//! axum server that answers `POST /` (RFC 3161 §3.4) by running
//! `openssl ts -reply`. Also small stand-ins for broken TSAs (garbage, HTTP
//! errors, silence, a closed port) and `openssl ts -verify` run the way an
//! outside party would run it.
//!
//! Everything listens on loopback only and lives in a temporary directory
//! that disappears with the value.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use tokio::sync::Mutex;

/// The TSA policy OID the local TSA puts into its tokens (a private-arc
/// test value; RFC 3161 §2.4.2 `policy`).
pub const TEST_POLICY: &str = "1.3.6.1.4.1.99999.1";

/// A running local TSA. Dropping it stops the server and removes its files.
pub struct LocalTsa {
    /// `http://127.0.0.1:<port>/`
    pub url: String,
    /// The throwaway root CA, PEM: the trust anchor for `openssl ts -verify`.
    pub ca_cert: PathBuf,
    /// The TSA's signing certificate, PEM.
    pub tsa_cert: PathBuf,
    pub dir: tempfile::TempDir,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for LocalTsa {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answers each query.
    Honest,
    /// Keeps the first query it gets and answers that one forever, so later
    /// clients get tokens with someone else's nonce and imprint.
    ReplayFirst,
}

struct Shared {
    dir: PathBuf,
    mode: Mode,
    /// Serializes `openssl ts -reply` (it reads and rewrites the serial file)
    /// and holds the first query in `ReplayFirst` mode.
    state: Mutex<Option<Vec<u8>>>,
}

impl LocalTsa {
    /// Make a throwaway CA and a TSA certificate, write the `[tsa]` openssl
    /// config and serve `POST /` on 127.0.0.1:<free port>.
    pub async fn start() -> LocalTsa {
        LocalTsa::start_with(Mode::Honest).await
    }

    /// A misbehaving TSA: it keeps the first query it got and always replies
    /// to that one, so every later request gets a token whose nonce (and,
    /// for different data, imprint) is wrong.
    pub async fn start_wrong_nonce() -> LocalTsa {
        LocalTsa::start_with(Mode::ReplayFirst).await
    }

    async fn start_with(mode: Mode) -> LocalTsa {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        make_pki(&path);
        write_config(&path);

        let shared = Arc::new(Shared {
            dir: path.clone(),
            mode,
            state: Mutex::new(None),
        });
        let app = Router::new()
            .route("/", post(answer))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LocalTsa {
            url: format!("http://{addr}/"),
            ca_cert: path.join("ca.crt"),
            tsa_cert: path.join("tsa.crt"),
            dir,
            shared,
            server,
        }
    }

    /// Verify a stored response as an outside party would:
    /// `openssl ts -verify -data <file with data> -in <tsr> -CAfile ca.pem
    /// -untrusted tsa.pem`; returns (success, combined output).
    pub fn openssl_verify(&self, data: &[u8], response_der: &[u8]) -> (bool, String) {
        let work = tempfile::tempdir_in(self.dir.path()).expect("tempdir");
        let data_file = work.path().join("checkpoint.txt");
        let tsr_file = work.path().join("checkpoint.tsr");
        std::fs::write(&data_file, data).expect("write data");
        std::fs::write(&tsr_file, response_der).expect("write tsr");
        let out = Command::new("openssl")
            .args(["ts", "-verify", "-data"])
            .arg(&data_file)
            .arg("-in")
            .arg(&tsr_file)
            .arg("-CAfile")
            .arg(&self.ca_cert)
            .arg("-untrusted")
            .arg(&self.tsa_cert)
            .output()
            .expect("run openssl ts -verify");
        let text = combined(&out);
        let ok = out.status.success() && text.contains("Verification: OK");
        (ok, text)
    }

    /// The TSA certificate as DER, decoded from its PEM file.
    pub fn tsa_cert_der(&self) -> Vec<u8> {
        pem_to_der(&std::fs::read_to_string(&self.tsa_cert).expect("read tsa.crt"))
    }

    /// The root CA certificate as DER, decoded from its PEM file.
    pub fn ca_cert_der(&self) -> Vec<u8> {
        pem_to_der(&std::fs::read_to_string(&self.ca_cert).expect("read ca.crt"))
    }

    /// Runs this TSA's `openssl ts -reply` on any query, bypassing HTTP (for
    /// queries our client would never send).
    pub async fn reply_directly(&self, query_der: &[u8]) -> Vec<u8> {
        let _guard = self.shared.state.lock().await;
        self.shared
            .reply(query_der)
            .await
            .expect("openssl ts -reply")
    }

    /// `openssl ts -query` for `data` with extra flags, e.g. `["-sha1"]`.
    pub fn openssl_query(&self, data: &[u8], flags: &[&str]) -> Vec<u8> {
        let work = tempfile::tempdir_in(self.dir.path()).expect("tempdir");
        let data_file = work.path().join("data");
        let out_file = work.path().join("q.tsq");
        std::fs::write(&data_file, data).expect("write data");
        run(Command::new("openssl")
            .args(["ts", "-query", "-data"])
            .arg(&data_file)
            .args(flags)
            .arg("-out")
            .arg(&out_file));
        std::fs::read(out_file).expect("read query")
    }

    /// `openssl ts -query -in <der> -text`: how openssl reads a request.
    pub fn openssl_query_text(&self, query_der: &[u8]) -> (bool, String) {
        let work = tempfile::tempdir_in(self.dir.path()).expect("tempdir");
        let file = work.path().join("q.tsq");
        std::fs::write(&file, query_der).expect("write query");
        let out = Command::new("openssl")
            .args(["ts", "-query", "-in"])
            .arg(&file)
            .arg("-text")
            .output()
            .expect("run openssl ts -query");
        (out.status.success(), combined(&out))
    }
}

async fn answer(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let mut state = shared.state.lock().await;
    let query = match shared.mode {
        Mode::Honest => body.to_vec(),
        Mode::ReplayFirst => state.get_or_insert_with(|| body.to_vec()).clone(),
    };
    match shared.reply(&query).await {
        Ok(der) => ([(header::CONTENT_TYPE, "application/timestamp-reply")], der).into_response(),
        Err(message) => (StatusCode::INTERNAL_SERVER_ERROR, message).into_response(),
    }
}

impl Shared {
    /// One `openssl ts -reply`; the caller holds the lock.
    async fn reply(&self, query: &[u8]) -> Result<Vec<u8>, String> {
        let query_file = self.dir.join("q.tsq");
        let reply_file = self.dir.join("r.tsr");
        let _ = std::fs::remove_file(&reply_file);
        std::fs::write(&query_file, query).map_err(|e| e.to_string())?;
        let out = tokio::process::Command::new("openssl")
            .args(["ts", "-reply", "-config"])
            .arg(self.dir.join("tsa.cnf"))
            .arg("-queryfile")
            .arg(&query_file)
            .arg("-inkey")
            .arg(self.dir.join("tsa.key"))
            .arg("-signer")
            .arg(self.dir.join("tsa.crt"))
            .arg("-chain")
            .arg(self.dir.join("ca.crt"))
            .arg("-out")
            .arg(&reply_file)
            .output()
            .await
            .map_err(|e| format!("cannot run openssl: {e}"))?;
        if !out.status.success() {
            return Err(format!("openssl ts -reply failed: {}", combined(&out)));
        }
        std::fs::read(&reply_file).map_err(|e| e.to_string())
    }
}

/// Root CA and TSA certificate, both P-256 (fast to make), valid two days.
fn make_pki(dir: &Path) {
    run(Command::new("openssl").current_dir(dir).args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/O=leakwatch tests/CN=leakwatch test root CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]));
    run(Command::new("openssl").current_dir(dir).args([
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "tsa.key",
        "-out",
        "tsa.csr",
        "-subj",
        "/O=leakwatch tests/CN=leakwatch test TSA",
    ]));
    // RFC 3161 §2.3: the TSA certificate carries exactly one extended key
    // usage, id-kp-timeStamping, marked critical.
    std::fs::write(
        dir.join("tsa_ext.cnf"),
        "[tsa_ext]\n\
         basicConstraints = critical,CA:FALSE\n\
         keyUsage = critical,digitalSignature\n\
         extendedKeyUsage = critical,timeStamping\n\
         subjectKeyIdentifier = hash\n\
         authorityKeyIdentifier = keyid\n",
    )
    .expect("write tsa_ext.cnf");
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "tsa.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "2",
        "-days",
        "2",
        "-extfile",
        "tsa_ext.cnf",
        "-extensions",
        "tsa_ext",
        "-out",
        "tsa.crt",
    ]));
}

/// The `[tsa]` section `openssl ts -reply` reads.
fn write_config(dir: &Path) {
    let config = format!(
        "[ tsa ]\n\
         default_tsa = tsa_config\n\
         [ tsa_config ]\n\
         dir = {dir}\n\
         serial = $dir/serial\n\
         crypto_device = builtin\n\
         signer_cert = $dir/tsa.crt\n\
         signer_key = $dir/tsa.key\n\
         signer_digest = sha256\n\
         default_policy = {TEST_POLICY}\n\
         other_policies = 1.3.6.1.4.1.99999.2\n\
         digests = sha256\n\
         accuracy = secs:1, millisecs:500\n\
         clock_precision_digits = 0\n\
         ordering = yes\n\
         tsa_name = yes\n\
         ess_cert_id_chain = no\n\
         ess_cert_id_alg = sha256\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("tsa.cnf"), config).expect("write tsa.cnf");
    std::fs::write(dir.join("serial"), "01\n").expect("write serial");
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run openssl (is it installed?)");
    assert!(out.status.success(), "{cmd:?} failed: {}", combined(&out));
}

fn combined(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The DER inside the first PEM block of `pem`.
pub fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .expect("PEM base64")
}

/// A loopback HTTP server that gives every POST the same canned answer,
/// optionally after a delay: a stand-in for broken TSAs.
pub struct FixedServer {
    pub url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FixedServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn serve_fixed(
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    delay: Duration,
) -> FixedServer {
    let status = StatusCode::from_u16(status).expect("status code");
    let body = Bytes::from(body);
    let app = Router::new().route(
        "/",
        post(move || {
            let body = body.clone();
            async move {
                tokio::time::sleep(delay).await;
                (status, [(header::CONTENT_TYPE, content_type)], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    FixedServer {
        url: format!("http://{addr}/"),
        server,
    }
}

/// A loopback URL where nothing listens: bind a free port, then let it go.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    format!("http://{addr}/")
}
