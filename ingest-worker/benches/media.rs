//! Media pipeline benchmarks (results and commands in docs/BENCHMARKS.md):
//! - `aes128_cbc_encrypt/1MiB`: the segment encryptor alone, to compare with
//!   `openssl speed -evp aes-128-cbc`.
//! - `pipeline/av_6s.flv`: FLV tag bodies in → encrypted segments out, one core, MB/s of input.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/media_support/mod.rs"]
mod media_support;

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use aes::cipher::KeyIvInit;
use aes::cipher::block_padding::Pkcs7;
use cbc::cipher::BlockModeEncrypt;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gatecast_ingest::media::MediaConfig;
use gatecast_ingest::media::crypto::encrypt_segment;

fn encryptor(c: &mut Criterion) {
    const SEGMENT_LEN: usize = 1 << 20;
    let mut group = c.benchmark_group("aes128_cbc_encrypt");
    group.throughput(Throughput::Bytes(SEGMENT_LEN as u64));
    let key = [0x42; 16];
    let iv = [0x24; 16];
    let plaintext: Vec<u8> = (0..SEGMENT_LEN).map(|i| i as u8).collect();
    // Room for the padding, as the segmenter's growing buffer normally has.
    let fresh_buffer = || {
        let mut buffer = Vec::with_capacity(SEGMENT_LEN + 16);
        buffer.extend_from_slice(&plaintext);
        buffer
    };
    group.bench_function("1MiB", |b| {
        b.iter_batched_ref(
            fresh_buffer,
            |buffer| encrypt_segment(black_box(&key), black_box(&iv), buffer),
            BatchSize::LargeInput,
        )
    });
    // The `cbc` crate on the same cipher, for comparison (see the crypto module docs).
    group.bench_function("1MiB_cbc_crate", |b| {
        b.iter_batched_ref(
            || {
                let mut buffer = fresh_buffer();
                buffer.resize(SEGMENT_LEN + 16, 0);
                buffer
            },
            |buffer| {
                cbc::Encryptor::<aes::Aes128>::new(black_box(&key).into(), black_box(&iv).into())
                    .encrypt_padded::<Pkcs7>(buffer, SEGMENT_LEN)
                    .map(<[u8]>::len)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn pipeline(c: &mut Criterion) {
    let tags = media_support::fixture_tags("av_6s.flv");
    let input_bytes: usize = tags.iter().map(|t| t.body.len()).sum();
    let config = MediaConfig {
        segment_duration: Duration::from_secs(2),
        segments_per_key: 2,
    };
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Bytes(input_bytes as u64));
    group.bench_function("av_6s.flv", |b| {
        b.iter(|| {
            let segments =
                media_support::run_pipeline(&tags, config.clone(), 1, UNIX_EPOCH, 0).unwrap();
            black_box(segments)
        })
    });
    group.finish();
}

criterion_group!(benches, encryptor, pipeline);
criterion_main!(benches);
