//! Runs one step in its session's container: follows its output line by line
//! into a channel and waits for its exit under the step's timeout and the
//! build's cancellation token. A step that times out or is cancelled kills its
//! container (and so everything the step started).
//!
//! The step's process is `exec`'d into the container as soon as the container
//! runs, well before the step: it waits on its stdin for the step's command line
//! and then becomes it. Docker takes tens of milliseconds to start a process in
//! a container; this way a step pays none of them, it only writes a line.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use bollard::query_parameters::{KillContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use futures::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::container::{BUILD_USER, WORK_MOUNT};
use super::{Sandbox, SandboxError, Session};

/// Longest output line kept; longer ones are cut (a runaway line must not fill the database).
const MAX_LINE: usize = 4096;
/// How many of the last output lines a step keeps for its error message.
const TAIL_LINES: usize = 40;
/// How often a running step's process is checked for having exited while its
/// output is still open (a background process it left may hold the output open),
/// and how long the output may then still drain.
const EXIT_CHECK: Duration = Duration::from_secs(1);
const DRAIN: Duration = Duration::from_secs(1);
/// How long the daemon may take to start a step's process.
const EXEC_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the exit code is asked for once the output has ended.
const EXIT_POLL: Duration = Duration::from_millis(10);
/// What a step's process runs until its step comes: it reads the command line
/// from stdin until the worker closes it, then becomes that command. Its own
/// environment is empty; the command line sets the step's (`env -i`).
const WAIT_FOR_COMMAND: &str = r#"line=$(/bin/cat) && exec /bin/sh -c "$line""#;

type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// A step's process, started and waiting for its command line.
pub(super) struct Waiting {
    exec_id: String,
    input: Pin<Box<dyn AsyncWrite + Send>>,
    output: Output,
}

/// One step to run.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// `resolve`, `build` or `verify`: names the step in logs and picks its container.
    pub name: String,
    pub cmd: Vec<String>,
    /// The complete environment of the step: nothing else is passed in.
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
}

/// A line of output, as it comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub step: String,
    pub stderr: bool,
    pub line: String,
}

#[derive(Debug, Clone)]
pub struct StepOutcome {
    pub exit_code: i64,
    /// The step's last lines of output (stdout and stderr interleaved).
    pub tail: Vec<String>,
}

impl Session {
    /// Runs `step` in its own container. Output lines go to `output`;
    /// cancelling `cancel` kills the container at once.
    pub async fn run(
        &self,
        step: &StepSpec,
        output: &mpsc::Sender<OutputLine>,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, SandboxError> {
        if cancel.is_cancelled() {
            return Err(SandboxError::Cancelled { step: step.name.clone() });
        }
        let container = self.take_container(&step.name)?;
        let run = async {
            container.ready().await?;
            let waiting = container.waiting.lock().unwrap().take();
            let waiting = waiting.ok_or_else(|| SandboxError::Docker(format!("no process waits in {}", container.name)))?;
            self.sandbox.run_step(waiting, step, output).await
        };
        let result = tokio::select! {
            r = run => r,
            _ = cancel.cancelled() => Err(SandboxError::Cancelled { step: step.name.clone() }),
            _ = tokio::time::sleep(step.timeout) => Err(SandboxError::Timeout { step: step.name.clone(), after: step.timeout }),
        };
        if matches!(result, Err(SandboxError::Cancelled { .. } | SandboxError::Timeout { .. })) {
            self.sandbox.kill(&container.name).await;
        }
        result
    }
}

impl Sandbox {
    /// Starts, in `container`, the process its step will become.
    pub(super) async fn start_waiting(&self, container: &str) -> Result<Waiting, SandboxError> {
        let config = ExecConfig {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(["/bin/sh", "-c", WAIT_FOR_COMMAND].map(String::from).to_vec()),
            env: Some(vec![]),
            user: Some(BUILD_USER.into()),
            working_dir: Some(WORK_MOUNT.into()),
            ..Default::default()
        };
        let exec = self.control.create_exec(container, config).await.map_err(SandboxError::from_bollard)?;
        let started = tokio::time::timeout(EXEC_START_TIMEOUT, self.stream.start_exec(&exec.id, None))
            .await
            .map_err(|_| SandboxError::Unavailable(format!("the daemon did not start a process in {container} within {EXEC_START_TIMEOUT:?}")))?;
        let StartExecResults::Attached { output, input } = started.map_err(SandboxError::from_bollard)? else {
            return Err(SandboxError::Docker("exec started detached".into()));
        };
        Ok(Waiting { exec_id: exec.id, input, output })
    }

    async fn run_step(&self, waiting: Waiting, step: &StepSpec, output: &mpsc::Sender<OutputLine>) -> Result<StepOutcome, SandboxError> {
        let Waiting { exec_id, mut input, output: stream } = waiting;
        let lost = |e: std::io::Error| SandboxError::Unavailable(format!("cannot hand the {} step its command: {e}", step.name));
        input.write_all(command_line(step).as_bytes()).await.map_err(lost)?;
        input.shutdown().await.map_err(lost)?;
        let mut lines = Lines::new(step, output);
        let exit_code = {
            let follow = lines.follow(stream);
            tokio::pin!(follow);
            tokio::select! {
                followed = &mut follow => {
                    followed?;
                    self.exit_code(&exec_id, EXIT_POLL).await?
                }
                code = self.exit_code(&exec_id, EXIT_CHECK) => {
                    if tokio::time::timeout(DRAIN, &mut follow).await.is_err() {
                        debug!(step = %step.name, "step exited but its output stays open; no longer following it");
                    }
                    code?
                }
            }
        };
        let tail = lines.finish().await;
        Ok(StepOutcome { exit_code, tail })
    }

    /// The exec's exit code, asked for every `every` until it has one.
    async fn exit_code(&self, exec_id: &str, every: Duration) -> Result<i64, SandboxError> {
        loop {
            let state = self.control.inspect_exec(exec_id).await.map_err(SandboxError::from_bollard)?;
            if state.running != Some(true)
                && let Some(code) = state.exit_code
            {
                return Ok(code);
            }
            tokio::time::sleep(every).await;
        }
    }

    /// SIGKILLs a running container: faster than a forced removal, which also
    /// waits for the filesystem to be torn down.
    pub(super) async fn kill(&self, name: &str) {
        let opts = KillContainerOptionsBuilder::default().signal("KILL").build();
        if let Err(e) = self.control.kill_container(name, Some(opts)).await {
            debug!(container = name, error = %e, "kill: container not running");
        }
    }

    /// Kills the containers all at once, then removes them: a kill is quick, a
    /// removal waits for a container's filesystem to be torn down, and a
    /// cancelled build's containers must stop within a second.
    pub(super) async fn kill_and_remove<'a>(&self, names: impl Iterator<Item = &'a str> + Clone) {
        futures::future::join_all(names.clone().map(|n| self.kill(n))).await;
        futures::future::join_all(names.map(|n| self.remove(n))).await;
    }

    /// Removes a container, killing it if it still runs. Failures are logged only:
    /// a worker's later reap pass removes whatever is left.
    pub(super) async fn remove(&self, name: &str) {
        let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.control.remove_container(name, Some(opts)).await {
            Ok(()) => debug!(container = name, "container removed"),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(e) => warn!(container = name, error = %e, "could not remove container"),
        }
    }
}

/// One word for `/bin/sh`, whatever it contains.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `exec env -i VAR=value... program args...`, every word single-quoted: the
/// step's program with exactly the step's environment.
fn command_line(step: &StepSpec) -> String {
    let vars = step.env.iter().map(|(k, v)| shell_quote(&format!("{k}={v}")));
    let words: Vec<String> = vars.chain(step.cmd.iter().map(|a| shell_quote(a))).collect();
    format!("exec /bin/env -i {}\n", words.join(" "))
}

/// A step's output, cut into lines as it comes (each byte looked at once).
struct Lines<'a> {
    step: &'a StepSpec,
    output: &'a mpsc::Sender<OutputLine>,
    tail: VecDeque<String>,
    /// The unfinished last line of stdout and of stderr, at most `MAX_LINE + 1` bytes.
    partial: [Vec<u8>; 2],
}

impl<'a> Lines<'a> {
    fn new(step: &'a StepSpec, output: &'a mpsc::Sender<OutputLine>) -> Lines<'a> {
        Lines { step, output, tail: VecDeque::with_capacity(TAIL_LINES), partial: [Vec::new(), Vec::new()] }
    }

    async fn follow(&mut self, mut stream: impl Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin) -> Result<(), SandboxError> {
        while let Some(item) = stream.next().await {
            match item.map_err(SandboxError::from_bollard)? {
                LogOutput::StdErr { message } => self.push(true, &message).await,
                LogOutput::StdOut { message } | LogOutput::Console { message } => self.push(false, &message).await,
                LogOutput::StdIn { .. } => {}
            }
        }
        Ok(())
    }

    async fn push(&mut self, stderr: bool, mut bytes: &[u8]) {
        while let Some(pos) = bytes.iter().position(|&b| b == b'\n') {
            self.keep(stderr, &bytes[..pos]);
            let line = std::mem::take(&mut self.partial[stderr as usize]);
            self.emit(stderr, &line).await;
            bytes = &bytes[pos + 1..];
        }
        self.keep(stderr, bytes);
    }

    fn keep(&mut self, stderr: bool, bytes: &[u8]) {
        let buf = &mut self.partial[stderr as usize];
        let room = (MAX_LINE + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Sends the unfinished last lines; returns the tail.
    async fn finish(mut self) -> Vec<String> {
        for stderr in [false, true] {
            let rest = std::mem::take(&mut self.partial[stderr as usize]);
            if !rest.is_empty() {
                self.emit(stderr, &rest).await;
            }
        }
        self.tail.into_iter().collect()
    }

    async fn emit(&mut self, stderr: bool, raw: &[u8]) {
        let mut line = String::from_utf8_lossy(raw).trim_end_matches('\r').to_string();
        if line.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" …");
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.clone());
        // A closed receiver only means nobody records the output any more.
        let _ = self.output.send(OutputLine { step: self.step.name.clone(), stderr, line }).await;
    }
}
