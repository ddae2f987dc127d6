//! Facts about this process and this machine that INFO reports: resident memory, CPU time,
//! the operating system's name. Read from the kernel when asked; nothing here is cached.

/// Resident set size in bytes (0 where it cannot be read).
pub fn rss_bytes() -> u64 {
    #[cfg(target_os = "linux")]
    {
        // The second field of statm is resident pages.
        let pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        pages * page_bytes()
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(unix)]
fn page_bytes() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(not(unix))]
fn page_bytes() -> u64 {
    4096
}

/// Physical memory of the machine in bytes (0 where unknown).
pub fn total_memory_bytes() -> u64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads system constants.
        let (pages, size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        u64::try_from(pages)
            .unwrap_or(0)
            .saturating_mul(u64::try_from(size).unwrap_or(0))
    }
    #[cfg(not(unix))]
    {
        0
    }
}

/// CPU time used, in seconds: (system, user) of the whole process, or of the calling thread.
pub fn cpu_seconds(thread_only: bool) -> (f64, f64) {
    #[cfg(unix)]
    {
        #[cfg(target_os = "linux")]
        let who = if thread_only {
            libc::RUSAGE_THREAD
        } else {
            libc::RUSAGE_SELF
        };
        #[cfg(not(target_os = "linux"))]
        let who = {
            let _ = thread_only;
            libc::RUSAGE_SELF
        };
        // SAFETY: getrusage fills the struct we pass; zeroed is a valid initial value.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            if libc::getrusage(who, &mut usage) != 0 {
                return (0.0, 0.0);
            }
            usage
        };
        let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        (secs(usage.ru_stime), secs(usage.ru_utime))
    }
    #[cfg(not(unix))]
    {
        let _ = thread_only;
        (0.0, 0.0)
    }
}

/// `<sysname> <release> <machine>`, as Redis's `os:` line.
pub fn os_name() -> String {
    #[cfg(unix)]
    {
        // SAFETY: uname fills the struct we pass; its fields are NUL-terminated strings.
        unsafe {
            let mut name: libc::utsname = std::mem::zeroed();
            if libc::uname(&mut name) == 0 {
                let field = |f: &[libc::c_char]| {
                    std::ffi::CStr::from_ptr(f.as_ptr())
                        .to_string_lossy()
                        .into_owned()
                };
                return format!(
                    "{} {} {}",
                    field(&name.sysname),
                    field(&name.release),
                    field(&name.machine)
                );
            }
        }
    }
    std::env::consts::OS.to_string()
}

/// Bytes as Redis's `*_human` fields print them: `512B`, `1.50K`, `11.88M`...
pub fn bytes_to_human(bytes: u64) -> String {
    const UNITS: [char; 5] = ['K', 'M', 'G', 'T', 'P'];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2}{}", UNITS[unit])
}

/// A random 40-hex-digit identifier (run IDs, replication IDs), as Redis makes them.
pub(crate) fn hex_id() -> String {
    (0..40)
        .map(|_| std::char::from_digit(fastrand::u32(..16), 16).unwrap_or('0'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(bytes_to_human(0), "0B");
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(1536), "1.50K");
        assert_eq!(bytes_to_human(12_457_984), "11.88M");
    }

    #[test]
    fn this_process_is_visible() {
        assert!(rss_bytes() > 0);
        assert!(total_memory_bytes() > rss_bytes());
        assert!(!os_name().is_empty());
    }
}
