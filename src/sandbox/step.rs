//! Runs one step: create the container, follow its output line by line into a
//! channel, and wait for it under the step's timeout and the build's
//! cancellation token. The container is removed however the step ends.

use std::path::Path;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptions,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Sandbox, SandboxError, StepNetwork};

/// Longest output line kept; longer ones are cut (a runaway line must not fill the database).
const MAX_LINE: usize = 4096;
/// How many of the last output lines a step keeps for its error message.
const TAIL_LINES: usize = 40;

/// One step to run.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// `resolve`, `build` or `verify`: names the step in logs and labels.
    pub name: String,
    pub cmd: Vec<String>,
    /// The complete environment of the step: nothing else is passed in.
    pub env: Vec<(String, String)>,
    pub network: StepNetwork,
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
    /// Everything the step wrote to stdout, for steps whose output is data.
    pub stdout: String,
}

impl Sandbox {
    /// Runs `step` for `build_key` with `work_dir` mounted at /work. Output lines go to
    /// `output`; cancelling `cancel` kills the container at once.
    pub async fn run_step(
        &self,
        build_key: &str,
        work_dir: &Path,
        step: &StepSpec,
        output: &mpsc::Sender<OutputLine>,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, SandboxError> {
        let name = format!("cbs-{}-{}-{:08x}", &build_key[..build_key.len().min(12)], step.name, rand::random::<u32>());
        let body = self.container_body(build_key, work_dir, step);
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        self.control.create_container(Some(opts), body).await.map_err(|e| match e {
            bollard::errors::Error::DockerResponseServerError { status_code: 404, message } if message.contains("image") => {
                SandboxError::ImageMissing(self.cfg.image.clone())
            }
            other => SandboxError::from_bollard(other),
        })?;
        let result = self.drive(&name, step, output, cancel).await;
        if matches!(result, Err(SandboxError::Cancelled { .. } | SandboxError::Timeout { .. })) {
            self.kill(&name).await;
        }
        self.remove(&name).await;
        result
    }

    async fn drive(
        &self,
        name: &str,
        step: &StepSpec,
        output: &mpsc::Sender<OutputLine>,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, SandboxError> {
        if cancel.is_cancelled() {
            return Err(SandboxError::Cancelled { step: step.name.clone() });
        }
        self.control.start_container(name, None).await.map_err(SandboxError::from_bollard)?;
        let follow = self.follow(name, step, output);
        let wait = async {
            let mut s = self.stream.wait_container(name, None::<WaitContainerOptions>);
            match s.next().await {
                Some(Ok(r)) => Ok(r.status_code),
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
                Some(Err(e)) => Err(SandboxError::from_bollard(e)),
                None => Err(SandboxError::Unavailable("wait stream ended without a status".into())),
            }
        };
        let run = async {
            let (collected, code) = tokio::join!(follow, wait);
            let (tail, stdout) = collected?;
            Ok::<_, SandboxError>(StepOutcome { exit_code: code?, tail, stdout })
        };
        tokio::select! {
            r = run => r,
            _ = cancel.cancelled() => Err(SandboxError::Cancelled { step: step.name.clone() }),
            _ = tokio::time::sleep(step.timeout) => Err(SandboxError::Timeout { step: step.name.clone(), after: step.timeout }),
        }
    }

    /// Follows the container's output until it exits; returns its tail and stdout.
    async fn follow(
        &self,
        name: &str,
        step: &StepSpec,
        output: &mpsc::Sender<OutputLine>,
    ) -> Result<(Vec<String>, String), SandboxError> {
        let opts = LogsOptionsBuilder::default().follow(true).stdout(true).stderr(true).build();
        let mut logs = self.stream.logs(name, Some(opts));
        let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES);
        let mut stdout = String::new();
        let (mut out_buf, mut err_buf) = (Vec::new(), Vec::new());
        while let Some(item) = logs.next().await {
            let (stderr, bytes) = match item.map_err(SandboxError::from_bollard)? {
                LogOutput::StdErr { message } => (true, message),
                LogOutput::StdOut { message } | LogOutput::Console { message } => (false, message),
                LogOutput::StdIn { .. } => continue,
            };
            if !stderr && stdout.len() < 1 << 20 {
                stdout.push_str(&String::from_utf8_lossy(&bytes));
            }
            let buf = if stderr { &mut err_buf } else { &mut out_buf };
            buf.extend_from_slice(&bytes);
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = buf.drain(..=pos).collect();
                emit(step, stderr, &raw[..raw.len() - 1], output, &mut tail).await;
            }
        }
        for (stderr, rest) in [(false, out_buf), (true, err_buf)] {
            if !rest.is_empty() {
                emit(step, stderr, &rest, output, &mut tail).await;
            }
        }
        Ok((tail.into_iter().collect(), stdout))
    }

    /// SIGKILLs a running container: faster than a forced removal, which also
    /// waits for the filesystem to be torn down.
    pub(super) async fn kill(&self, name: &str) {
        let opts = bollard::query_parameters::KillContainerOptionsBuilder::default().signal("KILL").build();
        if let Err(e) = self.control.kill_container(name, Some(opts)).await {
            debug!(container = name, error = %e, "kill: container not running");
        }
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

async fn emit(
    step: &StepSpec,
    stderr: bool,
    raw: &[u8],
    output: &mpsc::Sender<OutputLine>,
    tail: &mut std::collections::VecDeque<String>,
) {
    let mut line = String::from_utf8_lossy(raw).trim_end_matches('\r').to_string();
    if line.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str(" …");
    }
    if tail.len() == TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(line.clone());
    // A closed receiver only means nobody records the output any more.
    let _ = output.send(OutputLine { step: step.name.clone(), stderr, line }).await;
}
