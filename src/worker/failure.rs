//! How a build attempt failed, and whether trying again could help.
//! Deterministic failures (unknown module or version, compile error, plugin
//! missing at verify) fail the build at once with the tool's own words;
//! transient ones (proxy or network trouble, Docker daemon, storage, timeouts)
//! go back to the queue with backoff. A deterministic failure's message starts
//! with the module to blame, when Go's output names one ([`super::culprit`]).

use crate::sandbox::SandboxError;
use super::publish::PublishError;

/// Substrings of Go's output that point at the network or the proxy, not the request.
const TRANSIENT_GO_MARKERS: &[&str] = &[
    "dial tcp",
    "i/o timeout",
    "TLS handshake timeout",
    "connection refused",
    "connection reset",
    "no such host",
    "server misbehaving",
    "network is unreachable",
    "temporary failure",
    "unexpected EOF",
    "context deadline exceeded",
    "429 Too Many Requests",
    "500 Internal Server Error",
    "502 Bad Gateway",
    "503 Service Unavailable",
    "504 Gateway Timeout",
];
/// Exit statuses of a step killed by SIGKILL (the memory limit, usually) or SIGTERM (a stopping daemon).
const EXIT_KILLED: i64 = 137;
const EXIT_TERMINATED: i64 = 143;
/// How many output lines an error message quotes at most.
const QUOTED_LINES: usize = 15;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Deterministic(String),
    #[error("{0}")]
    Transient(String),
    /// Cancelled, released or preempted: nothing to report, the queue already knows.
    #[error("stopped")]
    Stopped,
}

impl JobError {
    pub fn retryable(&self) -> bool {
        matches!(self, JobError::Transient(_))
    }
}

impl From<SandboxError> for JobError {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::Cancelled { .. } => JobError::Stopped,
            other => JobError::Transient(other.to_string()),
        }
    }
}

impl From<crate::toolchain::ToolchainError> for JobError {
    fn from(e: crate::toolchain::ToolchainError) -> Self {
        let message = format!("builder image: {e}");
        if e.retryable() { JobError::Transient(message) } else { JobError::Deterministic(message) }
    }
}

impl From<PublishError> for JobError {
    fn from(e: PublishError) -> Self {
        JobError::Transient(e.to_string())
    }
}

/// Classifies a step that exited non-zero from its exit code and last lines;
/// `culprit` (the module to blame, see [`super::culprit`]) leads a deterministic
/// failure's message.
pub fn step_failed(step: &str, exit_code: i64, tail: &[String], culprit: Option<&str>) -> JobError {
    let quoted = quote(tail);
    let message = format!("{step} step failed (exit status {exit_code}):\n{quoted}");
    if exit_code == EXIT_KILLED || exit_code == EXIT_TERMINATED {
        return JobError::Transient(format!("{message}\n(killed: memory limit or daemon stop)"));
    }
    if step == "resolve" && tail.iter().any(|l| TRANSIENT_GO_MARKERS.iter().any(|m| l.contains(m))) {
        return JobError::Transient(message);
    }
    match culprit {
        Some(c) => JobError::Deterministic(format!("{c}: {message}")),
        None => JobError::Deterministic(message),
    }
}

/// The lines worth quoting: Go's own error lines when there are any, else the last lines.
fn quote(tail: &[String]) -> String {
    let errors: Vec<&str> = tail
        .iter()
        .map(String::as_str)
        .filter(|l| l.starts_with("go: ") || l.contains("error") || l.contains(".go:") || l.starts_with("\t"))
        .collect();
    let lines: Vec<&str> = if errors.is_empty() { tail.iter().map(String::as_str).collect() } else { errors };
    let start = lines.len().saturating_sub(QUOTED_LINES);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &[&str]) -> Vec<String> {
        s.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn unknown_module_is_deterministic_and_quotes_go() {
        let tail = lines(&[
            "go: downloading github.com/x/y v1.0.0",
            "go: github.com/x/y@v1.0.0: reading https://proxy.golang.org/github.com/x/y/@v/v1.0.0.info: 404 Not Found",
        ]);
        let e = step_failed("resolve", 1, &tail, Some("github.com/x/y@v1.0.0"));
        assert!(!e.retryable());
        assert!(e.to_string().starts_with("github.com/x/y@v1.0.0: resolve step failed"), "{e}");
        assert!(e.to_string().contains("404 Not Found"), "{e}");
    }

    #[test]
    fn proxy_trouble_is_transient() {
        let tail = lines(&["go: github.com/x/y@v1.0.0: Get \"https://proxy.golang.org/...\": dial tcp: i/o timeout"]);
        let e = step_failed("resolve", 1, &tail, Some("github.com/x/y@v1.0.0"));
        assert!(e.retryable());
        assert!(e.to_string().starts_with("resolve step failed"), "proxy trouble blames no module: {e}");
        assert!(step_failed("build", EXIT_KILLED, &tail, None).retryable());
        assert!(!step_failed("build", 1, &lines(&["./main.go:3:2: undefined: x"]), None).retryable());
    }
}
