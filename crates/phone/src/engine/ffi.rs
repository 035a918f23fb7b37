//! Small helpers around the raw C API: strings in and out, lists, owned references.
//! Everything here runs on the core's thread.

use std::ffi::{CStr, CString, c_char, c_void};
use std::path::Path;

use linphone_sys as sys;

/// A C string for a call into liblinphone. Interior NULs (which no valid SIP address,
/// path or password contains) are dropped rather than failing the call.
pub(crate) fn cstr(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("NULs removed")
}

/// A path as a C string. liblinphone joins some folder paths with file names without a
/// separator, so `dir` adds the trailing `/` they need.
pub(crate) fn cpath(p: &Path) -> CString {
    cstr(&p.to_string_lossy())
}

/// A folder path with a trailing separator (see [`cpath`]).
pub(crate) fn cdir(p: &Path) -> CString {
    let mut s = p.to_string_lossy().into_owned();
    if !s.ends_with(std::path::MAIN_SEPARATOR) {
        s.push(std::path::MAIN_SEPARATOR);
    }
    cstr(&s)
}

/// Copy a borrowed C string (may be NULL).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for the duration of the call.
pub(crate) unsafe fn string(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-null and NUL-terminated by the caller's contract.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// Copy and free a C string that liblinphone handed over (`@tobefreed` / `char *`).
///
/// # Safety
/// `p` is NULL or a string allocated by liblinphone's allocator and owned by the caller.
pub(crate) unsafe fn owned_string(p: *mut c_char) -> Option<String> {
    // SAFETY: see the contract.
    let s = unsafe { string(p) };
    if !p.is_null() {
        // SAFETY: owned by us, allocated by bctoolbox.
        unsafe { sys::bctbx_free(p.cast()) };
    }
    s
}

/// The data pointers of a `bctbx_list_t`, in order.
///
/// # Safety
/// `list` is NULL or a valid list whose nodes stay alive during the call.
pub(crate) unsafe fn list_items(list: *const sys::bctbx_list_t) -> Vec<*mut c_void> {
    let mut out = Vec::new();
    let mut node = list;
    while !node.is_null() {
        // SAFETY: a valid node by the contract.
        unsafe {
            out.push((*node).data);
            node = (*node).next;
        }
    }
    out
}

/// `bool_t` from a Rust bool.
pub(crate) fn b(v: bool) -> sys::bool_t {
    sys::bool_t::from(v)
}

/// An address parsed by the factory, released on drop.
pub(crate) struct OwnedAddress(pub(crate) *mut sys::LinphoneAddress);

impl OwnedAddress {
    /// Parse a SIP address; `None` when liblinphone rejects it.
    pub(crate) fn parse(text: &str) -> Option<OwnedAddress> {
        let c = cstr(text);
        // SAFETY: the factory is a process-wide singleton; the string outlives the call.
        let p = unsafe {
            sys::linphone_factory_create_address(sys::linphone_factory_get(), c.as_ptr())
        };
        (!p.is_null()).then_some(OwnedAddress(p))
    }
}

impl Drop for OwnedAddress {
    fn drop(&mut self) {
        // SAFETY: created by us with one reference.
        unsafe { sys::linphone_address_unref(self.0) };
    }
}

/// The text of an address (may be NULL).
///
/// # Safety
/// `a` is NULL or a valid address.
pub(crate) unsafe fn address_text(a: *const sys::LinphoneAddress) -> Option<String> {
    if a.is_null() {
        return None;
    }
    // SAFETY: valid address; the returned string is ours to free.
    unsafe { owned_string(sys::linphone_address_as_string(a)) }
}
