//! The roles of a target as a rehearsal recreates them (issue #16, item 4): read from
//! `pg_roles` and `pg_auth_members` (both readable without superuser) with the attributes that
//! decide what a session may do and the memberships it inherits privileges through, and the
//! statements that create them in a throwaway cluster — every one `NOLOGIN` except the role the
//! rehearsal applies as, so that the rehearsal's migration runs with the production role's real
//! attributes and privileges, not as a superuser.

use crate::sql::names::quote_ident;
use postgres::Client;
use serde::Serialize;

/// One role of the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    pub name: String,
    pub superuser: bool,
    pub inherit: bool,
    pub create_role: bool,
    pub create_db: bool,
    pub bypass_rls: bool,
    /// The roles it is a member of, sorted (predefined `pg_*` roles included).
    pub member_of: Vec<String>,
}

/// What the rehearsal needs to know of the target's roles.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRoles {
    /// Every role but the predefined `pg_*` ones, by name.
    pub roles: Vec<Role>,
    /// The owner of the target's database.
    pub database_owner: String,
}

/// Reads the target's roles and its database's owner.
pub fn read(client: &mut Client) -> Result<TargetRoles, postgres::Error> {
    let rows = client.query(
        "SELECT r.rolname::text, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb,
                r.rolbypassrls,
                ARRAY(SELECT g.rolname::text FROM pg_catalog.pg_auth_members m
                        JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
                       WHERE m.member = r.oid ORDER BY 1)
           FROM pg_catalog.pg_roles r
          WHERE r.rolname !~ '^pg_'
          ORDER BY 1",
        &[],
    )?;
    let roles = rows
        .iter()
        .map(|r| Role {
            name: r.get(0),
            superuser: r.get(1),
            inherit: r.get(2),
            create_role: r.get(3),
            create_db: r.get(4),
            bypass_rls: r.get(5),
            member_of: r.get(6),
        })
        .collect();
    let database_owner = client
        .query_one(
            "SELECT pg_catalog.pg_get_userbyid(d.datdba)::text FROM pg_catalog.pg_database d
              WHERE d.datname = pg_catalog.current_database()",
            &[],
        )?
        .get(0);
    Ok(TargetRoles {
        roles,
        database_owner,
    })
}

impl Role {
    /// A role of this name with no attributes beyond the defaults (for a name the dump uses
    /// that the target did not list).
    pub fn plain(name: &str) -> Role {
        Role {
            name: name.to_string(),
            superuser: false,
            inherit: true,
            create_role: false,
            create_db: false,
            bypass_rls: false,
            member_of: Vec::new(),
        }
    }

    /// `SUPERUSER CREATEDB …`: the attributes that differ from a plain role's.
    pub fn attributes(&self) -> Vec<&'static str> {
        [
            (self.superuser, "SUPERUSER"),
            (!self.inherit, "NOINHERIT"),
            (self.create_role, "CREATEROLE"),
            (self.create_db, "CREATEDB"),
            (self.bypass_rls, "BYPASSRLS"),
        ]
        .into_iter()
        .filter_map(|(has, word)| has.then_some(word))
        .collect()
    }

    /// `CREATE ROLE … LOGIN|NOLOGIN …`.
    pub(crate) fn create_sql(&self, login: bool) -> String {
        let mut words = vec![if login { "LOGIN" } else { "NOLOGIN" }];
        words.extend(self.attributes());
        format!(
            "CREATE ROLE {} {}",
            quote_ident(&self.name),
            words.join(" ")
        )
    }

    /// `GRANT group TO role` for each membership.
    pub(crate) fn membership_sql(&self) -> Vec<String> {
        self.member_of
            .iter()
            .map(|group| {
                format!(
                    "GRANT {} TO {}",
                    quote_ident(group),
                    quote_ident(&self.name)
                )
            })
            .collect()
    }

    /// `alice (LOGIN, CREATEDB; member of app_rw)`, for the rehearsal's record.
    pub fn describe(&self, login: bool) -> String {
        let mut words = vec![if login { "LOGIN" } else { "NOLOGIN" }];
        words.extend(self.attributes());
        let member = if self.member_of.is_empty() {
            String::new()
        } else {
            format!("; member of {}", self.member_of.join(", "))
        };
        format!("{} ({}{member})", self.name, words.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_is_created_with_its_attributes_and_memberships() {
        let role = Role {
            superuser: false,
            create_db: true,
            inherit: false,
            member_of: vec!["app_rw".into(), "pg_read_all_data".into()],
            ..Role::plain("Alice")
        };
        assert_eq!(
            role.create_sql(true),
            "CREATE ROLE \"Alice\" LOGIN NOINHERIT CREATEDB"
        );
        assert_eq!(
            role.membership_sql(),
            [
                "GRANT \"app_rw\" TO \"Alice\"",
                "GRANT \"pg_read_all_data\" TO \"Alice\""
            ]
        );
        assert_eq!(
            role.describe(false),
            "Alice (NOLOGIN, NOINHERIT, CREATEDB; member of app_rw, pg_read_all_data)"
        );
    }
}
