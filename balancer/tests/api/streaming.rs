//! Streaming: a 100 MiB upload and a 100 MiB download pass through without
//! the balancer buffering them (the test upstream waits for the first MiB
//! to arrive before the rest is produced).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::Value;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_upload_streams_through() {
    let up = Upstream::spawn("sink").await;
    let extra = "[[route]]\nprefix = \"/upload\"\npool = \"main\"\nmax_body = \"200MiB\"\n";
    let shop = spawn_balancer(&table(extra, &[up.url()]), |_| {}).await;
    const TOTAL: usize = 100 * MIB;
    let state = up.state.clone();
    // The body is produced lazily; after the first MiB the producer waits
    // until the upstream has received that MiB. A balancer that buffered
    // the body before forwarding it would never let that happen.
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    let stream = futures::stream::unfold((0usize, chunk), move |(sent, chunk)| {
        let state = state.clone();
        async move {
            if sent >= TOTAL {
                return None;
            }
            if sent == MIB {
                tokio::time::timeout(Duration::from_secs(20), state.got_first_mib.notified())
                    .await
                    .expect("the upstream got the first MiB before the rest was produced");
            }
            let n = chunk.len().min(TOTAL - sent);
            Some((
                Ok::<_, Infallible>(Frame::data(chunk.slice(..n))),
                (sent + n, chunk),
            ))
        }
    });
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let req = http::Request::post(shop.url("/upload"))
        .body(StreamBody::new(Box::pin(stream)))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(120), client.request(req))
        .await
        .expect("upload finished")
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let echo: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["body_len"], TOTAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_download_streams_through() {
    let up = Upstream::spawn("source").await;
    let shop = spawn_balancer(&table("", &[up.url()]), |_| {}).await;
    const TOTAL: usize = 100 * MIB;
    let mut resp = shop.get(&format!("/download?bytes={TOTAL}")).await;
    assert_eq!(resp.status(), 200);
    let mut got = 0usize;
    let mut opened = false;
    // The upstream sends one MiB and then waits for this client to have
    // it: a balancer that collected the whole response first would stall.
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), resp.chunk())
        .await
        .expect("the first MiB arrived before the upstream produced the rest")
        .unwrap()
    {
        got += chunk.len();
        if !opened && got >= MIB {
            opened = true;
            up.state.gate.notify_one();
        }
    }
    assert_eq!(got, TOTAL);
}
