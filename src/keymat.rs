//! Key material: the text format of a key, its CSPRNG secret, its CRC32 checksum and
//! its SHA-256 digest. Nothing here touches the database.
//!
//! A key is `<prefix><secret><checksum>`:
//! - prefix: 1 to 32 characters of `[A-Za-z0-9_-]`;
//! - secret: [`SECRET_LEN`] base62 characters drawn uniformly from the OS CSPRNG
//!   (43 × log2(62) ≈ 256 bits);
//! - checksum: [`CHECKSUM_LEN`] base62 characters, the big-endian base62 encoding of the
//!   CRC32 (IEEE) of `prefix + secret`, zero-padded.
//!
//! Because the secret and checksum have fixed lengths, a key splits unambiguously from
//! the right, whatever characters the prefix holds.
use sha2::{Digest, Sha256};

pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const SECRET_LEN: usize = 43;
pub const CHECKSUM_LEN: usize = 6;
pub const PREFIX_MAX: usize = 32;
/// How many characters of the secret `start` shows after the prefix.
pub const START_SECRET_CHARS: usize = 4;
pub const MIN_KEY_LEN: usize = 1 + SECRET_LEN + CHECKSUM_LEN;
pub const MAX_KEY_LEN: usize = PREFIX_MAX + SECRET_LEN + CHECKSUM_LEN;

/// A freshly made key: the only moment the plaintext exists.
pub struct NewKey {
    pub key: String,
    pub start: String,
    pub digest: [u8; 32],
}

pub fn is_valid_prefix(prefix: &str) -> bool {
    (1..=PREFIX_MAX).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_base62(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_alphanumeric)
}

/// The checksum of `prefix + secret`, as 6 base62 characters.
pub fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(body) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// SHA-256 of the whole key text: what the database stores and looks up.
pub fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// Fill `out` with base62 characters drawn uniformly from the OS CSPRNG
/// (rejection sampling: bytes >= 248 are dropped so that `% 62` has no bias).
fn random_base62(out: &mut [u8]) -> Result<(), getrandom::Error> {
    let mut filled = 0;
    let mut buf = [0u8; 64];
    while filled < out.len() {
        getrandom::getrandom(&mut buf)?;
        for &b in buf.iter().filter(|&&b| b < 248) {
            if filled == out.len() {
                break;
            }
            out[filled] = ALPHABET[(b % 62) as usize];
            filled += 1;
        }
    }
    Ok(())
}

/// Make a new key with the given (already validated) prefix.
pub fn generate(prefix: &str) -> Result<NewKey, getrandom::Error> {
    debug_assert!(is_valid_prefix(prefix));
    let mut secret = [0u8; SECRET_LEN];
    random_base62(&mut secret)?;
    let mut key = Vec::with_capacity(prefix.len() + SECRET_LEN + CHECKSUM_LEN);
    key.extend_from_slice(prefix.as_bytes());
    key.extend_from_slice(&secret);
    let sum = checksum(&key);
    key.extend_from_slice(&sum);
    let key = String::from_utf8(key).expect("prefix and base62 are ASCII");
    let start = key[..prefix.len() + START_SECRET_CHARS].to_string();
    let digest = digest(key.as_bytes());
    Ok(NewKey { key, start, digest })
}

/// Check a presented key's shape and checksum without touching any table.
/// Returns its digest when the key could be real, `None` when it cannot.
pub fn check(key: &str) -> Option<[u8; 32]> {
    let bytes = key.as_bytes();
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&bytes.len()) {
        return None;
    }
    let body_len = bytes.len() - CHECKSUM_LEN;
    let prefix_len = body_len - SECRET_LEN;
    let (body, sum) = bytes.split_at(body_len);
    let (prefix, secret) = body.split_at(prefix_len);
    // The prefix is ASCII when valid, so it is safe to view as str only after the check.
    let prefix_ok = prefix
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
    if !prefix_ok || !is_base62(secret) || checksum(body) != sum {
        return None;
    }
    Some(digest(bytes))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn generated_key_has_the_documented_shape() {
        let k = generate("ak_").unwrap();
        assert_eq!(k.key.len(), 3 + SECRET_LEN + CHECKSUM_LEN);
        assert!(k.key.starts_with("ak_"));
        assert_eq!(k.start.len(), 3 + START_SECRET_CHARS);
        assert!(k.key.starts_with(&k.start));
        assert_eq!(check(&k.key), Some(k.digest));
        assert_eq!(k.digest, digest(k.key.as_bytes()));
    }

    #[test]
    fn two_keys_differ() {
        let a = generate("p-").unwrap();
        let b = generate("p-").unwrap();
        assert_ne!(a.key, b.key);
        assert_ne!(a.digest, b.digest);
    }

    #[test]
    fn checksum_is_crc32_in_fixed_width_base62() {
        // CRC32("") = 0 -> all zero digits; CRC32("a") = 0xE8B7BE43 = 3904355907.
        assert_eq!(&checksum(b""), b"000000");
        let mut n: u64 = 3904355907;
        let mut expect = [b'0'; 6];
        for slot in expect.iter_mut().rev() {
            *slot = ALPHABET[(n % 62) as usize];
            n /= 62;
        }
        assert_eq!(checksum(b"a"), expect);
        assert_eq!(&checksum(b"a"), b"4GEHKN"); // computed independently with Python zlib.crc32
    }

    #[test]
    fn any_single_character_change_is_refused() {
        let k = generate("dp_live_").unwrap();
        let bytes = k.key.as_bytes();
        for i in 0..bytes.len() {
            let mut changed = bytes.to_vec();
            changed[i] = if changed[i] == b'x' { b'y' } else { b'x' };
            let changed = String::from_utf8(changed).unwrap();
            assert_eq!(check(&changed), None, "position {i} of {changed}");
        }
    }

    #[test]
    fn malformed_input_is_refused() {
        assert_eq!(check(""), None);
        assert_eq!(check("ak_"), None);
        assert_eq!(check(&"a".repeat(100_000)), None);
        assert_eq!(check("ключ_ключ_ключ_ключ_ключ_ключ_ключ_ключ_ключ"), None);
        let k = generate("ak_").unwrap();
        assert_eq!(check(&format!(" {}", k.key)), None);
        assert_eq!(check(&format!("{}\n", k.key)), None);
    }

    #[test]
    fn prefix_rules() {
        assert!(is_valid_prefix("a"));
        assert!(is_valid_prefix(&"a".repeat(32)));
        assert!(is_valid_prefix("Dp_live-1"));
        assert!(!is_valid_prefix(""));
        assert!(!is_valid_prefix(&"a".repeat(33)));
        assert!(!is_valid_prefix("ak "));
        assert!(!is_valid_prefix("ak."));
        assert!(!is_valid_prefix("ключ"));
    }
}
