use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// What the admin API protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Resource {
    Plugins,
    Selectors,
    Rules,
    Metadata,
    AppAuth,
    Routes,
    /// Export, import, batch, revisions and rollback: the whole config at once.
    Config,
    Users,
    Roles,
    Tokens,
    Audit,
}

impl Resource {
    pub const ALL: [Resource; 11] = [
        Resource::Plugins,
        Resource::Selectors,
        Resource::Rules,
        Resource::Metadata,
        Resource::AppAuth,
        Resource::Routes,
        Resource::Config,
        Resource::Users,
        Resource::Roles,
        Resource::Tokens,
        Resource::Audit,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Read,
    Write,
}

/// A named set of grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub permissions: BTreeSet<(Resource, Action)>,
}

impl Role {
    /// `write` implies `read`: a role that may change something may see it.
    pub fn grants(&self, resource: Resource, action: Action) -> bool {
        self.permissions.contains(&(resource, action))
            || (action == Action::Read && self.permissions.contains(&(resource, Action::Write)))
    }
}

/// The roles known to the admin; built-ins plus stored ones.
#[derive(Debug, Clone, Default)]
pub struct Rbac {
    roles: BTreeMap<String, Role>,
}

impl Rbac {
    /// `admin`: everything. `editor`: writes gateway config, reads the rest but users and tokens.
    /// `viewer`: reads gateway config and audit.
    pub fn with_builtin_roles() -> Rbac {
        let config = [
            Resource::Plugins,
            Resource::Selectors,
            Resource::Rules,
            Resource::Metadata,
            Resource::AppAuth,
            Resource::Routes,
            Resource::Config,
        ];
        let admin =
            Role { name: "admin".into(), permissions: Resource::ALL.iter().map(|r| (*r, Action::Write)).collect() };
        let mut editor: BTreeSet<_> = config.iter().map(|r| (*r, Action::Write)).collect();
        editor.insert((Resource::Audit, Action::Read));
        editor.insert((Resource::Roles, Action::Read));
        let mut viewer: BTreeSet<_> = config.iter().map(|r| (*r, Action::Read)).collect();
        viewer.insert((Resource::Audit, Action::Read));
        let mut rbac = Rbac::default();
        for role in [
            admin,
            Role { name: "editor".into(), permissions: editor },
            Role { name: "viewer".into(), permissions: viewer },
        ] {
            rbac.roles.insert(role.name.clone(), role);
        }
        rbac
    }

    pub fn insert(&mut self, role: Role) {
        self.roles.insert(role.name.clone(), role);
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// Whether any of `roles` grants `action` on `resource`. Unknown role names grant nothing.
    pub fn allows(&self, roles: &[String], resource: Resource, action: Action) -> bool {
        roles.iter().filter_map(|r| self.roles.get(r)).any(|r| r.grants(resource, action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_matrix() {
        let r = Rbac::with_builtin_roles();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        for res in Resource::ALL {
            assert!(r.allows(&s(&["admin"]), res, Action::Write));
            assert!(r.allows(&s(&["admin"]), res, Action::Read));
        }
        assert!(r.allows(&s(&["editor"]), Resource::Rules, Action::Write));
        assert!(!r.allows(&s(&["editor"]), Resource::Users, Action::Read));
        assert!(!r.allows(&s(&["editor"]), Resource::Tokens, Action::Write));
        assert!(r.allows(&s(&["viewer"]), Resource::Selectors, Action::Read));
        assert!(!r.allows(&s(&["viewer"]), Resource::Selectors, Action::Write));
        assert!(!r.allows(&s(&["viewer"]), Resource::Users, Action::Read));
        assert!(!r.allows(&s(&["nobody"]), Resource::Plugins, Action::Read));
        assert!(!r.allows(&[], Resource::Plugins, Action::Read));
        // Several roles: the union.
        assert!(r.allows(&s(&["viewer", "editor"]), Resource::Routes, Action::Write));
    }
}
