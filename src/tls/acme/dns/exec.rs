//! `exec`: lego's generic provider running a program. `EXEC_PATH` is run as `<path> present|cleanup <fqdn>
//! <value>`, or with `EXEC_MODE=RAW` as `<path> present|cleanup -- <domain> <token> <keyAuth>`; a non-zero exit
//! fails the order. Its output is logged at debug level (lines, bounded). `EXEC_PROPAGATION_TIMEOUT` (60 s),
//! `EXEC_POLLING_INTERVAL` (3 s), and `EXEC_SEQUENCE_INTERVAL` (accepted, unused: records are presented one
//! after the other anyway).

use std::time::Duration;

use super::query::Lookup;
use super::{BoxFuture, DnsProvider, Env, Record, Timing};

/// Bound on one run of the program.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The exec provider.
pub struct Exec {
    program: String,
    raw: bool,
    timing: Timing,
}

impl Exec {
    /// Reads `EXEC_PATH`, `EXEC_MODE` and the timing variables.
    pub fn from_env(env: &Env<'_>) -> Result<Exec, String> {
        Ok(Exec {
            program: env.required(&["EXEC_PATH"])?,
            raw: env.get("EXEC_MODE")?.as_deref() == Some("RAW"),
            timing: env.timing(
                &["EXEC"],
                Timing {
                    timeout: Duration::from_secs(60),
                    interval: Duration::from_secs(3),
                },
            )?,
        })
    }

    /// The program's arguments for `action`, in lego's order.
    pub fn args(&self, action: &str, r: &Record) -> Vec<String> {
        if self.raw {
            vec![
                action.into(),
                "--".into(),
                r.domain.clone(),
                r.token.clone(),
                r.key_auth.clone(),
            ]
        } else {
            vec![action.into(), r.fqdn.clone(), r.value.clone()]
        }
    }

    async fn run(&self, action: &str, r: &Record) -> Result<(), String> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(self.args(action, r)).kill_on_drop(true);
        let out = tokio::time::timeout(RUN_TIMEOUT, cmd.output())
            .await
            .map_err(|_| format!("{} {action}: no exit within {RUN_TIMEOUT:?}", self.program))?
            .map_err(|e| format!("{}: {e}", self.program))?;
        for line in String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
            .take(50)
        {
            tracing::debug!(provider = "exec", "{line}");
        }
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {action} exited with {}",
                self.program, out.status
            ))
        }
    }
}

impl DnsProvider for Exec {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn timing(&self) -> Timing {
        self.timing
    }

    fn present<'a>(&'a self, r: &'a Record, _: &'a Lookup) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.run("present", r))
    }

    fn cleanup<'a>(&'a self, r: &'a Record, _: &'a Lookup) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.run("cleanup", r))
    }
}
