//! The embedded S3 endpoint speaks real S3: an `object_store` S3 client (SigV4) can write and
//! read through it, and a client with the wrong secret is refused.

use std::sync::Arc;

use gatecast_s3::{S3Config, serve};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn client(endpoint: &str, secret: &str) -> Arc<dyn ObjectStore> {
    let store = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region("us-east-1")
        .with_bucket_name("media")
        .with_access_key_id("test-access")
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
