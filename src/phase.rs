//! A build's progress in the official download service's words, shared by the
//! worker (which records each phase as it starts) and the api (which turns the
//! records into the `step` events of `GET /api/build/{key}/events`).
//!
//! The worker's steps map onto the official names in this order:
//!
//! | phase | when it starts |
//! |---|---|
//! | `create_environment` | the attempt begins: work directory, `main.go` (its containers are already running) |
//! | `initialize_module` | resolve: `go mod init`, `go mod edit -replace` |
//! | `pin_versions` | resolve: `go get` of Caddy, then of each plugin with Caddy's version |
//! | `windows_resources` | resolve, Windows targets only: the version resource xcaddy embeds |
//! | `tidy_module` | resolve: `go mod tidy -e` |
//! | `compile` | the build step: `go build` |
//! | `cleanup` | verify and publish |
//!
//! A phase is a line of the build log with the stream [`STREAM`] whose text is
//! the phase's name, so a late subscriber replays them like any other line. The
//! resolve script announces its phases by printing [`MARKER`] and the name; the
//! worker turns such lines into phase lines (only from the steps in
//! [`MARKED_STEPS`]: no plugin code runs in them, so none can fake a phase).

/// The phases, in the order a build goes through them.
pub const PHASES: [&str; 7] =
    ["create_environment", "initialize_module", "pin_versions", WINDOWS_RESOURCES, "tidy_module", "compile", "cleanup"];

/// The phase only Windows targets go through (icon and version resource).
pub const WINDOWS_RESOURCES: &str = "windows_resources";

/// The phases a build for `os` goes through, in order.
pub fn phases_for(os: &str) -> Vec<&'static str> {
    PHASES.into_iter().filter(|p| os == "windows" || *p != WINDOWS_RESOURCES).collect()
}

/// The log stream of phase lines.
pub const STREAM: &str = "system";

/// What a step prints before a phase's name to announce it.
pub const MARKER: &str = "::phase ";

/// The steps whose output may announce phases.
pub const MARKED_STEPS: [&str; 2] = ["worker", "resolve"];

/// The position of a phase in [`PHASES`].
pub fn position(name: &str) -> Option<usize> {
    PHASES.iter().position(|p| *p == name)
}

/// The phase a line of `step`'s output announces, if it is a marker.
pub fn announced<'a>(step: &str, line: &'a str) -> Option<&'a str> {
    let name = line.strip_prefix(MARKER)?.trim_end();
    (MARKED_STEPS.contains(&step) && position(name).is_some()).then_some(name)
}

/// The marker line that announces `phase`.
pub fn marker(phase: &str) -> String {
    debug_assert!(position(phase).is_some(), "unknown phase {phase}");
    format!("{MARKER}{phase}")
}

/// Follows the phase lines of a build's log: a phase counts once per attempt,
/// and only forward (the resolve step, retried through the module proxy,
/// announces its phases again).
#[derive(Debug, Default)]
pub struct Progress {
    attempt: i32,
    next: usize,
}

impl Progress {
    /// Whether a phase line of `attempt` starts a new phase.
    pub fn starts(&mut self, attempt: i32, phase: &str) -> bool {
        if attempt != self.attempt {
            *self = Progress { attempt, next: 0 };
        }
        match position(phase) {
            Some(i) if i >= self.next => {
                self.next = i + 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_only_from_marked_steps() {
        assert_eq!(announced("resolve", "::phase pin_versions"), Some("pin_versions"));
        assert_eq!(announced("worker", &marker("compile")), Some("compile"));
        assert_eq!(announced("verify", "::phase compile"), None, "plugin code runs at verify");
        assert_eq!(announced("resolve", "::phase nonsense"), None);
        assert_eq!(announced("resolve", "go: downloading x"), None);
    }

    #[test]
    fn phases_count_once_forward_per_attempt() {
        let mut p = Progress::default();
        let seen: Vec<bool> = [
            (1, "create_environment"),
            (1, "initialize_module"),
            (1, "pin_versions"),
            (1, "initialize_module"),
            (1, "pin_versions"),
            (1, "tidy_module"),
            (2, "create_environment"),
            (2, "compile"),
            (2, "tidy_module"),
        ]
        .iter()
        .map(|(a, ph)| p.starts(*a, ph))
        .collect();
        assert_eq!(seen, [true, true, true, false, false, true, true, true, false]);
    }
}
