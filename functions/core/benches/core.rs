//! Criterion benchmarks for the per-request hot paths of the edge functions.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use gatecast_core::session_token;

fn session_token_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("session_token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify", |b| {
        b.iter(|| {
            session_token::verify(
                black_box(b"SECRET_KEY"),
                black_box("abc"),
                black_box("benw"),
                black_box("rMmR8hX3guMv3deDqoLkC9nm1Y8="),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, session_token_verify);
criterion_main!(benches);
