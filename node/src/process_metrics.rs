//! The standard `process_*` metrics Prometheus clients export (CPU, memory, file
//! descriptors, threads, start time), read from `/proc/self` at each scrape, so dashboards
//! and alerts written for any exporter work on a node unchanged. On systems without `/proc`
//! the families are left out.

use std::fmt::Write as _;

/// Appends the `process_*` families to `out`.
pub fn render(out: &mut String) {
    let Some(p) = read() else { return };
    let mut family = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    family("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.", p.cpu_seconds);
    family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", p.resident_bytes);
    family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", p.virtual_bytes);
    family("process_open_fds", "gauge", "Open file descriptors.", p.open_fds);
    family("process_max_fds", "gauge", "The open file descriptors limit.", p.max_fds);
    family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch, in seconds.",
        p.start_time_seconds,
    );
    family("process_threads", "gauge", "Operating system threads in the process.", p.threads);
}

/// One reading of the process's figures.
#[derive(Debug, Default)]
struct Process {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    open_fds: f64,
    max_fds: f64,
    start_time_seconds: f64,
    threads: f64,
}

fn read() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces and parentheses).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // proc(5): utime(14) stime(15) num_threads(20) starttime(22) vsize(23) rss(24), 1-based
    // over the whole line; `rest` starts at field 3.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok())))?;
    let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as f64).unwrap_or(0.0);
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse::<f64>().ok()))
        })
        .unwrap_or(0.0);
    Some(Process {
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        resident_bytes: field(24)? * page,
        virtual_bytes: field(23)?,
        open_fds,
        max_fds,
        start_time_seconds: boot + field(22)? / ticks,
        threads: field(20)?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_families_are_read_from_proc() {
        let mut out = String::new();
        super::render(&mut out);
        for name in
            ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_threads"]
        {
            let line =
                out.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {out}"));
            let value: f64 = line.split(' ').nth(1).unwrap().parse().unwrap();
            assert!(value >= 0.0, "{line}");
        }
        let threads = super::read().unwrap().threads;
        assert!(threads >= 1.0);
        let start = super::read().unwrap().start_time_seconds;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(start <= now + 1.0 && start > now - 86_400.0 * 365.0, "{start} vs {now}");
    }
}
