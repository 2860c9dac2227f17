//! The process metrics every Prometheus client library exports under the
//! same names (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_start_time_seconds`),
//! read from `/proc` at each scrape. Written as text beside the recorder's
//! output because the `metrics` facade's counters are integers and CPU
//! seconds are not. Elsewhere than Linux there is no `/proc` and nothing
//! is written.

use std::fmt::Write;

use super::catalog::{self, Kind};

/// Clock ticks per second of `/proc/*/stat` times: `USER_HZ`, which Linux
/// fixes at 100 for user space on every architecture (Prometheus' own
/// procfs reader assumes the same).
const USER_HZ: f64 = 100.0;

/// The process block of `/metrics`; empty without `/proc`.
pub fn render() -> String {
    let mut out = String::new();
    if let Some(stat) = Stat::read() {
        family(&mut out, "process_cpu_seconds_total", stat.cpu_seconds);
        family(&mut out, "process_virtual_memory_bytes", stat.virtual_bytes);
        if let Some(boot) = boot_time() {
            family(
                &mut out,
                "process_start_time_seconds",
                boot + stat.start_seconds_after_boot,
            );
        }
    }
    if let Some(rss) = resident_bytes() {
        family(&mut out, "process_resident_memory_bytes", rss);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        // The directory's own descriptor is among them, as in every client.
        family(&mut out, "process_open_fds", fds.count() as f64);
    }
    if let Some(max) = max_fds() {
        family(&mut out, "process_max_fds", max);
    }
    out
}

/// `# HELP`, `# TYPE` and the one sample of an unlabelled family.
fn family(out: &mut String, name: &str, value: f64) {
    let doc = catalog::find(name).expect("process metrics are in the catalog");
    let kind = match doc.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    };
    let _ = write!(
        out,
        "# HELP {name} {}\n# TYPE {name} {kind}\n{name} {value}\n\n",
        doc.help
    );
}

struct Stat {
    cpu_seconds: f64,
    start_seconds_after_boot: f64,
    virtual_bytes: f64,
}

impl Stat {
    fn read() -> Option<Stat> {
        parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }
}

/// `/proc/self/stat`: the command name (field 2) is in parentheses and may
/// hold spaces, so fields are counted from the last `)`; after it come
/// field 3 (state) onwards, so field N is at index N - 3.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    Some(Stat {
        cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
        start_seconds_after_boot: field(22)? / USER_HZ,
        virtual_bytes: field(23)?,
    })
}

/// `VmRSS` of `/proc/self/status`, in kB there: no page size needed.
fn resident_bytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// The `btime` line of `/proc/stat`: boot time in seconds since the epoch.
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
fn max_fds() -> Option<f64> {
    parse_max_fds(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

fn parse_max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    // "unlimited" is reported as the largest value, as other clients do.
    Some(soft.parse().unwrap_or(f64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_command_name() {
        // A command name with spaces and a parenthesis, as a process may
        // name itself; utime 250 and stime 150 ticks, start at 1000 ticks.
        let line = "4242 (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 3 0 1000 123456789 512 18446744073709551615";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.cpu_seconds, 4.0);
        assert_eq!(stat.start_seconds_after_boot, 10.0);
        assert_eq!(stat.virtual_bytes, 123456789.0);
    }

    #[test]
    fn max_fds_is_the_soft_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63704                63704                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024.0));
        assert_eq!(
            parse_max_fds(
                "Max open files            unlimited            unlimited            files\n"
            ),
            Some(f64::MAX)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_every_process_metric() {
        // Spin until the kernel has counted a tick of CPU time (10 ms).
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        while Stat::read().unwrap().cpu_seconds == 0.0 {
            spin = std::hint::black_box(spin.wrapping_add(1));
            assert!(started.elapsed().as_secs() < 5, "no CPU time counted");
        }
        let text = render();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            let sample = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing from {text}"));
            let value: f64 = sample[name.len() + 1..].parse().unwrap();
            assert!(value > 0.0, "{sample}");
        }
    }
}
