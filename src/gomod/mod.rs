//! Go modules, as far as the api needs them: the GOPROXY protocol's case
//! encoding (Go's module path rules are SQL's, `cbs.module_path_problem`), and
//! version resolution (`latest`, partial `v2.10`, exact tags, pseudo-versions)
//! against the configured module proxies, with a short cache that also
//! coalesces concurrent identical lookups.

mod path;
mod resolver;
mod version;

pub use path::escape;
pub use resolver::{Resolved, Resolver};
pub use version::{is_absolute, is_newer_release, VersionQuery};

/// Why a module version could not be resolved. [`ResolveError::is_transient`]
/// tells the requester's mistakes (asking again gives the same answer) from the
/// proxy's trouble (asking again may help).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    /// The module path breaks Go's rules; nothing was asked of the proxy.
    #[error("module path {module:?} {problem}")]
    BadPath { module: String, problem: String },
    /// The version query is not one Go understands (or one that is safe in a proxy URL).
    #[error("version {query:?} of module {module} is not a valid version query")]
    BadVersion { module: String, query: String },
    /// Every proxy answered that the module or version does not exist (404, 410),
    /// or no release in the module's version list matches the query.
    #[error("{module}@{} not found: {detail}", shown(query))]
    NotFound { module: String, query: String, detail: String },
    /// A proxy refuses to serve the module or version (400, 403, 422, 451).
    #[error("{module}@{} is refused by the module proxy: {detail}", shown(query))]
    Refused { module: String, query: String, detail: String },
    /// A proxy answered with a server error or an answer that makes no sense.
    #[error("module proxy error while resolving {module}@{}: {message}", shown(query))]
    Upstream { module: String, query: String, message: String },
    /// No proxy answered: connection failed, timed out, or the proxy asked us to
    /// slow down (408, 429).
    #[error("module proxy unavailable while resolving {module}@{}: {message}", shown(query))]
    Unreachable { module: String, query: String, message: String },
}

impl ResolveError {
    /// The proxy's trouble rather than the request's: worth retrying, never cached.
    pub fn is_transient(&self) -> bool {
        matches!(self, ResolveError::Upstream { .. } | ResolveError::Unreachable { .. })
    }
}

/// A version query as a person would write it after `module@`.
fn shown(query: &str) -> &str {
    if query.trim().is_empty() { "latest" } else { query }
}
