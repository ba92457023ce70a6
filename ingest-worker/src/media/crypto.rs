//! HLS AES-128 segment encryption (RFC 8216 §4.3.2.4): AES-128-CBC with PKCS7 padding over the
//! whole segment, CBC restarted for every segment, and the key schedule that decides when a new
//! key is drawn.
//!
//! The block cipher is the `aes` crate, which picks AES-NI / VAES (x86) or ARMv8 AES at run time
//! via `cpufeatures`: no `RUSTFLAGS`, target features or `.cargo/config.toml` needed.
//!
//! The CBC chaining is done here rather than with `cbc::Encryptor`: `cbc` 0.2 round-trips the
//! chaining value through memory for every block, which on the serial CBC-encrypt path costs
//! ~20 % (measured 0.80× vs 0.96× of `openssl speed -evp aes-128-cbc`, see docs/BENCHMARKS.md).
//! Holding the chaining value in a local inside one `encrypt_with_backend` call keeps it in a
//! register. The result is checked against the openssl CLI and against `cbc` in the tests.

use aes::cipher::consts::U16;
use aes::cipher::{
    BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, KeyInit,
};

use super::KeySource;

/// AES block size; PKCS7 always adds 1..=16 bytes.
const BLOCK_LEN: usize = 16;

/// Encrypts `plaintext` in place with AES-128-CBC and PKCS7 padding (it grows by 1..=16
/// bytes). Reserve 16 bytes of spare capacity to avoid a reallocation.
pub fn encrypt_segment(key: &[u8; 16], iv: &[u8; 16], plaintext: &mut Vec<u8>) {
    let message_len = plaintext.len();
    let padding = BLOCK_LEN - message_len % BLOCK_LEN;
    // 1..=16, fits a byte.
    plaintext.resize(message_len + padding, padding as u8);
    aes::Aes128::new(key.into()).encrypt_with_backend(CbcChain {
        iv: *iv,
        data: plaintext,
    });
}

/// CBC over whole blocks, run inside the cipher's backend (so inside its target-feature
/// context, with the round keys loaded once).
struct CbcChain<'a> {
    iv: [u8; 16],
    /// A multiple of 16 bytes.
    data: &'a mut [u8],
}

impl BlockSizeUser for CbcChain<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for CbcChain<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let mut chain = aes::Block::from(self.iv);
        for chunk in self.data.chunks_exact_mut(BLOCK_LEN) {
            let mut block = chain;
            for (byte, plain) in block.iter_mut().zip(chunk.iter()) {
                *byte ^= *plain;
            }
            backend.encrypt_block((&mut block).into());
            chain = block;
            chunk.copy_from_slice(&block);
        }
    }
}

/// The key a segment is encrypted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentKey {
    /// Media sequence number of the first segment under this key.
    pub key_id: u64,
    /// The 16 key bytes.
    pub key: [u8; 16],
    /// First use of this key: it must be stored before the segment.
    pub is_new: bool,
}

/// Rotates keys every `segments_per_key` segments.
#[derive(Debug)]
pub struct KeySchedule {
    segments_per_key: u32,
    current: Option<(u64, [u8; 16])>,
    segments_under_current: u32,
}

impl KeySchedule {
    /// `segments_per_key` of 0 is treated as 1 (a fresh key per segment).
    pub fn new(segments_per_key: u32) -> Self {
        Self {
            segments_per_key: segments_per_key.max(1),
            current: None,
            segments_under_current: 0,
        }
    }

    /// The key for the segment with media sequence number `sequence`, drawing a new one from
    /// `keys` when the current key has been used `segments_per_key` times.
    pub fn key_for(&mut self, sequence: u64, keys: &mut impl KeySource) -> SegmentKey {
        match self.current {
            Some((key_id, key)) if self.segments_under_current < self.segments_per_key => {
                self.segments_under_current += 1;
                SegmentKey {
                    key_id,
                    key,
                    is_new: false,
                }
            }
            _ => {
                let mut key = [0u8; 16];
                keys.fill(&mut key);
                self.current = Some((sequence, key));
                self.segments_under_current = 1;
                SegmentKey {
                    key_id: sequence,
                    key,
                    is_new: true,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u8);

    impl KeySource for Counter {
        fn fill(&mut self, buf: &mut [u8; 16]) {
            self.0 += 1;
            *buf = [self.0; 16];
        }
    }

    #[test]
    fn keys_rotate_every_n_segments_and_are_named_by_first_sequence() {
        let mut schedule = KeySchedule::new(3);
        let mut keys = Counter(0);
        let ids: Vec<_> = (100..107)
            .map(|seq| schedule.key_for(seq, &mut keys))
            .map(|k| (k.key_id, k.key[0], k.is_new))
            .collect();
        assert_eq!(
            ids,
            [
                (100, 1, true),
                (100, 1, false),
                (100, 1, false),
                (103, 2, true),
                (103, 2, false),
                (103, 2, false),
                (106, 3, true)
            ]
        );
    }

    #[test]
    fn zero_segments_per_key_means_one() {
        let mut schedule = KeySchedule::new(0);
        let mut keys = Counter(0);
        assert!(schedule.key_for(1, &mut keys).is_new);
        assert!(schedule.key_for(2, &mut keys).is_new);
    }

    /// Expected bytes from `openssl enc -aes-128-cbc -K 000102030405060708090a0b0c0d0e0f
    /// -iv 101112131415161718191a1b1c1d1e1f` (PKCS7 is openssl's default padding).
    #[test]
    fn matches_openssl_cli() {
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let iv: [u8; 16] = std::array::from_fn(|i| 0x10 + i as u8);
        for (plaintext, expected_hex) in [
            (&b""[..], OPENSSL_EMPTY),
            (&b"gatecast segment"[..], OPENSSL_ONE_BLOCK),
            (&b"hello, encrypted HLS world!"[..], OPENSSL_27_BYTES),
        ] {
            let mut buf = plaintext.to_vec();
            encrypt_segment(&key, &iv, &mut buf);
            let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, expected_hex, "{plaintext:?}");
        }
    }

    /// Cross-check against the `cbc` crate's independent CBC/PKCS7 over many lengths.
    #[test]
    fn matches_the_cbc_crate_for_every_padding_length() {
        use aes::cipher::block_padding::Pkcs7;
        use aes::cipher::{BlockModeEncrypt, KeyIvInit};
        let key = [0x42; 16];
        let iv = [0x24; 16];
        for len in (0..80).chain([1000, 4096, 65_537]) {
            let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let expected = cbc::Encryptor::<aes::Aes128>::new(&key.into(), &iv.into())
                .encrypt_padded_vec::<Pkcs7>(&plaintext);
            let mut ours = plaintext;
            encrypt_segment(&key, &iv, &mut ours);
            assert_eq!(ours, expected, "length {len}");
        }
    }

    const OPENSSL_EMPTY: &str = "0a940bb5416ef045f1c39458c653ea5a";
    const OPENSSL_ONE_BLOCK: &str =
        "4a2188a256c36aba8f423d05d4b1b5a8a788b0875d390c26ab55304047ebc000";
    const OPENSSL_27_BYTES: &str =
        "aca97e2a2395a2c328353e00ed803691f743f40ca230301fe74f32ae2ab3d5ce";
}
