//! The embedded S3 endpoint speaks real S3: an `object_store` S3 client (SigV4) can write and
//! read through it, and a client with the wrong secret is refused; reader credentials read only
//! their own buckets and write nothing.

use std::sync::Arc;

use gatecast_s3::{S3Config, S3Reader, serve};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn client(endpoint: &str, secret: &str) -> Arc<dyn ObjectStore> {
    client_for(endpoint, "media", "test-access", secret)
}

fn client_for(endpoint: &str, bucket: &str, access: &str, secret: &str) -> Arc<dyn ObjectStore> {
    let store = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id(access)
        .with_secret_access_key(secret)
        .build()
        .expect("valid S3 client config");
    Arc::new(store)
}

#[tokio::test]
async fn objects_round_trip_and_bad_signatures_are_refused() {
    let root = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    let config = S3Config {
        root: root.path().to_path_buf(),
        buckets: vec!["media".into()],
        access_key: "test-access".into(),
        secret_key: "test-secret".into(),
        readers: Vec::new(),
    };
    let server = tokio::spawn(serve(config, listener, stop.clone().cancelled_owned()));

    let good = client(&endpoint, "test-secret");
    let path = Path::from("live/benw/1.ts");
    good.put(&path, PutPayload::from_static(b"segment bytes"))
        .await
        .expect("put");
    let read = good
        .get(&path)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert_eq!(&read[..], b"segment bytes");
    let on_disk = std::fs::read(root.path().join("media/live/benw/1.ts")).expect("file on disk");
    assert_eq!(on_disk, b"segment bytes");

    let forged = client(&endpoint, "wrong-secret");
    assert!(
        forged.get(&path).await.is_err(),
        "a wrongly signed request must be refused"
    );
    assert!(
        forged
            .put(&Path::from("live/benw/2.ts"), PutPayload::from_static(b"x"))
            .await
            .is_err()
    );
    assert!(!root.path().join("media/live/benw/2.ts").exists());

    stop.cancel();
    server.await.expect("join").expect("server ran cleanly");
}

/// Issue 13 item 15: the media credential of the edge cannot read the key bucket (nor write
/// anywhere), the key credential reads keys, and the writer writes both.
#[tokio::test]
async fn readers_read_only_their_own_buckets() {
    let root = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    let reader = |access: &str, bucket: &str| S3Reader {
        access_key: access.into(),
        secret_key: format!("{access}-secret"),
        buckets: vec![bucket.into()],
    };
    let config = S3Config {
        root: root.path().to_path_buf(),
        buckets: vec!["media".into(), "keys".into()],
        access_key: "writer".into(),
        secret_key: "writer-secret".into(),
        readers: vec![
            reader("media-reader", "media"),
            reader("key-reader", "keys"),
        ],
    };
    let server = tokio::spawn(serve(config, listener, stop.clone().cancelled_owned()));

    let key = Path::from("keys/benw/1.key");
    let segment = Path::from("live/benw/1.ts");
    let writer_keys = client_for(&endpoint, "keys", "writer", "writer-secret");
    let writer_media = client_for(&endpoint, "media", "writer", "writer-secret");
    writer_keys
        .put(&key, PutPayload::from_static(b"0123456789abcdef"))
        .await
        .expect("the writer writes keys");
    writer_media
        .put(&segment, PutPayload::from_static(b"segment"))
        .await
        .expect("the writer writes media");

    let media_on_keys = client_for(&endpoint, "keys", "media-reader", "media-reader-secret");
    let refused = media_on_keys
        .get(&key)
        .await
        .expect_err("media reader must not read keys");
    assert!(
        refused.to_string().contains("403") || refused.to_string().contains("AccessDenied"),
        "{refused}"
    );
    let media = client_for(&endpoint, "media", "media-reader", "media-reader-secret");
    let read = media
        .get(&segment)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert_eq!(&read[..], b"segment");
    assert!(
        media
            .put(&segment, PutPayload::from_static(b"x"))
            .await
            .is_err()
    );
    assert!(media.delete(&segment).await.is_err());

    let keys = client_for(&endpoint, "keys", "key-reader", "key-reader-secret");
    let read = keys
        .get(&key)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert_eq!(&read[..], b"0123456789abcdef");
    let key_on_media = client_for(&endpoint, "media", "key-reader", "key-reader-secret");
    assert!(key_on_media.get(&segment).await.is_err());
    assert_eq!(
        std::fs::read(root.path().join("media/live/benw/1.ts")).expect("file"),
        b"segment",
        "a refused write changed nothing"
    );

    stop.cancel();
    server.await.expect("join").expect("server ran cleanly");
}
