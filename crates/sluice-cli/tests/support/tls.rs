//! A throwaway PostgreSQL that only speaks TLS, as RDS with `rds.force_ssl` or a corporate
//! `pg_hba.conf` is set up: a CA and a server certificate made by the test (rcgen), `ssl = on`,
//! `hostssl` lines only on 127.0.0.1 (cleartext TCP is rejected), SCRAM passwords, and one role
//! that logs in with a client certificate. Also a plain server listening on TCP without TLS.

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertifiedIssuer, DnType, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SerialNumber,
};
use sluice::cluster::{Cluster, ClusterOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The password of `workflow_admin` (the reference package's role) on the TLS server.
pub const PASSWORD: &str = "tls-test-Secret-7d1f";
/// The role that logs in with a client certificate.
pub const CERT_USER: &str = "certuser";

pub struct TlsServer {
    pub cluster: Cluster,
    /// Where the client-side files are: `ca.crt`, `other-ca.crt`, `client.crt`, `client.key`.
    pub files: tempfile::TempDir,
    /// The unix-socket conninfo of the fixture database as `workflow_admin` (for test set-up
    /// and fingerprints: the socket stays trusted).
    pub socket_conninfo: String,
}

impl TlsServer {
    pub fn port(&self) -> u16 {
        self.cluster.port()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }

    /// `host=localhost port=… dbname=directus user=workflow_admin` and `extra`.
    pub fn conninfo(&self, extra: &str) -> String {
        format!(
            "host=localhost port={} dbname=directus user=workflow_admin {extra}",
            self.port()
        )
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// The serial number of the server's certificate, which `revoked.crl` revokes.
const SERVER_SERIAL: u64 = 4242;

/// A certificate for `names` (DNS names) with common name `cn`, signed by `issuer`: (cert, key).
fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    names: &[&str],
    serial: u64,
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.serial_number = Some(SerialNumber::from(serial));
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A CRL of the CA that revokes the server's certificate, PEM.
fn revoking_server(issuer: &CertifiedIssuer<'static, KeyPair>) -> String {
    let params = CertificateRevocationListParams {
        this_update: date_time_ymd(2026, 1, 1),
        next_update: date_time_ymd(2099, 1, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(SERVER_SERIAL),
            revocation_time: date_time_ymd(2026, 1, 1),
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(issuer).unwrap().pem().unwrap()
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn server_binaries() -> sluice::cluster::ServerBinaries {
    sluice_testkit::server()
}

/// The TLS-only server with the reference fixture loaded. The server certificate names only
/// `localhost` (so connecting to 127.0.0.1 under verify-full fails the host-name check).
pub fn tls_server() -> TlsServer {
    let authority = ca("sluice test CA");
    let (server_crt, server_key) = leaf(&authority, "localhost", &["localhost"], SERVER_SERIAL);
    let (client_crt, client_key) = leaf(&authority, CERT_USER, &[], 7);
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("ca.crt"), authority.pem()).unwrap();
    std::fs::write(files.path().join("other-ca.crt"), ca("another CA").pem()).unwrap();
    std::fs::write(files.path().join("client.crt"), &client_crt).unwrap();
    std::fs::write(
        files.path().join("revoked.crl"),
        revoking_server(&authority),
    )
    .unwrap();
    write_private(&files.path().join("client.key"), &client_key);

    let mut options = ClusterOptions::new(server_binaries());
    options.settings = vec![
        ("listen_addresses".into(), "127.0.0.1".into()),
        ("ssl".into(), "on".into()),
        ("ssl_cert_file".into(), "server.crt".into()),
        ("ssl_key_file".into(), "server.key".into()),
        ("ssl_ca_file".into(), "ca.crt".into()),
        ("password_encryption".into(), "scram-sha-256".into()),
    ];
    options.hba_lines = vec![
        format!("hostssl all {CERT_USER} 127.0.0.1/32 cert"),
        "hostssl all all 127.0.0.1/32 scram-sha-256".into(),
        "hostnossl all all 0.0.0.0/0 reject".into(),
        "host all all ::1/128 reject".into(),
    ];
    options.data_files = vec![
        ("server.crt".into(), server_crt.into_bytes()),
        ("server.key".into(), server_key.into_bytes()),
        ("ca.crt".into(), authority.pem().into_bytes()),
    ];
    let cluster = Cluster::start(options).expect("TLS cluster starts");
    let socket_conninfo = sluice::reference::prepare_target(&cluster).expect("fixture loads");
    let mut admin = cluster.connect("postgres").unwrap();
    admin
        .batch_execute(&format!(
            "ALTER ROLE workflow_admin PASSWORD '{PASSWORD}'; CREATE ROLE {CERT_USER} LOGIN; \
             GRANT pg_read_all_data TO {CERT_USER}"
        ))
        .unwrap();
    TlsServer {
        cluster,
        files,
        socket_conninfo,
    }
}

/// A server listening on 127.0.0.1 without TLS (`ssl = off`), the fixture loaded, TCP trusted.
pub fn plain_tcp_server() -> (Cluster, String) {
    let mut options = ClusterOptions::new(server_binaries());
    options.settings = vec![
        ("listen_addresses".into(), "127.0.0.1".into()),
        ("ssl".into(), "off".into()),
    ];
    options.hba_lines = vec!["host all all 127.0.0.1/32 trust".into()];
    let cluster = Cluster::start(options).expect("cluster starts");
    let socket_conninfo = sluice::reference::prepare_target(&cluster).expect("fixture loads");
    (cluster, socket_conninfo)
}
