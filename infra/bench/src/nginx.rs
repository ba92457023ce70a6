//! nginx 1.22 (Debian build) as a foreground child with its own prefix, the anchor of both
//! benchmarks. Killed when dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Child;

use crate::pinned;

/// Debian's dynamic module folder (`libnginx-mod-*` packages).
pub const MODULES: &str = "/usr/lib/nginx/modules";

/// A running nginx.
pub struct Nginx {
    child: Child,
    prefix: PathBuf,
}

impl Nginx {
    /// Writes `<prefix>/nginx.conf` (the `daemon off;`, pid and log lines are added here, with
    /// the `load_module` lines of `modules`) and starts nginx pinned to `cpus`, returning once
    /// `port` accepts connections.
    pub async fn start(
        prefix: &Path,
        modules: &[&str],
        body: &str,
        cpus: &str,
        port: u16,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(prefix.join("logs"))?;
        let mut conf = String::new();
        for module in modules {
            conf.push_str(&format!("load_module {MODULES}/{module};\n"));
        }
        // Workers run as the invoking user, so they can read and write the private temp folders
        // (nginx only warns about `user` when not started as root).
        let user = std::env::var("USER").unwrap_or_else(|_| "root".to_owned());
        conf.push_str(&format!(
            "user {user};\ndaemon off;\npid {0}/nginx.pid;\nerror_log {0}/logs/error.log warn;\n{body}",
            prefix.display()
        ));
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = pinned(cpus, "/usr/sbin/nginx")
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf_path)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start /usr/sbin/nginx")?;
        let mut nginx = Self {
            child,
            prefix: prefix.to_path_buf(),
        };
        nginx.wait_for(port).await?;
        Ok(nginx)
    }

    /// Process id of the master (its workers are its children).
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("nginx exited")
    }

    async fn wait_for(&mut self, port: u16) -> anyhow::Result<()> {
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait()? {
                let log =
                    std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default();
                bail!("nginx exited with {status}: {log}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("nginx did not listen on {port}")
    }

    /// Stops nginx (SIGTERM to the master, which takes its workers down; a SIGKILL would orphan
    /// them) and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.terminate();
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }

    fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.terminate();
    }
}
