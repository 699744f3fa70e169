//! The Open Inference Protocol (KServe V2) end to end, spoken by Triton's own client: real api
//! and workers, the real EfficientNet-Lite0 model, a private Redis, and `tritonclient[http]`
//! from `.venv` (tests/v2/tritonclient_check.py) sending what it always sends.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use fast_image_resize::Resizer;
use serde_json::Value;
use test_support::*;

const MODEL: &str = "efficientnet-lite0";

/// The photo preprocessed by the registry's rules (the same code the worker runs), as raw f32.
fn preprocessed(photo: &[u8]) -> Vec<u8> {
    let registry = shared::Registry::load(&repo().join("models/registry.toml")).unwrap();
    let spec = registry.get(MODEL).unwrap();
    let limits = shared::upload::DecodeLimits::default();
    let img = preprocess::decode_for(photo, limits, spec.resize).unwrap();
    let tensor = preprocess::to_tensor(&img, spec, &mut Resizer::new());
    tensor.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tritonclient_works_against_the_service_unchanged() {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/provision.sh",
        python.display()
    );
    let (stack, c) = Stack::builder().workers(2).start_with_client().await;
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("photo.jpg");
    std::fs::write(&photo, grace_hopper()).unwrap();
    let tensor = dir.path().join("photo.f32");
    std::fs::write(&tensor, preprocessed(&grace_hopper())).unwrap();
    let batch = dir.path().join("batch");
    std::fs::create_dir(&batch).unwrap();
    for i in 0..8 {
        std::fs::write(batch.join(format!("{i}.jpg")), unique_photo("v2-batch")).unwrap();
    }
    let url = stack.api_url().trim_start_matches("http://").to_owned();
    let token = c.token.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(repo().join("tests/v2/tritonclient_check.py"))
            .args(["--url", &url, "--token", &token, "--model", MODEL])
            .arg("--photo")
            .arg(&photo)
            .arg("--tensor")
            .arg(&tensor)
            .arg("--batch-dir")
            .arg(&batch)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "tritonclient_check.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stack.logs_tail(40)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{seen:#}");

    assert_eq!(seen["live"], true);
    assert_eq!(seen["ready"], true);
    assert_eq!(seen["model_ready"], true);
    let ext = seen["server"]["extensions"].as_array().unwrap();
    assert!(ext.contains(&"binary_tensor_data".into()) && ext.contains(&"classification".into()));
    assert_eq!(seen["metadata"]["name"], MODEL);
    assert_eq!(
        seen["metadata"]["outputs"][0]["shape"],
        serde_json::json!([-1, 1000])
    );
    assert_eq!(seen["config"]["max_batch_size"], 32);

    // The classification extension, best first: the test photo's top label (as /predict says).
    let classes: Vec<&str> = seen["classification"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(classes.len(), 5, "{classes:?}");
    let top: Vec<&str> = classes[0].splitn(3, ':').collect();
    assert_eq!(top[2], "academic gown", "{classes:?}");
    assert_eq!(
        top[0].split('.').nth(1).map(str::len),
        Some(6),
        "six decimals"
    );
    let scores: Vec<f64> = classes
        .iter()
        .map(|c| c.split(':').next().unwrap().parse().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert_eq!(seen["echoed_id"], "photo-1");

    // The encoded path and the caller's own preprocessing agree.
    assert_eq!(seen["shapes"], serde_json::json!([[1, 1000], [1, 1000]]));
    for sum in seen["sums"].as_array().unwrap() {
        assert!((sum.as_f64().unwrap() - 1.0).abs() < 1e-3, "{sum}");
    }
    let diff = seen["max_abs_diff"].as_f64().unwrap();
    assert!(diff <= 1e-4, "encoded vs preprocessed: {diff}");
    assert!(seen["json_max_abs_diff"].as_f64().unwrap() <= 1e-6);
    assert_eq!(seen["argmax"][0], seen["argmax"][1]);
    assert!(seen["base64_top"][0]
        .as_str()
        .unwrap()
        .ends_with(":academic gown"));

    // A batch of eight rows: eight jobs, each the photo's class.
    let batch_top = seen["batch_top"].as_array().unwrap();
    assert_eq!(batch_top.len(), 8);
    assert!(batch_top
        .iter()
        .all(|t| t.as_str().unwrap().ends_with(":academic gown")));

    // Each invalid request got its error.
    let errors = &seen["errors"];
    for (case, status, says) in [
        ("wrong_input_name", 400, "must be named"),
        ("wrong_datatype", 400, "FP64"),
        ("wrong_shape", 400, "shape"),
        ("wrong_byte_size", 400, "bytes"),
        ("not_an_image", 415, "not an image"),
        ("unknown_model", 404, "unknown model"),
        ("no_token", 401, ""),
        ("unknown_output", 400, "unknown output"),
    ] {
        let e = &errors[case];
        assert_eq!(e["status"], status.to_string(), "{case}: {e}");
        assert!(e["message"].as_str().unwrap().contains(says), "{case}: {e}");
    }

    // Every row was a job of the caller's, in their history like any upload: 1 + 1 + 1 + 1 + 1
    // + 8 classified (the repeats of the photo answered from its cached scores).
    let hist: api_types::JobPage = c.get_ok("/predictions?per_page=100").await;
    assert!(hist.total >= 13, "{}", hist.total);

    // The API's request metrics count the V2 routes by their templates.
    let metrics = reqwest::get(format!("{}/metrics", stack.api_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for route in [
        "/v2/models/{model}/infer",
        "/v2/models/{model}/ready",
        "/v2/health/ready",
    ] {
        assert!(
            metrics.contains(&format!("route=\"{route}\",status=\"200\"")),
            "no 200 counted for {route}"
        );
    }
}
