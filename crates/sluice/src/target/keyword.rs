//! libpq's connection keywords, each with the environment variable that supplies it when it is
//! absent and what sluice does with it. One table: the parser, the service file, the
//! environment and the client tools' settings all read it.

/// How sluice treats a keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Used as libpq uses it.
    Honoured,
    /// Only meaningful with GSSAPI/Kerberos or replication, which sluice does not do; accepted
    /// so that a `.pg_service.conf` written for psql still works, and never acted on.
    Inert,
}

macro_rules! keywords {
    ($($variant:ident = $name:literal, $env:expr, $support:ident;)*) => {
        /// A libpq connection keyword.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Keyword { $($variant),* }

        impl Keyword {
            pub const ALL: &'static [Keyword] = &[$(Keyword::$variant),*];

            /// The keyword as libpq spells it.
            pub fn name(self) -> &'static str {
                match self { $(Keyword::$variant => $name),* }
            }

            /// The environment variable libpq reads when the keyword is absent.
            pub fn env(self) -> Option<&'static str> {
                match self { $(Keyword::$variant => $env),* }
            }

            pub fn support(self) -> Support {
                match self { $(Keyword::$variant => Support::$support),* }
            }
        }
    };
}

keywords! {
    Host = "host", Some("PGHOST"), Honoured;
    Hostaddr = "hostaddr", Some("PGHOSTADDR"), Honoured;
    Port = "port", Some("PGPORT"), Honoured;
    Dbname = "dbname", Some("PGDATABASE"), Honoured;
    User = "user", Some("PGUSER"), Honoured;
    Password = "password", Some("PGPASSWORD"), Honoured;
    Passfile = "passfile", Some("PGPASSFILE"), Honoured;
    Service = "service", Some("PGSERVICE"), Honoured;
    Servicefile = "servicefile", Some("PGSERVICEFILE"), Honoured;
    ChannelBinding = "channel_binding", Some("PGCHANNELBINDING"), Honoured;
    RequireAuth = "require_auth", Some("PGREQUIREAUTH"), Honoured;
    ConnectTimeout = "connect_timeout", Some("PGCONNECT_TIMEOUT"), Honoured;
    ClientEncoding = "client_encoding", Some("PGCLIENTENCODING"), Honoured;
    Options = "options", Some("PGOPTIONS"), Honoured;
    ApplicationName = "application_name", Some("PGAPPNAME"), Honoured;
    FallbackApplicationName = "fallback_application_name", None, Honoured;
    Keepalives = "keepalives", None, Honoured;
    KeepalivesIdle = "keepalives_idle", None, Honoured;
    KeepalivesInterval = "keepalives_interval", None, Honoured;
    KeepalivesCount = "keepalives_count", None, Honoured;
    TcpUserTimeout = "tcp_user_timeout", None, Honoured;
    Sslmode = "sslmode", Some("PGSSLMODE"), Honoured;
    Sslnegotiation = "sslnegotiation", Some("PGSSLNEGOTIATION"), Honoured;
    Sslcompression = "sslcompression", Some("PGSSLCOMPRESSION"), Inert;
    Sslcert = "sslcert", Some("PGSSLCERT"), Honoured;
    Sslkey = "sslkey", Some("PGSSLKEY"), Honoured;
    Sslcertmode = "sslcertmode", Some("PGSSLCERTMODE"), Honoured;
    Sslpassword = "sslpassword", None, Honoured;
    Sslrootcert = "sslrootcert", Some("PGSSLROOTCERT"), Honoured;
    Sslcrl = "sslcrl", Some("PGSSLCRL"), Honoured;
    Sslcrldir = "sslcrldir", Some("PGSSLCRLDIR"), Honoured;
    Sslsni = "sslsni", Some("PGSSLSNI"), Honoured;
    SslMinProtocolVersion = "ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION"), Honoured;
    SslMaxProtocolVersion = "ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION"), Honoured;
    Requirepeer = "requirepeer", Some("PGREQUIREPEER"), Honoured;
    Gssencmode = "gssencmode", Some("PGGSSENCMODE"), Honoured;
    Krbsrvname = "krbsrvname", Some("PGKRBSRVNAME"), Inert;
    Gsslib = "gsslib", Some("PGGSSLIB"), Inert;
    Gssdelegation = "gssdelegation", Some("PGGSSDELEGATION"), Inert;
    Replication = "replication", None, Honoured;
    TargetSessionAttrs = "target_session_attrs", Some("PGTARGETSESSIONATTRS"), Honoured;
    LoadBalanceHosts = "load_balance_hosts", Some("PGLOADBALANCEHOSTS"), Honoured;
}

impl Keyword {
    /// The keyword spelled `name`, as libpq spells it.
    pub(crate) fn from_name(name: &str) -> Option<Keyword> {
        Keyword::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Whether its value is a secret that no message, log or evidence file may hold.
    pub(crate) fn is_secret(self) -> bool {
        matches!(self, Keyword::Password | Keyword::Sslpassword)
    }
}

impl std::fmt::Display for Keyword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for k in Keyword::ALL {
            assert_eq!(Keyword::from_name(k.name()), Some(*k));
        }
        let mut names: Vec<_> = Keyword::ALL.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Keyword::ALL.len());
    }

    #[test]
    fn every_variable_of_spec_section_10_is_read() {
        for var in [
            "PGHOST",
            "PGHOSTADDR",
            "PGPORT",
            "PGDATABASE",
            "PGUSER",
            "PGPASSWORD",
            "PGPASSFILE",
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGSSLMODE",
            "PGSSLROOTCERT",
            "PGSSLCERT",
            "PGSSLKEY",
            "PGSSLCRL",
            "PGCONNECT_TIMEOUT",
            "PGAPPNAME",
            "PGOPTIONS",
            "PGTARGETSESSIONATTRS",
        ] {
            assert!(Keyword::ALL.iter().any(|k| k.env() == Some(var)), "{var}");
        }
    }
}
