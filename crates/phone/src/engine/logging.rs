//! liblinphone's log, routed through the `log` facade (target `linphone`) with personal
//! data masked. liblinphone's logging service is one per process, so the level is too.

use std::ffi::c_char;
use std::sync::Once;

use linphone_sys as sys;
use log::{Level, LevelFilter};

use super::ffi;
use crate::redact::scrub;

/// The `log` target liblinphone's messages use.
pub const TARGET: &str = "linphone";

static INSTALL: Once = Once::new();

/// Route liblinphone's log through `log` and let through messages at `level` and above
/// (`Off` silences it). Applies to every phone in the process.
pub fn set_engine_log_level(level: LevelFilter) {
    INSTALL.call_once(|| {
        // SAFETY: the service is a process-wide singleton; the callbacks object is handed
        // to it (it keeps its own reference) and the function lives for the whole program.
        unsafe {
            let service = sys::linphone_logging_service_get();
            let cbs = sys::linphone_factory_create_logging_service_cbs(sys::linphone_factory_get());
            sys::linphone_logging_service_cbs_set_log_message_written(cbs, Some(on_log));
            sys::linphone_logging_service_add_callbacks(service, cbs);
            sys::linphone_logging_service_cbs_unref(cbs);
        }
    });
    let mask = match level {
        LevelFilter::Off => 0,
        LevelFilter::Error => sys::LinphoneLogLevelError | sys::LinphoneLogLevelFatal,
        LevelFilter::Warn => {
            sys::LinphoneLogLevelWarning | sys::LinphoneLogLevelError | sys::LinphoneLogLevelFatal
        }
        LevelFilter::Info => {
            sys::LinphoneLogLevelMessage
                | sys::LinphoneLogLevelWarning
                | sys::LinphoneLogLevelError
                | sys::LinphoneLogLevelFatal
        }
        LevelFilter::Debug | LevelFilter::Trace => 0x3f,
    };
    // SAFETY: see above.
    unsafe {
        sys::linphone_logging_service_set_log_level_mask(sys::linphone_logging_service_get(), mask)
    };
}

fn level_of(l: sys::LinphoneLogLevel) -> Level {
    match l {
        sys::LinphoneLogLevelFatal | sys::LinphoneLogLevelError => Level::Error,
        sys::LinphoneLogLevelWarning => Level::Warn,
        sys::LinphoneLogLevelMessage => Level::Info,
        sys::LinphoneLogLevelTrace => Level::Debug,
        _ => Level::Trace,
    }
}

/// Called by liblinphone, from any of its threads.
unsafe extern "C" fn on_log(
    _service: *mut sys::LinphoneLoggingService,
    domain: *const c_char,
    level: sys::LinphoneLogLevel,
    message: *const c_char,
) {
    let level = level_of(level);
    if !log::log_enabled!(target: TARGET, level) {
        return;
    }
    // SAFETY: liblinphone passes NUL-terminated strings valid during the call.
    let (domain, message) = unsafe { (ffi::string(domain), ffi::string(message)) };
    let message = message.unwrap_or_default();
    log::log!(target: TARGET, level, "[{}] {}", domain.as_deref().unwrap_or("-"), scrub(message.trim_end()));
}
