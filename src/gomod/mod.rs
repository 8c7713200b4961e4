//! Go modules, as far as the api needs them: Go's module path rules (checked
//! before anything reaches SQL), the GOPROXY protocol's case encoding, and
//! version resolution (`latest`, partial `v2.10`, exact tags, pseudo-versions)
//! against the configured module proxies, with a short cache that also
//! coalesces concurrent identical lookups.

mod path;
mod resolver;
mod version;

pub use path::{check_module_path, escape};
pub use resolver::{Resolved, Resolver};
pub use version::{is_absolute, VersionQuery};

/// Why a module version could not be resolved.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    /// The module path breaks Go's rules; nothing was asked of the proxy.
    #[error("module path {module:?} {problem}")]
    BadPath { module: String, problem: String },
    /// The version query is not one Go understands (or one that is safe in a proxy URL).
    #[error("version {query:?} of module {module} is not a valid version query")]
    BadVersion { module: String, query: String },
    /// Every proxy answered that the module or version does not exist.
    #[error("module {module} has no version matching {query:?}")]
    NotFound { module: String, query: String },
    /// A proxy could not be reached or answered with an error; worth retrying.
    #[error("module proxy error while resolving {module}@{query}: {message}")]
    Upstream { module: String, query: String, message: String },
}
