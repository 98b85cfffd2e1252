//! One target's settings as libpq resolves them: the connection string's keywords, then the
//! service's (`service=NAME` or `PGSERVICE`), then each keyword's environment variable, then
//! libpq's defaults — each value remembering where it came from, so the evidence can say
//! "sslmode=require (from PGSSLMODE)". Keywords sluice cannot honour are refused here, never
//! ignored.

use super::conninfo::{self, ConninfoError};
use super::keyword::{Keyword, Support};
use super::service::{self, ServiceError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "name")]
pub enum Source {
    /// `--target`.
    Target,
    /// A service file's section.
    Service(String),
    /// An environment variable.
    Env(&'static str),
    /// libpq's default.
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Target => f.write_str("from --target"),
            Source::Service(file) => write!(f, "from the service in {file}"),
            Source::Env(var) => write!(f, "from {var}"),
            Source::Default => f.write_str("default"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Setting {
    pub value: String,
    pub source: Source,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--target: {0}")]
    Conninfo(#[from] ConninfoError),
    #[error("{0}")]
    Service(#[from] ServiceError),
    #[error("{keyword}={value} ({origin}) is not supported by sluice: {why}")]
    Unsupported {
        keyword: Keyword,
        value: String,
        origin: Source,
        why: &'static str,
    },
    #[error("invalid {keyword} value \"{value}\" ({origin}): {expected}")]
    BadValue {
        keyword: Keyword,
        value: String,
        origin: Source,
        expected: &'static str,
    },
}

/// Reads an environment variable (the process's, or a test's).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Every keyword a target sets, with its source. A secret's value is only read through
/// [`Settings::secret`].
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<Keyword, Setting>,
    pub home: Option<PathBuf>,
}

impl Settings {
    /// Resolves `--target` (absent: only the environment and defaults) as libpq does.
    pub fn resolve(spec: Option<&str>, env: Env<'_>) -> Result<Settings, SettingsError> {
        let mut settings = Settings {
            values: BTreeMap::new(),
            home: env("HOME").filter(|h| !h.is_empty()).map(PathBuf::from),
        };
        for (keyword, value) in conninfo::parse(spec.unwrap_or(""))? {
            settings.set(keyword, value, Source::Target);
        }
        settings.add_service(env)?;
        for keyword in Keyword::ALL {
            if let Some(var) = keyword.env() {
                if let Some(value) = env(var).filter(|v| !v.is_empty()) {
                    settings.fill(*keyword, value, Source::Env(var));
                }
            }
        }
        settings.add_defaults(env);
        settings.refuse_unsupported()?;
        Ok(settings)
    }

    fn set(&mut self, keyword: Keyword, value: String, source: Source) {
        self.values.insert(keyword, Setting { value, source });
    }

    fn fill(&mut self, keyword: Keyword, value: String, source: Source) {
        self.values
            .entry(keyword)
            .or_insert(Setting { value, source });
    }

    fn add_service(&mut self, env: Env<'_>) -> Result<(), SettingsError> {
        let Some(name) = self.get(Keyword::Service).map(str::to_string) else {
            if let Some(name) = env("PGSERVICE").filter(|v| !v.is_empty()) {
                self.set(Keyword::Service, name, Source::Env("PGSERVICE"));
                return self.add_service(env);
            }
            return Ok(());
        };
        let servicefile = self
            .get(Keyword::Servicefile)
            .map(str::to_string)
            .or_else(|| env("PGSERVICEFILE").filter(|v| !v.is_empty()));
        let sysconfdir = env("PGSYSCONFDIR");
        let files = service::files(
            servicefile.as_deref(),
            sysconfdir.as_deref(),
            self.home.as_deref(),
        );
        let (file, pairs) = service::read(&name, &files)?;
        for (keyword, value) in pairs {
            self.fill(keyword, value, Source::Service(file.display().to_string()));
        }
        Ok(())
    }

    fn add_defaults(&mut self, env: Env<'_>) {
        let os_user = env("USER")
            .or_else(|| env("LOGNAME"))
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres".into());
        self.fill(Keyword::User, os_user, Source::Default);
        let user = self.get(Keyword::User).unwrap_or("postgres").to_string();
        self.fill(Keyword::Dbname, user, Source::Default);
        self.fill(Keyword::Port, "5432".into(), Source::Default);
        if self.get(Keyword::Host).is_none() && self.get(Keyword::Hostaddr).is_none() {
            self.set(Keyword::Host, default_socket_dir().into(), Source::Default);
        }
        let fallback = self
            .get(Keyword::FallbackApplicationName)
            .unwrap_or("sluice")
            .to_string();
        self.fill(Keyword::ApplicationName, fallback, Source::Default);
    }

    /// What libpq would do and sluice will not: refused with the reason, never ignored.
    fn refuse_unsupported(&self) -> Result<(), SettingsError> {
        let refuse = |keyword: Keyword, why: &'static str| {
            let s = &self.values[&keyword];
            Err(SettingsError::Unsupported {
                keyword,
                value: s.value.clone(),
                origin: s.source.clone(),
                why,
            })
        };
        for (keyword, s) in &self.values {
            let v = s.value.as_str();
            match keyword {
                Keyword::Replication if !matches!(v, "0" | "false" | "off" | "no") => {
                    return refuse(
                        *keyword,
                        "a schema change needs a normal session, not a replication connection",
                    );
                }
                Keyword::Gssencmode if v == "require" => {
                    return refuse(
                        *keyword,
                        "GSSAPI encryption is not built in; use TLS (sslmode=verify-full)",
                    );
                }
                Keyword::RequireAuth => {
                    return refuse(*keyword, "the server's authentication method cannot be restricted yet; use channel_binding=require with SCRAM");
                }
                Keyword::Requirepeer => {
                    return refuse(
                        *keyword,
                        "the peer's user of a Unix socket cannot be checked yet",
                    );
                }
                Keyword::Sslcertmode if v == "require" => {
                    return refuse(*keyword, "whether the server asked for the client certificate cannot be observed; use sslcertmode=allow");
                }
                Keyword::ClientEncoding
                    if !matches!(
                        v.to_ascii_lowercase().as_str(),
                        "utf8" | "utf-8" | "unicode" | "auto"
                    ) =>
                {
                    return refuse(
                        *keyword,
                        "sluice reads and writes UTF8; the session's encoding is always UTF8",
                    );
                }
                _ => {}
            }
            debug_assert!(
                keyword.support() == Support::Honoured || keyword.support() == Support::Inert
            );
        }
        Ok(())
    }

    /// A keyword's value, when set. `None` for a secret: see [`Settings::secret`].
    pub fn get(&self, keyword: Keyword) -> Option<&str> {
        if keyword.is_secret() {
            return None;
        }
        self.values.get(&keyword).map(|s| s.value.as_str())
    }

    /// A secret keyword's value (the password, the key's passphrase).
    pub fn secret(&self, keyword: Keyword) -> Option<&str> {
        self.values
            .get(&keyword)
            .filter(|_| keyword.is_secret())
            .map(|s| s.value.as_str())
    }

    pub fn source(&self, keyword: Keyword) -> Option<&Source> {
        self.values.get(&keyword).map(|s| &s.source)
    }

    /// A keyword's value with where it came from, for messages: `sslmode=require (from PGSSLMODE)`.
    pub fn shown(&self, keyword: Keyword) -> String {
        match self.values.get(&keyword) {
            Some(s) if keyword.is_secret() => format!("{keyword}=*** ({})", s.source),
            Some(s) => format!("{keyword}={} ({})", s.value, s.source),
            None => format!("{keyword} unset"),
        }
    }

    /// Every non-secret setting with its source, for the evidence.
    pub fn public(&self) -> Vec<(Keyword, &Setting)> {
        self.values
            .iter()
            .filter(|(k, _)| !k.is_secret())
            .map(|(k, s)| (*k, s))
            .collect()
    }

    /// A positive number of seconds (or milliseconds), when set.
    pub fn number(&self, keyword: Keyword) -> Result<Option<u64>, SettingsError> {
        let Some(s) = self.values.get(&keyword) else {
            return Ok(None);
        };
        s.value
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| SettingsError::BadValue {
                keyword,
                value: s.value.clone(),
                origin: s.source.clone(),
                expected: "a whole number",
            })
    }

    /// A keyword whose value must be one of `allowed`.
    pub fn choice(
        &self,
        keyword: Keyword,
        allowed: &'static [&'static str],
        expected: &'static str,
    ) -> Result<Option<&str>, SettingsError> {
        match self.values.get(&keyword) {
            None => Ok(None),
            Some(s) if allowed.contains(&s.value.as_str()) => Ok(Some(s.value.as_str())),
            Some(s) => Err(SettingsError::BadValue {
                keyword,
                value: s.value.clone(),
                origin: s.source.clone(),
                expected,
            }),
        }
    }
}

/// libpq's default socket folder: Debian's `/var/run/postgresql`, else `/tmp`.
pub(crate) fn default_socket_dir() -> &'static str {
    ["/var/run/postgresql", "/tmp"]
        .into_iter()
        .find(|d| Path::new(d).is_dir())
        .unwrap_or("/tmp")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(spec: &str, vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::resolve(Some(spec), &|k: &str| vars.get(k).cloned())
    }

    #[test]
    fn the_connection_string_wins_over_the_environment() {
        let s = resolve(
            "sslmode=verify-full",
            &[("PGSSLMODE", "disable"), ("PGHOST", "db")],
        )
        .unwrap();
        assert_eq!(s.get(Keyword::Sslmode), Some("verify-full"));
        assert_eq!(s.get(Keyword::Host), Some("db"));
        assert_eq!(s.shown(Keyword::Host), "host=db (from PGHOST)");
    }

    #[test]
    fn an_environment_variable_is_honoured_and_named() {
        let s = resolve("host=db", &[("PGSSLMODE", "require")]).unwrap();
        assert_eq!(
            s.shown(Keyword::Sslmode),
            "sslmode=require (from PGSSLMODE)"
        );
    }

    #[test]
    fn defaults_are_libpqs() {
        let s = resolve("", &[("USER", "alice")]).unwrap();
        assert_eq!(s.get(Keyword::User), Some("alice"));
        assert_eq!(s.get(Keyword::Dbname), Some("alice"));
        assert_eq!(s.get(Keyword::Port), Some("5432"));
        assert_eq!(s.get(Keyword::Host), Some(default_socket_dir()));
        assert_eq!(s.get(Keyword::ApplicationName), Some("sluice"));
    }

    #[test]
    fn a_service_fills_what_the_string_did_not_set_and_beats_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services.conf");
        std::fs::write(
            &file,
            "[prod]\nhost=prod.db\nport=6432\ndbname=app\nsslmode=verify-full\n",
        )
        .unwrap();
        let file = file.display().to_string();
        let s = resolve(
            "service=prod dbname=other",
            &[("PGSERVICEFILE", &file), ("PGPORT", "1")],
        )
        .unwrap();
        assert_eq!(s.get(Keyword::Host), Some("prod.db"));
        assert_eq!(s.get(Keyword::Port), Some("6432"));
        assert_eq!(s.get(Keyword::Dbname), Some("other"));
        assert_eq!(
            s.source(Keyword::Sslmode),
            Some(&Source::Service(file.clone()))
        );
        let s = resolve("", &[("PGSERVICEFILE", &file), ("PGSERVICE", "prod")]).unwrap();
        assert_eq!(s.get(Keyword::Host), Some("prod.db"));
        assert!(matches!(
            resolve("service=missing", &[("PGSERVICEFILE", &file)]),
            Err(SettingsError::Service(_))
        ));
    }

    #[test]
    fn what_sluice_cannot_honour_is_refused_not_ignored() {
        for spec in [
            "replication=database",
            "gssencmode=require",
            "require_auth=scram-sha-256",
            "client_encoding=LATIN1",
            "sslcertmode=require",
        ] {
            let err = resolve(spec, &[]).unwrap_err().to_string();
            assert!(err.contains("not supported"), "{spec}: {err}");
        }
        assert!(resolve("client_encoding=UTF8 gssencmode=prefer", &[]).is_ok());
    }

    #[test]
    fn a_password_is_never_shown() {
        let s = resolve("password=hunter2", &[]).unwrap();
        assert_eq!(s.get(Keyword::Password), None);
        assert_eq!(s.secret(Keyword::Password), Some("hunter2"));
        assert!(!s.shown(Keyword::Password).contains("hunter2"));
        assert!(s.public().iter().all(|(k, _)| *k != Keyword::Password));
    }
}
