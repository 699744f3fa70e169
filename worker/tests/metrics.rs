//! The worker's Prometheus endpoint over real HTTP: one real classification (EfficientNet-Lite0
//! in ONNX Runtime) lands in the decode, preprocess, inference and batch-size histograms of its
//! model, a queue wait lands in its bucket, and every histogram has explicit buckets and HELP.

mod common;

use fast_image_resize::Resizer;
use tokio_util::sync::CancellationToken;
use worker::model::{Classifier as _, Upload};

/// The value of the sample `name{labels}` in the exposition (labels in any order).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        if n != name {
            return None;
        }
        let ok = labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        ok.then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_per_model_stage_histograms() {
    const MODEL: &str = "efficientnet-lite0";
    let stop = CancellationToken::new();
    let (addr, server) = worker::metrics::serve("127.0.0.1:0".parse().expect("addr"), stop.clone())
        .await
        .expect("binds");

    tokio::task::spawn_blocking(move || {
        let models = common::load(MODEL, &[]);
        let bytes = common::grace_hopper();
        models[MODEL]
            .classify(
                Upload::image(&bytes, 3, Default::default()),
                &mut Resizer::new(),
            )
            .expect("classifies");
    })
    .await
    .expect("no panic");
    // A job enqueued 1.5 s ago starts now.
    worker::metrics::queue_wait(MODEL, shared::time_util::now_ms() - 1500);

    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET /metrics")
        .error_for_status()
        .expect("200")
        .text()
        .await
        .expect("body");
    let model = [("model", MODEL)];
    for name in worker::metrics::NAMES {
        assert!(
            text.contains(&format!("# TYPE {name} histogram")),
            "{name}:\n{text}"
        );
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        assert_eq!(
            sample(&text, &format!("{name}_count"), &model),
            Some(1.0),
            "{name}:\n{text}"
        );
    }
    for name in [
        worker::metrics::DECODE,
        worker::metrics::PREPROCESS,
        worker::metrics::INFERENCE,
    ] {
        let sum = sample(&text, &format!("{name}_sum"), &model).expect("sum");
        assert!(sum > 0.0 && sum < 10.0, "{name}: {sum}");
    }
    let wait = worker::metrics::QUEUE_WAIT;
    let bucket = format!("{wait}_bucket");
    assert_eq!(
        sample(&text, &bucket, &[("model", MODEL), ("le", "1")]),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, &bucket, &[("model", MODEL), ("le", "2.5")]),
        Some(1.0)
    );
    let batch = format!("{}_bucket", worker::metrics::BATCH_SIZE);
    assert_eq!(
        sample(&text, &batch, &[("model", MODEL), ("le", "1")]),
        Some(1.0)
    );

    stop.cancel();
    server.await.expect("the endpoint stops on shutdown");
}
