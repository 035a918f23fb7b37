//! When a call's audio graph first runs.
//!
//! mediastreamer2 runs an audio stream's graph on a ticker thread: every 10 ms the file
//! player or sound card gives 10 ms of audio, and the encoder sends a packet once it holds
//! a packet's worth (two ticks for 20 ms packets). liblinphone creates that ticker inside
//! `audio_stream_start_from_io` *before* it links and attaches the graph (mediastreamer2
//! 5.1.64, `src/voip/audiostream.c`: `media_stream_start_ticker` at line 1400,
//! `ms_ticker_attach_multiple` at 1467, then the file player is plumbed in by a post-render
//! hook), and a new ticker thread ticks at once (`src/base/msticker.c`, `ms_ticker_run`).
//! That first tick finds no graph; the graph first runs a whole tick later. Measured on
//! loopback with liblinphone's log: stream started 6 ms after the 200 OK, first graph tick
//! 10 ms after that, first 20 ms packet 10 ms later again.
//!
//! So the engine keeps a spare ticker, started ahead of time, whose tick function holds it
//! still until the engine releases it. When liblinphone reports a call connected (or in
//! early media) it is about to start that call's audio stream, in the same call stack; the
//! engine then gives the stream the spare (liblinphone uses it instead of creating one; it
//! owns it from then on, as it would its own) and releases it as soon as control is back
//! in Rust, when the graph is complete. The first tick runs then and the others follow
//! every 10 ms from there, as mediastreamer2's own tick function would pace them.
//!
//! The clock also starts one tick in the past: the first two ticks run back to back. A
//! source that already holds its audio — a file (the demo line's voice, a recorded
//! message, the benchmark's tone) — then fills a 20 ms packet at once, as baresip's file
//! source does (it reads a whole packet's worth when it starts); a microphone has captured
//! nothing yet, so for it nothing changes. Nothing is sent that the source did not
//! produce; only the clock's phase moves. The spare is
//! started ahead because a new ticker's thread first waits in mediastreamer2's own tick
//! function, up to 10 ms, before a replacement function takes effect.
//!
//! A stream liblinphone restarts later (hold, resume, a re-INVITE) keeps its ticker.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::ffi::{CString, c_int, c_void};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use linphone_sys as sys;

/// Tickers held still, by address, until the engine releases them.
static HELD: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());
/// Wakes held tickers when one is released.
static RELEASED: Condvar = Condvar::new();
/// A held ticker looks again this often (whether it is being stopped) even if nobody
/// wakes it.
const POLL: Duration = Duration::from_millis(10);
/// A ticker is never held longer than this, whatever happens to the engine.
const HOLD_LIMIT: Duration = Duration::from_secs(600);
/// mediastreamer2's own tick function sleeps at most this long at a time.
const MAX_SLEEP: Duration = Duration::from_millis(10);

thread_local! {
    /// On a ticker's thread: the instant its virtual time counts from, once released.
    static ORIGIN: Cell<Option<Instant>> = const { Cell::new(None) };
}

fn held() -> MutexGuard<'static, BTreeSet<usize>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

fn release(ticker: usize) {
    if held().remove(&ticker) {
        RELEASED.notify_all();
    }
}

/// The tick function (`MSTickerTickFunc`): called on the ticker's thread after each tick
/// with the ticker's virtual time (milliseconds since it started, one interval ahead);
/// returns once that time is due, with how late it is, in milliseconds.
unsafe extern "C" fn wait_next_tick(ticker: *mut c_void, virtual_ms: u64) -> c_int {
    let origin = ORIGIN.with(|o| match o.get() {
        Some(t) => t,
        None => {
            hold(ticker as usize);
            // This tick and the next are due now; the others every interval from there.
            // SAFETY: called on the ticker's own thread, so the ticker is alive; its
            // interval is set when it is made and never changes.
            let interval = unsafe { (*ticker.cast::<sys::MSTicker>()).interval };
            let lead = u64::try_from(interval).unwrap_or(0);
            let now = Instant::now();
            let t = now
                .checked_sub(Duration::from_millis(virtual_ms + lead))
                .unwrap_or(now);
            o.set(Some(t));
            t
        }
    });
    let due = origin + Duration::from_millis(virtual_ms);
    loop {
        let now = Instant::now();
        if now >= due {
            return c_int::try_from((now - due).as_millis()).unwrap_or(c_int::MAX);
        }
        std::thread::sleep((due - now).min(MAX_SLEEP));
    }
}

/// Block the ticker's thread while the ticker is held, and not being stopped
/// (`ms_ticker_destroy` clears `run` and joins the thread).
fn hold(ticker: usize) {
    let limit = Instant::now() + HOLD_LIMIT;
    let mut set = held();
    // SAFETY: called on the ticker's own thread, so the ticker is alive.
    while set.contains(&ticker) && Instant::now() < limit && unsafe { running(ticker) } {
        set = RELEASED
            .wait_timeout(set, POLL)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    set.remove(&ticker);
}

/// The ticker's `run` flag, read under its lock as `ms_ticker_stop` writes it.
///
/// # Safety
/// `ticker` is a live `MSTicker`.
unsafe fn running(ticker: usize) -> bool {
    let t = ticker as *mut sys::MSTicker;
    // SAFETY: a live ticker; its lock is a pthread mutex mediastreamer2 initialised.
    unsafe {
        let lock = std::ptr::addr_of_mut!((*t).lock).cast::<libc::pthread_mutex_t>();
        libc::pthread_mutex_lock(lock);
        let run = (*t).run != 0;
        libc::pthread_mutex_unlock(lock);
        run
    }
}

/// A ticker the way mediastreamer2 makes an audio stream's (`media_stream_start_ticker`:
/// same name, same priority, `MS_AUDIO_PRIO` honoured), held, with our tick function.
fn new_held_ticker() -> *mut sys::MSTicker {
    let prio = match std::env::var("MS_AUDIO_PRIO")
        .unwrap_or_default()
        .to_ascii_uppercase()
        .as_str()
    {
        "NORMAL" => sys::MS_TICKER_PRIO_NORMAL,
        "REALTIME" => sys::MS_TICKER_PRIO_REALTIME,
        _ => sys::MS_TICKER_PRIO_HIGH,
    };
    let name = CString::new("Audio MSTicker").expect("no NUL");
    let params = sys::MSTickerParams {
        prio,
        name: name.as_ptr(),
    };
    // SAFETY: valid parameters (the name is copied); the ticker is ours until a stream
    // takes it. Held before the function is in place, so its first call waits.
    unsafe {
        let ticker = sys::ms_ticker_new_with_params(&params);
        if !ticker.is_null() {
            held().insert(ticker as usize);
            sys::ms_ticker_set_tick_func(ticker, Some(wait_next_tick), ticker.cast());
        }
        ticker
    }
}

/// The spare ticker and the tickers held until control is back in Rust. Lives on the
/// core's thread; releases every ticker it holds when dropped.
#[derive(Debug, Default)]
pub(crate) struct MediaClock {
    spare: Option<usize>,
    armed: Vec<usize>,
}

impl MediaClock {
    /// Start the spare ticker if there is none (its thread then settles into the hold).
    pub(crate) fn prepare(&mut self) {
        if self.spare.is_none() {
            let t = new_held_ticker();
            self.spare = (!t.is_null()).then_some(t as usize);
        }
    }

    /// Give `call`'s audio stream the spare ticker, held, if the stream exists and has
    /// neither started nor got a ticker yet; start the next spare. Only right before
    /// liblinphone starts the stream: when it reports the call connected or in early
    /// media, or before accepting it.
    ///
    /// # Safety
    /// `call` is a live call of the core whose thread this is.
    pub(crate) unsafe fn arm(&mut self, call: *mut sys::LinphoneCall) {
        // SAFETY: a live call; the stream it returns lives at least until the next
        // liblinphone call on this thread, and liblinphone only looks at its ticker on
        // this thread.
        unsafe {
            let stream = sys::linphone_call_get_stream(call, sys::LinphoneStreamTypeAudio);
            if stream.is_null()
                || (*stream).state != sys::MSStreamInitialized
                || !(*stream).sessions.ticker.is_null()
            {
                return;
            }
            self.prepare();
            let Some(ticker) = self.spare.take() else {
                return;
            };
            // What `media_stream_start_ticker` does, with our ticker.
            (*stream).sessions.ticker = ticker as *mut sys::MSTicker;
            self.armed.push(ticker);
        }
        self.prepare();
    }

    /// Let the tickers given out since the last call run: the graphs liblinphone started
    /// meanwhile are complete.
    pub(crate) fn release_all(&mut self) {
        for ticker in self.armed.drain(..) {
            release(ticker);
        }
    }
}

impl Drop for MediaClock {
    fn drop(&mut self) {
        self.release_all();
        if let Some(t) = self.spare.take() {
            release(t);
            // SAFETY: the spare belongs to no stream; released, its thread sees the stop.
            unsafe { sys::ms_ticker_destroy(t as *mut sys::MSTicker) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ticker's tick count, read under its lock.
    fn ticks(t: *mut sys::MSTicker) -> u32 {
        // SAFETY: a live ticker of the test's.
        unsafe {
            let lock = std::ptr::addr_of_mut!((*t).lock).cast::<libc::pthread_mutex_t>();
            libc::pthread_mutex_lock(lock);
            let n = (*t).ticks;
            libc::pthread_mutex_unlock(lock);
            n
        }
    }

    #[test]
    fn a_held_ticker_stands_still_until_released_then_ticks_twice_and_every_10_ms() {
        let t = new_held_ticker();
        assert!(!t.is_null());
        // Its thread's first wait is mediastreamer2's own (up to 10 ms); then it holds.
        std::thread::sleep(Duration::from_millis(40));
        let before = ticks(t);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(ticks(t), before, "a held ticker does not tick");
        release(t as usize);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(ticks(t) - before, 2, "two ticks at once when released");
        std::thread::sleep(Duration::from_millis(200));
        let ran = ticks(t) - before;
        assert!((20..=25).contains(&ran), "{ran} ticks in 205 ms");
        // SAFETY: our ticker, given to nobody.
        unsafe { sys::ms_ticker_destroy(t) };
    }

    #[test]
    fn a_held_ticker_can_be_destroyed_without_waiting_for_a_release() {
        let t = new_held_ticker();
        std::thread::sleep(Duration::from_millis(30));
        let start = Instant::now();
        // SAFETY: our ticker, given to nobody.
        unsafe { sys::ms_ticker_destroy(t) };
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
        assert!(!held().contains(&(t as usize)));
    }

    #[test]
    fn the_clock_keeps_a_spare_and_stops_it_when_dropped() {
        let mut clock = MediaClock::default();
        clock.prepare();
        let spare = clock.spare.expect("a spare ticker");
        clock.prepare();
        assert_eq!(clock.spare, Some(spare), "one spare at a time");
        assert!(held().contains(&spare));
        drop(clock);
        assert!(!held().contains(&spare));
    }
}
