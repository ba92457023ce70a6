//! `wrk` as the load generator of both sides, so ours and the anchor see the same client.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::pinned;

/// One `wrk --latency` run, as printed by wrk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrkResult {
    /// `Requests/sec:`
    pub requests_per_second: f64,
    /// 50th percentile latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Total requests completed.
    pub requests: u64,
    /// `Non-2xx or 3xx responses:` (0 when absent).
    pub non_success: u64,
    /// Socket errors of any kind (connect, read, write, timeout).
    pub socket_errors: u64,
}

/// How to drive the load.
#[derive(Debug, Clone)]
pub struct WrkLoad {
    /// CPUs wrk is pinned to (`taskset -c`), empty for no pinning.
    pub cpus: String,
    /// wrk threads.
    pub threads: u32,
    /// Open keep-alive connections.
    pub connections: u32,
    /// Run length.
    pub seconds: u32,
}

impl WrkLoad {
    /// Runs wrk against `url` with extra request `headers` and parses its report.
    pub async fn run(&self, url: &str, headers: &[String]) -> anyhow::Result<WrkResult> {
        let mut command = pinned(&self.cpus, "wrk");
        command.args([
            "--latency",
            "-t",
            &self.threads.to_string(),
            "-c",
            &self.connections.to_string(),
            "-d",
            &format!("{}s", self.seconds),
        ]);
        for header in headers {
            command.args(["-H", header]);
        }
        let output = command
            .arg(url)
            .kill_on_drop(true)
            .output()
            .await
            .context("cannot run wrk (apt-get install wrk)")?;
        let report = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "wrk failed: {report}{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        parse(&report).with_context(|| format!("unexpected wrk report:\n{report}"))
    }
}

/// Parses the text wrk prints with `--latency`.
pub fn parse(report: &str) -> anyhow::Result<WrkResult> {
    let mut result = WrkResult {
        requests_per_second: f64::NAN,
        p50: Duration::ZERO,
        p99: Duration::ZERO,
        requests: 0,
        non_success: 0,
        socket_errors: 0,
    };
    let (mut seen_p50, mut seen_p99) = (false, false);
    for line in report.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("50%"), Some(value)) => {
                result.p50 = duration(value)?;
                seen_p50 = true;
            }
            (Some("99%"), Some(value)) => {
                result.p99 = duration(value)?;
                seen_p99 = true;
            }
            (Some("Requests/sec:"), Some(value)) => result.requests_per_second = value.parse()?,
            (Some(count), Some("requests")) => result.requests = count.parse()?,
            _ => {}
        }
        if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            result.non_success = count.trim().parse()?;
        }
        if let Some(errors) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            result.socket_errors = errors
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1))
                .map(str::parse::<u64>)
                .sum::<Result<u64, _>>()?;
        }
    }
    if !(seen_p50 && seen_p99 && result.requests_per_second.is_finite()) {
        bail!("no latency distribution or Requests/sec line");
    }
    Ok(result)
}

/// wrk's latency units: `us`, `ms`, `s`, `m`.
fn duration(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .context("latency without unit")?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        other => bail!("unknown latency unit {other}"),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_wrk_report() {
        // Printed by wrk 4.1.0 against a local nginx.
        let report = "Running 2s test @ http://127.0.0.1:8080/\n  1 threads and 8 connections\n  \
            Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   210.52us  100.10us   \
            3.12ms   90.00%\n    Req/Sec    30.10k     1.20k   32.00k    70.00%\n  Latency \
            Distribution\n     50%  190.00us\n     75%  230.00us\n     90%  300.00us\n     99%    \
            1.02ms\n  60123 requests in 2.00s, 9.00MB read\n  Socket errors: connect 0, read 2, \
            write 0, timeout 1\n  Non-2xx or 3xx responses: 7\nRequests/sec:  30061.50\n\
            Transfer/sec:      4.50MB\n";
        let result = parse(report).expect("parses");
        assert_eq!(result.requests, 60123);
        assert_eq!(result.non_success, 7);
        assert_eq!(result.socket_errors, 3);
        assert_eq!(result.p50, Duration::from_micros(190));
        assert_eq!(result.p99, Duration::from_micros(1020));
        assert!((result.requests_per_second - 30061.5).abs() < 1e-9);
    }
}
