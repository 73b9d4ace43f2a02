//! The calling thread's CPU time: what a zone's tick cost, apart from the time the thread
//! spent descheduled. On a shared host a tick's wall time also counts other processes'
//! turns on the core; its CPU time does not, so a claim about the work a flood forces on a
//! zone is judged on this clock and a claim about what players feel on the wall clock.
#![allow(
    unsafe_code,
    reason = "clock_gettime has no safe std wrapper for thread CPU time"
)]

use std::time::Duration;

/// CPU time this thread has run, or zero if the clock is unavailable (it exists on every
/// Linux since 2.6.12).
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that outlives the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::thread_cpu_time;

    #[test]
    fn counts_work_and_not_sleep() {
        let before = thread_cpu_time();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let slept = thread_cpu_time() - before;
        let mut x = 0u64;
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let worked = thread_cpu_time() - before - slept;
        assert!(
            slept < std::time::Duration::from_millis(10),
            "{slept:?} while asleep"
        );
        assert!(
            worked > std::time::Duration::from_millis(5),
            "{worked:?} while spinning"
        );
    }
}
