//! liblinphone's callbacks. They fire inside `linphone_core_iterate` (or inside a call
//! into the core) on the engine thread; each copies what it needs into the [`Sink`] and
//! returns, and the engine handles the queue when control is back in Rust.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void};

use linphone_sys as sys;

use super::ffi;
use super::media_clock::MediaClock;
use crate::call::CallId;

/// What a callback saw.
#[derive(Debug)]
pub(crate) enum Raw {
    Call(CallSnapshot),
    Registration {
        account: *mut sys::LinphoneAccount,
        state: sys::LinphoneRegistrationState,
        reason: sys::LinphoneReason,
        sip_code: Option<u16>,
    },
    Dtmf {
        call: CallId,
        digit: char,
    },
    Transfer {
        call: CallId,
        state: sys::LinphoneCallState,
    },
    DevicesChanged,
}

/// A call's state at the moment liblinphone reported it.
#[derive(Debug)]
pub(crate) struct CallSnapshot {
    pub(crate) id: CallId,
    pub(crate) ptr: *mut sys::LinphoneCall,
    pub(crate) state: sys::LinphoneCallState,
    pub(crate) incoming: bool,
    pub(crate) reason: sys::LinphoneReason,
    pub(crate) sip_code: Option<u16>,
    pub(crate) remote: Option<String>,
    pub(crate) to: Option<String>,
    /// The far end's SDP offers no audio to us (it put us on hold).
    pub(crate) remote_holds: bool,
    pub(crate) codec: Option<String>,
}

/// The queue between callbacks and the engine; the core's user data points here.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub(crate) raw: RefCell<Vec<Raw>>,
    /// Holds a call's audio ticker until its graph is complete ([`MediaClock`]).
    pub(crate) media_clock: RefCell<MediaClock>,
    next_id: Cell<u64>,
}

impl Sink {
    /// Our id for a call, assigning one (and taking a reference the engine drops when the
    /// call is released) the first time the call is seen.
    ///
    /// # Safety
    /// `call` is a valid call of the core this sink belongs to.
    pub(crate) unsafe fn call_id(&self, call: *mut sys::LinphoneCall) -> CallId {
        // SAFETY: valid call; the user data is ours (an id, never dereferenced).
        unsafe {
            let tag = sys::linphone_call_get_user_data(call) as usize;
            if tag != 0 {
                return CallId(tag as u64);
            }
            let id = self.next_id.get() + 1;
            self.next_id.set(id);
            sys::linphone_call_ref(call);
            sys::linphone_call_set_user_data(call, id as usize as *mut c_void);
            CallId(id)
        }
    }

    fn push(&self, raw: Raw) {
        self.raw.borrow_mut().push(raw);
    }
}

/// The sink of the core a callback fired for.
///
/// # Safety
/// `core` is one of our cores, whose user data is a live `Sink`.
unsafe fn sink<'a>(core: *mut sys::LinphoneCore) -> Option<&'a Sink> {
    // SAFETY: the engine sets the user data to a boxed Sink that outlives the core.
    unsafe { (sys::linphone_core_get_user_data(core) as *const Sink).as_ref() }
}

fn status_code(code: c_int) -> Option<u16> {
    u16::try_from(code).ok().filter(|c| (100..700).contains(c))
}

/// Install our callbacks on `core`.
///
/// # Safety
/// `core` is valid and its user data points to a `Sink` that outlives it.
pub(crate) unsafe fn install(core: *mut sys::LinphoneCore) {
    // SAFETY: plain setters on objects we own; the core keeps its own reference to cbs.
    unsafe {
        let cbs = sys::linphone_factory_create_core_cbs(sys::linphone_factory_get());
        sys::linphone_core_cbs_set_call_state_changed(cbs, Some(on_call_state));
        sys::linphone_core_cbs_set_account_registration_state_changed(cbs, Some(on_registration));
        sys::linphone_core_cbs_set_dtmf_received(cbs, Some(on_dtmf));
        sys::linphone_core_cbs_set_transfer_state_changed(cbs, Some(on_transfer));
        sys::linphone_core_cbs_set_audio_devices_list_updated(cbs, Some(on_devices));
        sys::linphone_core_add_callbacks(core, cbs);
        sys::linphone_core_cbs_unref(cbs);
    }
}

unsafe extern "C" fn on_call_state(
    core: *mut sys::LinphoneCore,
    call: *mut sys::LinphoneCall,
    state: sys::LinphoneCallState,
    _message: *const c_char,
) {
    // SAFETY: liblinphone passes a live core and call on the engine thread.
    unsafe {
        let Some(sink) = sink(core) else { return };
        if matches!(
            state,
            sys::LinphoneCallStateConnected
                | sys::LinphoneCallStateOutgoingEarlyMedia
                | sys::LinphoneCallStateIncomingEarlyMedia
        ) {
            // liblinphone starts the call's audio stream right after telling us.
            sink.media_clock.borrow_mut().arm(call);
        }
        let id = sink.call_id(call);
        let ei = sys::linphone_call_get_error_info(call);
        let sip_code = if ei.is_null() {
            None
        } else {
            status_code(sys::linphone_error_info_get_protocol_code(ei))
        };
        let remote_params = sys::linphone_call_get_remote_params(call);
        let remote_holds = !remote_params.is_null()
            && matches!(
                sys::linphone_call_params_get_audio_direction(remote_params),
                sys::LinphoneMediaDirectionSendOnly | sys::LinphoneMediaDirectionInactive
            );
        let current = sys::linphone_call_get_current_params(call);
        let codec = if current.is_null() {
            None
        } else {
            let pt = sys::linphone_call_params_get_used_audio_payload_type(current);
            if pt.is_null() {
                None
            } else {
                ffi::string(sys::linphone_payload_type_get_mime_type(pt))
            }
        };
        sink.push(Raw::Call(CallSnapshot {
            id,
            ptr: call,
            state,
            incoming: sys::linphone_call_get_dir(call) == sys::LinphoneCallIncoming,
            reason: sys::linphone_call_get_reason(call),
            sip_code,
            remote: ffi::address_text(sys::linphone_call_get_remote_address(call)),
            to: ffi::address_text(sys::linphone_call_get_to_address(call)),
            remote_holds,
            codec,
        }));
    }
}

unsafe extern "C" fn on_registration(
    core: *mut sys::LinphoneCore,
    account: *mut sys::LinphoneAccount,
    state: sys::LinphoneRegistrationState,
    _message: *const c_char,
) {
    // SAFETY: live core and account on the engine thread.
    unsafe {
        let Some(sink) = sink(core) else { return };
        let ei = sys::linphone_account_get_error_info(account);
        let (reason, sip_code) = if ei.is_null() {
            (sys::LinphoneReasonNone, None)
        } else {
            (
                sys::linphone_error_info_get_reason(ei),
                status_code(sys::linphone_error_info_get_protocol_code(ei)),
            )
        };
        sink.push(Raw::Registration {
            account,
            state,
            reason,
            sip_code,
        });
    }
}

unsafe extern "C" fn on_dtmf(
    core: *mut sys::LinphoneCore,
    call: *mut sys::LinphoneCall,
    dtmf: c_int,
) {
    // SAFETY: live core and call on the engine thread.
    unsafe {
        let Some(sink) = sink(core) else { return };
        let id = sink.call_id(call);
        if let Some(digit) = u8::try_from(dtmf).ok().map(char::from) {
            sink.push(Raw::Dtmf { call: id, digit });
        }
    }
}

unsafe extern "C" fn on_transfer(
    core: *mut sys::LinphoneCore,
    call: *mut sys::LinphoneCall,
    state: sys::LinphoneCallState,
) {
    // SAFETY: live core and call on the engine thread.
    unsafe {
        let Some(sink) = sink(core) else { return };
        let id = sink.call_id(call);
        sink.push(Raw::Transfer { call: id, state });
    }
}

unsafe extern "C" fn on_devices(core: *mut sys::LinphoneCore) {
    // SAFETY: live core on the engine thread.
    if let Some(sink) = unsafe { sink(core) } {
        sink.push(Raw::DevicesChanged);
    }
}
