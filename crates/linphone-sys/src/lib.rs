//! Raw, unsafe bindings to liblinphone's C API (`/usr/include/linphone`), generated at
//! build time with bindgen from the installed headers.
//!
//! Nothing here is safe to call from more than one thread: liblinphone wants every call
//! on the thread that drives `linphone_core_iterate`. `callhelper-phone` is the safe
//! layer; no other crate should use this one.

#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    missing_debug_implementations
)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
