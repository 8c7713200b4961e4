//! The one way tests run the service's binary (`caddy-build-server <role>`):
//! its config written by [`ConfigYaml`] into a directory of its own, its output
//! into log files there, killed when dropped. A failing test prints the tail of
//! the logs of the processes it started.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use super::config::ConfigYaml;
use super::tempdir::TempDir;
use super::wait;

/// A running `caddy-build-server` process.
pub struct Service {
    pub child: tokio::process::Child,
    /// Its stdout, where its logs go.
    pub log: PathBuf,
    name: String,
    dir: TempDir,
}

/// How to start one: the role, its config and the environment.
pub struct ServiceCommand {
    role: String,
    name: String,
    config: ConfigYaml,
    env: Vec<(String, String)>,
    env_clear: bool,
}

impl ServiceCommand {
    /// `caddy-build-server --config <config> <role>`; `name` tells processes apart in logs.
    pub fn new(role: &str, name: &str, config: &ConfigYaml) -> ServiceCommand {
        ServiceCommand { role: role.into(), name: name.into(), config: config.clone(), env: Vec::new(), env_clear: false }
    }

    /// Starts from an empty environment (only what [`Self::env`] adds).
    pub fn env_clear(mut self) -> ServiceCommand {
        self.env_clear = true;
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> ServiceCommand {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn spawn(self) -> Service {
        let dir = TempDir::new(&format!("svc-{}", self.name));
        let config = self.config.write(dir.join("config.yml"));
        let log = dir.join(format!("{}.log", self.name));
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_caddy-build-server"));
        cmd.arg("--config").arg(&config).arg(&self.role);
        if self.env_clear {
            cmd.env_clear();
        }
        cmd.env_remove("CONFIG_PATH");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start caddy-build-server {}: {e}", self.role));
        Service { child, log, name: self.name, dir }
    }
}

impl Service {
    /// `caddy-build-server --config <config> <role>` with this process's environment.
    pub fn spawn(role: &str, name: &str, config: &ConfigYaml) -> Service {
        ServiceCommand::new(role, name, config).spawn()
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("still running") as i32
    }

    /// Sends `sig` (`TERM`, `KILL`, `USR1`, `STOP`, `CONT`…).
    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status().unwrap();
        assert!(ok.success(), "kill -{sig} {}", self.name);
    }

    /// Waits for the process to exit (within `limit`, which only bounds a hang).
    pub async fn exited(&mut self, limit: Duration) -> ExitStatus {
        let what = format!("{} has not exited", self.name);
        wait::within(&what, limit, self.child.wait()).await.unwrap()
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(mut self, limit: Duration) -> ExitStatus {
        self.signal("TERM");
        self.exited(limit).await
    }

    /// What it logged so far (stdout and stderr).
    pub fn log_text(&self) -> String {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        let err = std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default();
        out + &err
    }

    /// Waits until its log holds `needle`; the log.
    pub async fn wait_for_log(&self, needle: &str, limit: Duration) -> String {
        let what = format!("{} never logged {needle:?}", self.name);
        wait::until_some(&what, limit, || async {
            let text = self.log_text();
            text.contains(needle).then_some(text)
        })
        .await
    }

    /// Waits until `<base>/readyz` answers 200 (an api, or `all`).
    pub async fn wait_ready(&mut self, base: &str, limit: Duration) {
        let http = reqwest::Client::new();
        let url = format!("{base}/readyz");
        let what = format!("{} not ready at {url}", self.name);
        let child = &mut self.child;
        wait::until(&what, limit, || {
            let req = http.get(&url);
            let exited = child.try_wait().ok().flatten();
            async move {
                assert!(exited.is_none(), "exited before it was ready: {exited:?}");
                req.send().await.is_ok_and(|r| r.status() == 200)
            }
        })
        .await;
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("--- last log lines of {} ---", self.name);
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}
