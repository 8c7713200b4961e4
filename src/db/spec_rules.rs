//! Typed calls of the build spec's rules (`sql/procedures/010_spec.sql`,
//! `012_targets.sql`). SQL holds each rule once; the api, the page and the
//! janitor ask it through these calls instead of keeping copies.

use serde::Serialize;

use super::{query, DbError, Queue};

/// One target of `cbs.target_list()`: a GOOS/GOARCH pair, and for `arch=arm` the
/// ARM variants a spec may name and the one it gets when it names none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub os: String,
    pub arch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arm_versions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_arm: Option<String>,
}

impl Queue {
    /// Every target builds may ask for, in the order a picker shows them.
    pub async fn targets(&self) -> Result<Vec<Target>, DbError> {
        self.query(query!("list_targets"), &[])
            .await?
            .iter()
            .map(|r| {
                Ok(Target { os: r.try_get(0)?, arch: r.try_get(1)?, arm_versions: r.try_get(2)?, default_arm: r.try_get(3)? })
            })
            .collect()
    }

    /// `cbs.checked_spec(spec, false)`: checks everything of a spec but its
    /// versions, which may still be queries (`latest`, empty, `v2.10`), and
    /// returns it in canonical form (defaults filled in, plugins sorted);
    /// `BadSpec` with the message the spec would get at submit. Lets the api
    /// refuse a bad request before it asks the module proxy anything.
    pub async fn check_spec_request(&self, spec: &serde_json::Value) -> Result<serde_json::Value, DbError> {
        self.scalar(query!("check_spec_request"), &[spec]).await
    }

    /// `cbs.module_path_problem` of each path, in order: why it breaks Go's
    /// module path rules, or `None` when it is fine.
    pub async fn module_path_problems(&self, paths: &[String]) -> Result<Vec<Option<String>>, DbError> {
        self.query(query!("module_path_problems"), &[&paths])
            .await?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
    }
}
