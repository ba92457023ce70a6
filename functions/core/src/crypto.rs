//! The few primitives every module shares, so each rule names *what* it signs and this file
//! alone knows *how* (RustCrypto, one digest generation, constant-time comparison).

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// HMAC-SHA1 over the concatenation of `parts`, so callers never build a temporary string.
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    // Invariant: HMAC accepts keys of any length (long keys are hashed, short ones padded);
    // `new_from_slice` only fails for fixed-key-size MACs.
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Raw MD5 (PHP's `md5($s, true)`) over the concatenation of `parts`.
pub(crate) fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Constant-time equality. Only the lengths may leak, and every caller compares values whose
/// length is public (a digest size or the length of a well-formed token).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Lowercase hex of SHA-256 over the concatenation of `parts`: how stream keys and session
/// cookies become KV keys, and how a hook's publish is tagged.
pub(crate) fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
