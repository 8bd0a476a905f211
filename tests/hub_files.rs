//! Uploads and downloads against the scripted responder, which stores uploads with kojihub's
//! rawUpload/uploadFile rules.

mod hub_support;

use std::sync::Arc;
use std::time::Duration;

use hub_support::{Responder, nil, session};
use koji_adjutant::hub::client::HubClient;
use koji_adjutant::hub::download::DownloadError;
use koji_adjutant::hub::options::HubOptions;
use koji_adjutant::hub::session::{HubConnection, Session};
use koji_adjutant::hub::upload::{IncrementalUpload, UploadError, UploadTarget};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn options(responder: &Responder) -> HubOptions {
    HubOptions {
        server: responder.url(),
        topurl: Some(format!("http://{}/kojifiles", responder.addr)),
        user: Some("builder1.local".to_owned()),
        password: Some("pw".to_owned()),
        max_retries: 3,
        retry_interval: Duration::from_secs(60),
        ..HubOptions::default()
    }
}

async fn client_with(responder: &Responder, options: HubOptions) -> HubClient {
    responder.push([session(900001, "key", true), nil()]);
    let hub = HubConnection::new(options, CancellationToken::new()).unwrap();
    let session = Session::new(Arc::clone(&hub));
    session.login().await.unwrap();
    HubClient::from_session(session)
}

fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2654435761).max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn upload_offsets(responder: &Responder) -> Vec<(u64, usize, bool)> {
    responder
        .requests()
        .iter()
        .filter(|r| r.method() == "rawUpload")
        .map(|r| {
            let query = r.path_and_query.split_once('?').unwrap().1;
            let params: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect();
            (
                params["offset"].parse().unwrap(),
                r.body.len(),
                params.contains_key("overwrite"),
            )
        })
        .collect()
}

#[tokio::test]
async fn whole_file_uploads_of_edge_sizes() {
    const MIB: usize = 1024 * 1024;
    for (size, expected_chunks) in [
        (0, 1),
        (1, 1),
        (MIB, 1),
        (MIB + 1, 2),
        (3 * MIB, 3),
        (3_153_291, 4),
    ] {
        let responder = Responder::start(vec![]).await;
        let client = client_with(&responder, options(&responder)).await;
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("bigdata-1.0-1.noarch.rpm");
        let data = pseudo_random(size, size as u32);
        std::fs::write(&local, &data).unwrap();
        let target = UploadTarget::for_task(12, &[], "bigdata-1.0-1.noarch.rpm").unwrap();
        let summary = client.upload_file(&local, &target).await.unwrap();
        assert_eq!(summary.bytes, size as u64);
        assert_eq!(summary.chunks, expected_chunks, "size {size}");
        assert!(!summary.verified);
        let stored =
            responder.files.lock().unwrap()["tasks/12/12/bigdata-1.0-1.noarch.rpm"].clone();
        assert!(stored == data, "hub copy differs for size {size}");
        let offsets = upload_offsets(&responder);
        let expected: Vec<(u64, usize, bool)> = (0..expected_chunks as usize)
            .map(|i| ((i * MIB) as u64, (size - i * MIB).min(MIB), true))
            .collect();
        assert_eq!(offsets, expected, "size {size}");
        let methods = responder.methods();
        assert_eq!(methods.last().unwrap(), "checkUpload");
        assert!(
            !responder
                .requests()
                .last()
                .unwrap()
                .body_text()
                .contains("verify")
        );
    }
}

#[tokio::test]
async fn upload_headers_and_query_match_kojid() {
    let responder = Responder::start(vec![]).await;
    let client = client_with(&responder, options(&responder)).await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("a.log");
    std::fs::write(&local, b"hello").unwrap();
    client
        .upload_file(
            &local,
            &UploadTarget::for_task(14, &[], "name with space.log").unwrap(),
        )
        .await
        .unwrap();
    let upload = &responder.requests()[2];
    assert_eq!(
        upload.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        upload.path_and_query,
        "/kojihub?filename=name+with+space.log&filepath=tasks%2F14%2F14&fileverify=adler32&offset=0&overwrite=1"
    );
    assert_eq!(upload.callnum(), Some(1));
    assert_eq!(
        responder.requests()[3].callnum(),
        Some(2),
        "checkUpload takes the next callnum"
    );
}

#[tokio::test]
async fn forced_chunk_mismatch_fails_the_upload() {
    let responder = Responder::start(vec![]).await;
    let client = client_with(&responder, options(&responder)).await;
    *responder.corrupt_uploads.lock().unwrap() = 1;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("x.rpm");
    std::fs::write(&local, pseudo_random(2 * 1024 * 1024, 3)).unwrap();
    let error = client
        .upload_file(&local, &UploadTarget::for_task(5, &[], "x.rpm").unwrap())
        .await
        .unwrap_err();
    match error {
        UploadError::ChunkMismatch { offset, got, .. } => {
            assert_eq!(offset, 0);
            assert!(got.contains("deadbeef"));
        }
        other => panic!("expected a chunk mismatch, got {other}"),
    }
    assert!(!responder.methods().contains(&"checkUpload".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn a_retried_block_makes_check_upload_verify() {
    let responder = Responder::start(vec![]).await;
    let client = client_with(&responder, options(&responder)).await;
    responder.upload_failures.lock().unwrap().push_back(502);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("x.rpm");
    let data = pseudo_random(1024 * 1024 + 10, 4);
    std::fs::write(&local, &data).unwrap();
    let summary = client
        .upload_file(&local, &UploadTarget::for_task(5, &[], "x.rpm").unwrap())
        .await
        .unwrap();
    assert!(summary.verified);
    let last = responder.requests().last().unwrap().body_text();
    assert!(
        last.contains("<name>verify</name>\n<value><string>adler32</string>"),
        "{last}"
    );
    assert!(responder.files.lock().unwrap()["tasks/5/5/x.rpm"] == data);
}

#[tokio::test]
async fn legacy_upload_when_fast_upload_is_off_and_the_hub_lacks_check_upload() {
    let responder = Responder::start(vec![]).await;
    let client = client_with(
        &responder,
        HubOptions {
            use_fast_upload: false,
            ..options(&responder)
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("x.log");
    let data = pseudo_random(1024 * 1024 + 5, 9);
    std::fs::write(&local, &data).unwrap();
    let target = UploadTarget::for_task(7, &[], "x.log").unwrap();

    // A modern hub knows checkUpload: koji then switches to fast upload anyway.
    client.upload_file(&local, &target).await.unwrap();
    assert!(responder.methods().contains(&"rawUpload".to_owned()));

    // An old hub faults on checkUpload: base64 uploadFile chunks, then the offset -1 call.
    let old = Responder::start(vec![]).await;
    let client = client_with(
        &old,
        HubOptions {
            use_fast_upload: false,
            ..options(&old)
        },
    )
    .await;
    *old.without_check_upload.lock().unwrap() = true;
    let summary = client.upload_file(&local, &target).await.unwrap();
    assert_eq!(summary.bytes, data.len() as u64);
    assert_eq!(
        old.methods()[2..],
        ["checkUpload", "uploadFile", "uploadFile", "uploadFile"]
    );
    assert!(old.files.lock().unwrap()["tasks/7/7/x.log"] == data);
    let last = old.requests().last().unwrap().body_text();
    assert!(last.contains("<int>-1</int>"), "final call at offset -1");
}

#[tokio::test]
async fn incremental_upload_of_a_growing_truncated_and_replaced_file() {
    let responder = Responder::start(vec![]).await;
    let client = client_with(&responder, options(&responder)).await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("build.log");
    let target = UploadTarget::for_task(15, &[], "build.log").unwrap();
    let mut uploader = IncrementalUpload::new(&local, target);
    let stored = || {
        responder
            .files
            .lock()
            .unwrap()
            .get("tasks/15/15/build.log")
            .cloned()
    };

    assert_eq!(
        uploader.sync(&client).await.unwrap(),
        0,
        "no file yet: nothing to do"
    );
    assert!(stored().is_none());

    let first = pseudo_random(100_000, 1);
    std::fs::write(&local, &first).unwrap();
    assert_eq!(uploader.sync(&client).await.unwrap(), 100_000);
    assert_eq!(
        upload_offsets(&responder),
        [(0, 65536, true), (65536, 34464, true)]
    );
    assert_eq!(
        uploader.sync(&client).await.unwrap(),
        0,
        "nothing new, nothing sent"
    );

    let more = pseudo_random(2_517, 2);
    let mut grown = first.clone();
    grown.extend_from_slice(&more);
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&local)
            .unwrap();
        file.write_all(&more).unwrap();
    }
    assert_eq!(uploader.sync(&client).await.unwrap(), 2_517);
    assert_eq!(
        upload_offsets(&responder)[2],
        (100_000, 2_517, true),
        "only the new bytes, at their offset"
    );
    assert!(stored().unwrap() == grown);

    // Truncated (log rotated in place): start again from 0; overwrite truncates the hub copy.
    let short = pseudo_random(1_000, 3);
    std::fs::write(&local, &short).unwrap();
    assert_eq!(uploader.sync(&client).await.unwrap(), 1_000);
    assert_eq!(
        *upload_offsets(&responder).last().unwrap(),
        (0, 1_000, true)
    );
    assert!(stored().unwrap() == short);

    // Replaced by a new file (new inode) of larger size: also from 0.
    let replacement = pseudo_random(5_000, 4);
    let fresh = dir.path().join("build.log.new");
    std::fs::write(&fresh, &replacement).unwrap();
    std::fs::rename(&fresh, &local).unwrap();
    assert_eq!(uploader.sync(&client).await.unwrap(), 5_000);
    assert_eq!(
        *upload_offsets(&responder).last().unwrap(),
        (0, 5_000, true)
    );
    assert!(stored().unwrap() == replacement);
    assert_eq!(uploader.position(), 5_000);
}

#[tokio::test(start_paused = true)]
async fn incremental_chunk_mismatch_is_retried_seven_times_ten_seconds_apart_then_skipped() {
    let responder = Responder::start(vec![]).await;
    let client = client_with(&responder, options(&responder)).await;
    *responder.corrupt_uploads.lock().unwrap() = 7;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("root.log");
    std::fs::write(&local, pseudo_random(70_000, 5)).unwrap();
    let mut uploader =
        IncrementalUpload::new(&local, UploadTarget::for_task(15, &[], "root.log").unwrap());
    let start = Instant::now();
    assert_eq!(uploader.sync(&client).await.unwrap(), 70_000);
    let offsets = upload_offsets(&responder);
    assert_eq!(
        offsets.len(),
        8,
        "7 tries of the first chunk, then the next chunk"
    );
    assert!(offsets[..7].iter().all(|(offset, _, _)| *offset == 0));
    assert_eq!(offsets[7].0, 65536);
    assert_eq!(start.elapsed(), Duration::from_secs(60), "six 10 s waits");
}

#[tokio::test]
async fn downloads_stream_retry_and_check() {
    let responder = Responder::start(vec![]).await;
    let client = client_with(&responder, options(&responder)).await;
    let hub = client.connection();
    let dir = tempfile::tempdir().unwrap();

    let mut rpm = pseudo_random(5000, 6);
    rpm[..4].copy_from_slice(&[0xed, 0xab, 0xee, 0xdb]);
    rpm[96..99].copy_from_slice(&[0x8e, 0xad, 0xe8]);
    responder.downloads.lock().unwrap().insert(
        "/kojifiles/work/tasks/4/4/hello-1.0-1.src.rpm".to_owned(),
        rpm.clone(),
    );
    responder
        .get_failures
        .lock()
        .unwrap()
        .extend([503, 502, 429]);
    // 503 is not retried by kojid.
    let destination = dir.path().join("local/work/hello-1.0-1.src.rpm");
    let error = hub
        .download("work/tasks/4/4/hello-1.0-1.src.rpm", &destination)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DownloadError::Status { status: 503, .. }),
        "{error}"
    );
    // 502 and 429 are, immediately and then after 0.6 s.
    let written = hub
        .download("work/tasks/4/4/hello-1.0-1.src.rpm", &destination)
        .await
        .unwrap();
    assert_eq!(written, 5000);
    assert!(std::fs::read(&destination).unwrap() == rpm);

    *responder.truncate_next_get.lock().unwrap() = true;
    let truncated = dir.path().join("t.rpm");
    let error = hub
        .download("work/tasks/4/4/hello-1.0-1.src.rpm", &truncated)
        .await;
    // A short body is either caught by hyper or by the Content-Length check, and retried;
    // the next GET succeeds.
    assert_eq!(error.unwrap(), 5000);

    responder.downloads.lock().unwrap().insert(
        "/kojifiles/work/fake.rpm".to_owned(),
        b"<html>oops</html>".to_vec(),
    );
    let error = hub
        .download("work/fake.rpm", &dir.path().join("fake.rpm"))
        .await
        .unwrap_err();
    assert!(matches!(error, DownloadError::NotAnRpm { .. }), "{error}");
    assert!(
        !dir.path().join("fake.rpm").exists(),
        "a bad download leaves nothing behind"
    );

    let error = hub
        .download("../../etc/passwd", &dir.path().join("p"))
        .await
        .unwrap_err();
    assert!(matches!(error, DownloadError::BadPath { .. }));
}

#[tokio::test]
async fn hostile_names_never_reach_the_hub() {
    let responder = Responder::start(vec![]).await;
    let _client = client_with(&responder, options(&responder)).await;
    for name in [
        "../../../etc/cron.d/x",
        "/etc/passwd",
        ".bashrc",
        "a/b",
        "",
        "nul\0byte",
    ] {
        assert!(UploadTarget::for_task(15, &[], name).is_err(), "{name:?}");
    }
    assert_eq!(responder.requests().len(), 2, "only the login happened");
}
