//! The owner of keys and of limits shared by keys: an organization, or a user (for its
//! user-owned keys). Spelled for SQL in one place, [`OwnerKind::as_sql`]: the
//! `owner_kind` column of `apikey.owner_limits` holds `org` or `user`.
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    Org,
    User,
}

impl OwnerKind {
    /// The kind as stored (`org` or `user`).
    pub fn as_sql(self) -> &'static str {
        match self {
            OwnerKind::Org => "org",
            OwnerKind::User => "user",
        }
    }

    /// A stored kind; `None` for anything else.
    pub fn from_sql(kind: &str) -> Option<OwnerKind> {
        match kind {
            "org" => Some(OwnerKind::Org),
            "user" => Some(OwnerKind::User),
            _ => None,
        }
    }
}

impl fmt::Display for OwnerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_sql())
    }
}

/// An owner of keys, by kind and id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner<'a> {
    pub kind: OwnerKind,
    pub id: &'a str,
}

impl<'a> Owner<'a> {
    pub fn org(id: &'a str) -> Owner<'a> {
        Owner {
            kind: OwnerKind::Org,
            id,
        }
    }

    pub fn user(id: &'a str) -> Owner<'a> {
        Owner {
            kind: OwnerKind::User,
            id,
        }
    }

    /// The owner whose limits apply to a key: its organization, or for a user-owned key
    /// its user; `None` for a key with neither.
    pub fn of_key(org_id: Option<&'a str>, user_id: Option<&'a str>) -> Option<Owner<'a>> {
        match (org_id, user_id) {
            (Some(org), _) => Some(Owner::org(org)),
            (None, Some(user)) => Some(Owner::user(user)),
            (None, None) => None,
        }
    }
}
