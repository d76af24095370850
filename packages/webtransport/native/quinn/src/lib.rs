//! Quiver's quinn engine, native side (first stage).
//!
//! Built offline from Debian's crates (`npm run build:native`). N-API is declared by hand (no napi crate in
//! Debian): the functions below resolve from the node binary when Node loads the addon. This stage proves the
//! toolchain end to end: the addon loads in Node 20, reports the crate versions, and `selfTest` runs a quinn
//! server and client on loopback with the caller's PEM certificate (ALPN h3, 0.5-RTT on the server through
//! `Connecting::into_0rtt`, an RFC 9221 datagram echoed). The engine proper (connections, streams and datagram
//! batches exchanged with JavaScript) is not written yet.
#![allow(non_camel_case_types)]

mod napi;
mod selftest;

use napi::*;
use std::os::raw::c_char;
use std::ptr;

extern "C" fn info(env: napi_env, _info: napi_callback_info) -> napi_value {
    let text = concat!(
        "{\"addon\":\"",
        env!("CARGO_PKG_VERSION"),
        "\",\"quinn\":\"0.9\",\"rustls\":\"0.20\",\"engineReady\":false}"
    );
    string(env, text)
}

extern "C" fn self_test(env: napi_env, info: napi_callback_info) -> napi_value {
    let args = match args::<2>(env, info) {
        Some(a) => a,
        None => return throw(env, "selfTest(certPem, keyPem): two arguments expected"),
    };
    let (cert, key) = match (get_string(env, args[0]), get_string(env, args[1])) {
        (Some(c), Some(k)) => (c, k),
        _ => return throw(env, "selfTest(certPem, keyPem): strings expected"),
    };
    // A panic must never cross into Node.
    match std::panic::catch_unwind(|| selftest::run(&cert, &key)) {
        Ok(Ok(report)) => string(env, &report),
        Ok(Err(e)) => throw(env, &format!("quinn self-test failed: {e}")),
        Err(_) => throw(env, "quinn self-test panicked"),
    }
}

#[no_mangle]
pub extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    unsafe {
        let mut f: napi_value = ptr::null_mut();
        napi_create_function(env, b"info\0".as_ptr() as *const c_char, usize::MAX, info, ptr::null_mut(), &mut f);
        napi_set_named_property(env, exports, b"info\0".as_ptr() as *const c_char, f);
        let mut g: napi_value = ptr::null_mut();
        napi_create_function(
            env,
            b"selfTest\0".as_ptr() as *const c_char,
            usize::MAX,
            self_test,
            ptr::null_mut(),
            &mut g,
        );
        napi_set_named_property(env, exports, b"selfTest\0".as_ptr() as *const c_char, g);
    }
    exports
}
