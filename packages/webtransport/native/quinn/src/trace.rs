//! Timing trace of the I/O thread for diagnosing session setup: with `QUIVER_QUINN_TRACE=<file>` in the
//! environment, one line per receive batch, event batch and send batch is appended to that file, stamped in
//! CLOCK_MONOTONIC milliseconds (the clock of Node's `process.hrtime`), so that a trace lines up with the
//! JavaScript side and with the peer process. Off (one relaxed load per call site) when the variable is unset.
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

static STATE: AtomicU8 = AtomicU8::new(0); // 0 unknown, 1 off, 2 on
static FILE: Mutex<Option<File>> = Mutex::new(None);

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn clock_gettime(clk: i32, tp: *mut Timespec) -> i32;
}

pub fn now_ms() -> f64 {
    let mut t = Timespec { sec: 0, nsec: 0 };
    // CLOCK_MONOTONIC = 1 on Linux.
    unsafe { clock_gettime(1, &mut t) };
    t.sec as f64 * 1000.0 + t.nsec as f64 / 1e6
}

#[inline]
pub fn on() -> bool {
    match STATE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => init(),
    }
}

#[cold]
fn init() -> bool {
    let f = std::env::var_os("QUIVER_QUINN_TRACE")
        .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
    let on = f.is_some();
    *FILE.lock().unwrap_or_else(|e| e.into_inner()) = f;
    STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
    on
}

thread_local! {
    pub static PORT: std::cell::Cell<u16> = std::cell::Cell::new(0);
}

pub fn line(port: u16, msg: std::fmt::Arguments<'_>) {
    let t = now_ms();
    if let Some(f) = FILE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let _ = writeln!(f, "{t:.3} :{port} {msg}");
    }
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::trace::on() {
            $crate::trace::line($crate::trace::PORT.with(|p| p.get()), format_args!($($arg)*));
        }
    };
}
pub(crate) use trace;
