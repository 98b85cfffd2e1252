//! TLS the way libpq does it, on OpenSSL (postgres-openssl, the rust-postgres author's own
//! connector, so certificate, key, CRL and protocol handling are the library libpq itself
//! uses): the six `sslmode` meanings, `sslrootcert` (a file or `system`), the host-name check
//! of verify-full, client certificates with libpq's default paths and key-permission rule,
//! `sslcrl`/`sslcrldir`, `sslsni` and the protocol bounds. `require` and stronger never fall
//! back to cleartext; a failed verification says whether the chain or the host name failed.

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::{X509Lookup, X509StoreBuilderRef};
use openssl::x509::verify::X509VerifyFlags;
use postgres_openssl::MakeTlsConnector;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a session may only ever be encrypted.
    pub(crate) fn requires_tls(self) -> bool {
        self >= SslMode::Require
    }
}

/// What the server's certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    /// The system's trusted roots (`sslrootcert=system`).
    System,
}

/// How much of the server's certificate a session checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verification {
    /// Encrypted, the certificate not checked (`require` without a root certificate, `prefer`).
    None,
    /// The chain up to `sslrootcert` (`verify-ca`, or `require` with a root certificate).
    Chain,
    /// The chain and the host name (`verify-full`).
    ChainAndHostName,
}

/// The TLS settings of a target, resolved from its keywords and libpq's default files.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root: Option<RootCert>,
    /// Client certificate and key, when a certificate is present.
    pub client: Option<(PathBuf, PathBuf)>,
    pub key_password: Option<String>,
    pub crl: Option<PathBuf>,
    pub crldir: Option<PathBuf>,
    pub sni: bool,
    pub min_protocol: Option<SslVersion>,
    pub max_protocol: Option<SslVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("root certificate file \"{0}\" does not exist; either provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification")]
    NoRootCert(String),
    #[error("weak sslmode \"{0}\" may not be used with sslrootcert=system (use \"verify-full\")")]
    WeakModeWithSystemRoots(String),
    #[error("certificate present, but not private key file \"{0}\"")]
    NoKey(String),
    #[error("private key file \"{0}\" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root")]
    KeyTooOpen(String),
    #[error("private key file \"{0}\" is encrypted: give its passphrase with sslpassword")]
    KeyEncrypted(String),
    #[error("invalid {keyword} value \"{value}\"")]
    BadValue {
        keyword: &'static str,
        value: String,
    },
    #[error("TLS setup: {0}")]
    OpenSsl(String),
}

/// The values a target's keywords give, before libpq's defaults.
#[derive(Debug, Default, Clone)]
pub struct TlsKeywords<'a> {
    pub sslmode: Option<&'a str>,
    pub sslrootcert: Option<&'a str>,
    pub sslcert: Option<&'a str>,
    pub sslkey: Option<&'a str>,
    pub sslpassword: Option<&'a str>,
    pub sslcrl: Option<&'a str>,
    pub sslcrldir: Option<&'a str>,
    pub sslsni: Option<&'a str>,
    pub sslcertmode: Option<&'a str>,
    pub min_protocol: Option<&'a str>,
    pub max_protocol: Option<&'a str>,
}

impl TlsSettings {
    /// libpq's defaults: `~/.postgresql/{root.crt,root.crl,postgresql.crt,postgresql.key}`
    /// when present, TLS 1.2 at least, SNI on, and `verify-full` when the roots are `system`.
    pub fn resolve(k: &TlsKeywords<'_>, home: Option<&Path>) -> Result<TlsSettings, TlsError> {
        let dot = |name: &str| home.map(|h| h.join(".postgresql").join(name));
        let root = match k.sslrootcert.filter(|v| !v.is_empty()) {
            Some("system") => Some(RootCert::System),
            Some(file) => Some(RootCert::File(PathBuf::from(file))),
            None => dot("root.crt").filter(|p| p.is_file()).map(RootCert::File),
        };
        let mode = match k.sslmode {
            None if root == Some(RootCert::System) => SslMode::VerifyFull,
            None => SslMode::Prefer,
            Some(v) => SslMode::parse(v).ok_or_else(|| bad("sslmode", v))?,
        };
        if root == Some(RootCert::System) && mode != SslMode::VerifyFull && mode != SslMode::Disable
        {
            return Err(TlsError::WeakModeWithSystemRoots(mode.name().into()));
        }
        let root = match root {
            Some(RootCert::File(p)) if !p.is_file() => {
                if mode >= SslMode::VerifyCa {
                    return Err(TlsError::NoRootCert(p.display().to_string()));
                }
                None
            }
            None if mode >= SslMode::VerifyCa => {
                let default =
                    dot("root.crt").unwrap_or_else(|| PathBuf::from("~/.postgresql/root.crt"));
                return Err(TlsError::NoRootCert(default.display().to_string()));
            }
            other => other,
        };
        let send_cert = match k.sslcertmode {
            None | Some("allow") => true,
            Some("disable") => false,
            Some(v) => return Err(bad("sslcertmode", v)),
        };
        let cert = k
            .sslcert
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| dot("postgresql.crt"));
        let client = match cert.filter(|c| send_cert && c.is_file()) {
            Some(cert) => {
                let key = k
                    .sslkey
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| dot("postgresql.key"));
                let key = key.ok_or_else(|| TlsError::NoKey("postgresql.key".into()))?;
                check_key_file(&key)?;
                Some((cert, key))
            }
            None => None,
        };
        let crl = k
            .sslcrl
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| dot("root.crl"))
            .filter(|p| p.is_file());
        Ok(TlsSettings {
            mode,
            root,
            client,
            key_password: k.sslpassword.map(str::to_string),
            crl,
            crldir: k.sslcrldir.filter(|v| !v.is_empty()).map(PathBuf::from),
            sni: k.sslsni.is_none_or(|v| v != "0"),
            min_protocol: protocol(
                "ssl_min_protocol_version",
                k.min_protocol.or(Some("TLSv1.2")),
            )?,
            max_protocol: protocol("ssl_max_protocol_version", k.max_protocol)?,
        })
    }

    /// What a session in this mode checks of the certificate, when it is encrypted.
    pub fn verification(&self) -> Verification {
        match (self.mode, &self.root) {
            (SslMode::VerifyFull, _) => Verification::ChainAndHostName,
            (SslMode::VerifyCa, _) => Verification::Chain,
            (_, Some(_)) => Verification::Chain,
            _ => Verification::None,
        }
    }

    /// A connector for one connection attempt; a verification failure is written to the
    /// returned slot, for the message.
    pub(crate) fn connector(&self) -> Result<(MakeTlsConnector, VerifyFailure), TlsError> {
        let ossl = |e: openssl::error::ErrorStack| TlsError::OpenSsl(e.to_string());
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(ossl)?;
        b.set_min_proto_version(self.min_protocol).map_err(ossl)?;
        b.set_max_proto_version(self.max_protocol).map_err(ossl)?;
        let verification = self.verification();
        match &self.root {
            Some(RootCert::System) => b.set_default_verify_paths().map_err(ossl)?,
            Some(RootCert::File(p)) => b
                .set_ca_file(p)
                .map_err(|e| TlsError::OpenSsl(format!("sslrootcert \"{}\": {e}", p.display())))?,
            None => {}
        }
        if verification != Verification::None {
            self.load_crls(b.cert_store_mut())?;
        }
        if let Some((cert, key)) = &self.client {
            b.set_certificate_chain_file(cert)
                .map_err(|e| TlsError::OpenSsl(format!("sslcert \"{}\": {e}", cert.display())))?;
            let pkey = self.private_key(key)?;
            b.set_private_key(&pkey).map_err(ossl)?;
            b.check_private_key().map_err(|e| {
                TlsError::OpenSsl(format!(
                    "sslkey \"{}\" does not match sslcert: {e}",
                    key.display()
                ))
            })?;
        }
        let failure = VerifyFailure::default();
        let slot = failure.0.clone();
        let sni = self.sni;
        let mut connector = MakeTlsConnector::new(b.build());
        connector.set_callback(move |config, _domain| {
            config.set_use_server_name_indication(sni);
            config.set_verify_hostname(verification == Verification::ChainAndHostName);
            if verification == Verification::None {
                // nothing is checked, so nothing can have failed: no failure is recorded
                config.set_verify(SslVerifyMode::NONE);
                return Ok(());
            }
            let slot = slot.clone();
            config.set_verify_callback(SslVerifyMode::PEER, move |ok, ctx| {
                if !ok {
                    let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
                    s.get_or_insert((ctx.error().as_raw(), ctx.error().error_string().to_string()));
                }
                ok
            });
            Ok(())
        });
        Ok((connector, failure))
    }

    fn load_crls(&self, store: &mut X509StoreBuilderRef) -> Result<(), TlsError> {
        let ossl = |what: &Path, e: openssl::error::ErrorStack| {
            TlsError::OpenSsl(format!("{}: {e}", what.display()))
        };
        let mut any = false;
        if let Some(crl) = &self.crl {
            let lookup = store
                .add_lookup(X509Lookup::file())
                .map_err(|e| ossl(crl, e))?;
            lookup
                .load_crl_file(crl, openssl::ssl::SslFiletype::PEM)
                .map_err(|e| ossl(crl, e))?;
            any = true;
        }
        if let Some(dir) = &self.crldir {
            let lookup = store
                .add_lookup(X509Lookup::hash_dir())
                .map_err(|e| ossl(dir, e))?;
            lookup
                .add_dir(&dir.display().to_string(), openssl::ssl::SslFiletype::PEM)
                .map_err(|e| ossl(dir, e))?;
            any = true;
        }
        if any {
            store
                .set_flags(X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL)
                .map_err(|e| TlsError::OpenSsl(e.to_string()))?;
        }
        Ok(())
    }

    /// The client key, decrypted with `sslpassword`, as PEM: for a client tool, which cannot
    /// be given the passphrase without its command line.
    pub(crate) fn decrypted_key_pem(&self, key: &Path) -> Result<Vec<u8>, TlsError> {
        self.private_key(key)?
            .private_key_to_pem_pkcs8()
            .map_err(|e| TlsError::OpenSsl(e.to_string()))
    }

    fn private_key(
        &self,
        key: &Path,
    ) -> Result<openssl::pkey::PKey<openssl::pkey::Private>, TlsError> {
        let pem = std::fs::read(key)
            .map_err(|e| TlsError::OpenSsl(format!("sslkey \"{}\": {e}", key.display())))?;
        let shown = key.display().to_string();
        match &self.key_password {
            Some(pw) => openssl::pkey::PKey::private_key_from_pem_passphrase(&pem, pw.as_bytes())
                .map_err(|_| {
                    TlsError::OpenSsl(format!(
                        "sslkey \"{shown}\": cannot decrypt it with sslpassword"
                    ))
                }),
            None => {
                if String::from_utf8_lossy(&pem).contains("ENCRYPTED") {
                    return Err(TlsError::KeyEncrypted(shown));
                }
                openssl::pkey::PKey::private_key_from_pem(&pem)
                    .or_else(|_| openssl::pkey::PKey::private_key_from_der(&pem))
                    .map_err(|e| TlsError::OpenSsl(format!("sslkey \"{shown}\": {e}")))
            }
        }
    }
}

/// libpq's rule for a private key file: no access for group or others when the user owns it,
/// at most group read when root does.
fn check_key_file(key: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(key) else {
        return Err(TlsError::NoKey(key.display().to_string()));
    };
    let allowed = if meta.uid() == 0 { 0o037 } else { 0o077 };
    if meta.mode() & allowed != 0 {
        return Err(TlsError::KeyTooOpen(key.display().to_string()));
    }
    Ok(())
}

fn bad(keyword: &'static str, value: &str) -> TlsError {
    TlsError::BadValue {
        keyword,
        value: value.into(),
    }
}

fn protocol(keyword: &'static str, value: Option<&str>) -> Result<Option<SslVersion>, TlsError> {
    Ok(match value.filter(|v| !v.is_empty()) {
        None => None,
        Some("TLSv1") => Some(SslVersion::TLS1),
        Some("TLSv1.1") => Some(SslVersion::TLS1_1),
        Some("TLSv1.2") => Some(SslVersion::TLS1_2),
        Some("TLSv1.3") => Some(SslVersion::TLS1_3),
        Some(v) => return Err(bad(keyword, v)),
    })
}

/// The first certificate check that failed during one handshake: OpenSSL's code and text.
#[derive(Debug, Clone, Default)]
pub struct VerifyFailure(Arc<Mutex<Option<(i32, String)>>>);

/// X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
const NAME_MISMATCH: [i32; 2] = [62, 64];

impl VerifyFailure {
    /// Why the server's certificate was refused, in words that say which check failed.
    pub fn explain(&self, host: &str, root: Option<&RootCert>) -> Option<String> {
        let failure = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
        Some(if NAME_MISMATCH.contains(&failure.0) {
            format!("the server's certificate does not name the host \"{host}\" (verify-full checks the host name): {}", failure.1)
        } else {
            let roots = match root {
                Some(RootCert::File(p)) => format!("sslrootcert \"{}\"", p.display()),
                Some(RootCert::System) => "the system's trusted roots".into(),
                None => "no root certificate".into(),
            };
            format!(
                "the server's certificate is not trusted by {roots}: {}",
                failure.1
            )
        })
    }
}

/// The TLS state of one session, as the evidence records it (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionTls {
    /// Whether the session is encrypted.
    pub ssl: bool,
    /// The protocol (`TLSv1.3`) and cipher, as the server reports them (`pg_stat_ssl`).
    pub protocol: Option<String>,
    pub cipher: Option<String>,
    /// What of the server's certificate was checked.
    pub verified: Verification,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keywords(mode: &str) -> TlsKeywords<'_> {
        TlsKeywords {
            sslmode: Some(mode),
            ..Default::default()
        }
    }

    #[test]
    fn verify_modes_need_a_root_certificate() {
        let home = tempfile::tempdir().unwrap();
        let err = TlsSettings::resolve(&keywords("verify-full"), Some(home.path())).unwrap_err();
        assert!(matches!(err, TlsError::NoRootCert(_)), "{err}");
        let ok = TlsSettings::resolve(&keywords("require"), Some(home.path())).unwrap();
        assert_eq!(ok.verification(), Verification::None);
    }

    #[test]
    fn require_with_a_root_certificate_checks_the_chain_as_libpq_does() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".postgresql")).unwrap();
        std::fs::write(home.path().join(".postgresql/root.crt"), b"x").unwrap();
        let s = TlsSettings::resolve(&keywords("require"), Some(home.path())).unwrap();
        assert_eq!(s.verification(), Verification::Chain);
    }

    #[test]
    fn system_roots_mean_verify_full() {
        let k = TlsKeywords {
            sslrootcert: Some("system"),
            ..Default::default()
        };
        assert_eq!(
            TlsSettings::resolve(&k, None).unwrap().mode,
            SslMode::VerifyFull
        );
        let k = TlsKeywords {
            sslrootcert: Some("system"),
            sslmode: Some("require"),
            ..Default::default()
        };
        assert!(matches!(
            TlsSettings::resolve(&k, None),
            Err(TlsError::WeakModeWithSystemRoots(_))
        ));
    }

    #[test]
    fn a_key_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.crt"), dir.path().join("c.key"));
        std::fs::write(&cert, b"x").unwrap();
        std::fs::write(&key, b"x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (c, k) = (cert.display().to_string(), key.display().to_string());
        let kw = TlsKeywords {
            sslmode: Some("require"),
            sslcert: Some(&c),
            sslkey: Some(&k),
            ..Default::default()
        };
        // root may own a 0640 key, a user may not: this file is 0644 either way
        assert!(matches!(
            TlsSettings::resolve(&kw, None),
            Err(TlsError::KeyTooOpen(_))
        ));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(TlsSettings::resolve(&kw, None).unwrap().client.is_some());
    }

    #[test]
    fn an_unknown_mode_is_named() {
        let err = TlsSettings::resolve(&keywords("verify"), None).unwrap_err();
        assert_eq!(err.to_string(), "invalid sslmode value \"verify\"");
    }
}
