//! Criterion benchmarks for the per-request hot paths of the edge functions: every key request
//! verifies a token, every playlist request verifies a signature and rewrites the playlist.
//! Targets: verify < 5 µs, rewrite < 20 µs (docs/BENCHMARKS.md).
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use gatecast_core::layout::{RequestedObject, StreamName};
use gatecast_core::rewrite::{RewriteOptions, rewrite_playlist};
use gatecast_core::session_token;
use gatecast_core::viewer_token::{self, KeyIds, Reach, SigningKeys, ViewerClaims};
use gatecast_core::wmsauth::{self, SignRequest, Subject, VerifyRequest};

const NOW: u64 = 1_700_000_000;

fn tokens(c: &mut Criterion) {
    let keys = SigningKeys::parse(
        "k2:Y3VycmVudC1zZWNyZXQtMDEyMzQ1Njc4OQ==,k1:cHJldmlvdXMtc2VjcmV0LWFiY2RlZmdoaWo=",
    )
    .expect("bench keys");
    let claims = ViewerClaims {
        reach: Reach::Keys(KeyIds::new(7, 8).expect("7 <= 8")),
        viewer: "viewer-7".into(),
        session: "3f2b9c1e-session".into(),
        stream: "benw".into(),
        expires_at: NOW + 3600,
        ip: Some("203.0.113.5".parse().expect("ip")),
        kid: String::new(),
    };
    let token = keys.issue(&claims).expect("issue");
    let client = claims.ip;
    let key = RequestedObject::Key(StreamName::parse("benw").expect("valid name"), 8);

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("viewer_token", |b| {
        b.iter(|| viewer_token::verify(black_box(&token), &keys, NOW, &key, client))
    });
    group.bench_function("session_token", |b| {
        b.iter(|| {
            session_token::verify(
                black_box(b"SECRET_KEY"),
                black_box("abc"),
                black_box("benw"),
                black_box("rMmR8hX3guMv3deDqoLkC9nm1Y8="),
            )
        })
    });
    let signature = wmsauth::sign(&SignRequest {
        key: "defaultpassword",
        subject: Subject::Ip("203.0.113.5"),
        now: NOW,
        valid_minutes: 20,
        signed_stream: Some("live/benw"),
    })
    .expect("sign");
    let request = VerifyRequest {
        key: "defaultpassword",
        client_ip: "203.0.113.5",
        stream_path: "live/benw",
        now: NOW + 60,
        tolerance_seconds: 30,
        compat: wmsauth::Compat::default(),
    };
    group.bench_function("wmsauth", |b| {
        b.iter(|| wmsauth::verify(black_box(&signature), &request))
    });
    group.finish();
}

/// A live playlist as the ingest worker writes it: 10 segments, a new key every 3.
fn ten_segment_playlist() -> String {
    let mut playlist = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:1000\n",
    );
    for sequence in 1000..1010u64 {
        if sequence % 3 == 1 {
            playlist.push_str(&format!(
                "#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/{sequence}.key\",IV=0x{sequence:032x}\n"
            ));
        }
        playlist.push_str(&format!("#EXTINF:6.000,\n{sequence}.ts\n"));
    }
    playlist
}

fn rewrite(c: &mut Criterion) {
    let playlist = ten_segment_playlist();
    let key_token = "t=v2.k2.AAAAAGVT81gCCHZpZXdlci03A2FiYwRiZW53AA.pnpmOXvMh3hDI2jl-3AKKzaxcrA";
    let segment_token =
        "t=v2.k2.AAAAAGVT81gDCHZpZXdlci03A2FiYwRiZW53AA.oOVEnqY1718OLteEcZfphuqBCtA";
    let mut group = c.benchmark_group("rewrite_10_segments");
    group.throughput(Throughput::Bytes(playlist.len() as u64));
    for (name, segment_query) in [
        ("keys_only", None),
        ("keys_and_segments", Some(segment_token)),
    ] {
        let options = RewriteOptions {
            key_query: Some(key_token),
            segment_query,
        };
        group.bench_function(name, |b| {
            b.iter(|| rewrite_playlist(black_box(&playlist), &options))
        });
    }
    group.finish();
}

criterion_group!(benches, tokens, rewrite);
criterion_main!(benches);
