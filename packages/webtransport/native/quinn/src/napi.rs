//! The few N-API functions the addon uses, declared from Node's `node_api.h` (stable ABI, N-API version 1).
use std::ffi::CString;
use std::os::raw::{c_char, c_void};
use std::ptr;

pub type napi_env = *mut c_void;
pub type napi_value = *mut c_void;
pub type napi_callback_info = *mut c_void;
pub type napi_status = i32;
pub type napi_callback = extern "C" fn(napi_env, napi_callback_info) -> napi_value;

extern "C" {
    pub fn napi_create_function(
        env: napi_env,
        utf8name: *const c_char,
        length: usize,
        cb: napi_callback,
        data: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_set_named_property(
        env: napi_env,
        object: napi_value,
        utf8name: *const c_char,
        value: napi_value,
    ) -> napi_status;
    pub fn napi_create_string_utf8(
        env: napi_env,
        s: *const c_char,
        length: usize,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_get_cb_info(
        env: napi_env,
        info: napi_callback_info,
        argc: *mut usize,
        argv: *mut napi_value,
        this_arg: *mut napi_value,
        data: *mut *mut c_void,
    ) -> napi_status;
    pub fn napi_get_value_string_utf8(
        env: napi_env,
        value: napi_value,
        buf: *mut c_char,
        bufsize: usize,
        result: *mut usize,
    ) -> napi_status;
    pub fn napi_throw_error(env: napi_env, code: *const c_char, msg: *const c_char) -> napi_status;
}

const NAPI_OK: napi_status = 0;

pub fn string(env: napi_env, s: &str) -> napi_value {
    let mut v: napi_value = ptr::null_mut();
    unsafe { napi_create_string_utf8(env, s.as_ptr() as *const c_char, s.len(), &mut v) };
    v
}

pub fn throw(env: napi_env, msg: &str) -> napi_value {
    let m = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    unsafe { napi_throw_error(env, ptr::null(), m.as_ptr()) };
    ptr::null_mut()
}

/// Exactly N arguments, or None.
pub fn args<const N: usize>(env: napi_env, info: napi_callback_info) -> Option<[napi_value; N]> {
    let mut argc = N;
    let mut argv = [ptr::null_mut(); N];
    let st = unsafe {
        napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut())
    };
    if st != NAPI_OK || argc < N {
        return None;
    }
    Some(argv)
}

/// A JS string as UTF-8; at most 1 MiB (certificates and keys), else None.
pub fn get_string(env: napi_env, v: napi_value) -> Option<String> {
    let mut len = 0usize;
    if unsafe { napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len) } != NAPI_OK || len > 1 << 20 {
        return None;
    }
    let mut buf = vec![0u8; len + 1];
    let mut got = 0usize;
    if unsafe { napi_get_value_string_utf8(env, v, buf.as_mut_ptr() as *mut c_char, len + 1, &mut got) } != NAPI_OK {
        return None;
    }
    buf.truncate(got);
    String::from_utf8(buf).ok()
}
