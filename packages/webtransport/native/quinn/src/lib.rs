//! Quiver's quinn engine, native side: quinn-proto 0.9 driven by an I/O thread per endpoint (`engine.rs`),
//! exposed to Node through hand-declared N-API (no napi crate in Debian; the functions resolve from the node
//! binary when Node loads the addon). `selfTest` runs the high-level quinn API on loopback as a toolchain check.
//!
//! Every function here runs on the JS thread and holds the endpoint's state lock only for a few quinn-proto
//! calls. Panics never cross into Node: each entry point catches them and throws a JS error instead.
#![allow(non_camel_case_types)]

mod api;
mod engine;
mod napi;
mod selftest;
mod tls;
mod trace;

use napi::*;

extern "C" fn info(env: napi_env, _info: napi_callback_info) -> napi_value {
    let text = concat!(
        "{\"addon\":\"",
        env!("CARGO_PKG_VERSION"),
        "\",\"quinn\":\"0.9\",\"rustls\":\"0.20\",\"engineReady\":true}"
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
    set_fn(env, exports, b"info\0", info);
    set_fn(env, exports, b"selfTest\0", self_test);
    api::register(env, exports);
    exports
}
