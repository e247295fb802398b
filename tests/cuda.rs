//! The CUDA path through the real binary. Everywhere: `--device cuda` without a CUDA build of ONNX Runtime refuses
//! to start and says why, and `auto` falls back to CPU and says so. With a CUDA build in `.onnxruntime-gpu/lib`
//! (or `CRMSCORE_TEST_GPU_ORT`) but no GPU: the start-up error names the missing driver. On a GPU: the churn,
//! recommendation and sentiment answers on CUDA equal the CPU's within 1e-4. Each part skips with a message where
//! its hardware or library is absent.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::{Value, json};

/// The CUDA build of ONNX Runtime to test with, if there is one here.
fn gpu_runtime() -> Option<PathBuf> {
    let path = std::env::var_os("CRMSCORE_TEST_GPU_ORT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".onnxruntime-gpu/lib/libonnxruntime.so"));
    let cuda = path.parent()?.join("libonnxruntime_providers_cuda.so");
    if path.is_file() && cuda.is_file() {
        Some(path)
    } else {
        println!(
            "SKIPPED: no CUDA build of ONNX Runtime at {} (scripts/setup-onnxruntime.sh --gpu, copied there, or \
             CRMSCORE_TEST_GPU_ORT)",
            path.display()
        );
        None
    }
}

/// Whether this machine has a GPU the driver can see.
fn gpu_present() -> bool {
    std::process::Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("GPU"))
}

#[test]
fn cuda_without_a_cuda_build_refuses_to_start_and_says_why() {
    // The default library (.onnxruntime/lib, what CI has) is the CPU build.
    let served = Served::start_on("cuda", &[], "info");
    let (status, lines) = served.exit();
    assert!(!status.success(), "{lines:#?}");
    let text = lines.join("\n");
    assert!(
        text.contains("--device cuda was asked for but CUDA cannot be used")
            && text.contains("no CUDA provider")
            && text.contains("setup-onnxruntime.sh --gpu"),
        "{text}"
    );
}

#[test]
fn auto_falls_back_to_cpu_and_reports_the_provider() {
    let served = Served::start_on("auto", &[], "info");
    let base = served.base_url();
    wait_ready_at(&base);
    let meta: Value = agent()
        .get(format!("{base}/v2/models/churn"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let metrics = agent()
        .get(format!("{base}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let lines = served.stop();
    // On a CUDA build with a GPU, auto picks CUDA; that case is the GPU test's.
    if meta["parameters"]["execution_provider"] == "CUDAExecutionProvider" {
        println!("SKIPPED: this machine runs auto on CUDA");
        return;
    }
    assert_eq!(
        meta["parameters"]["execution_provider"], "CPUExecutionProvider",
        "{meta}"
    );
    assert!(
        metrics.contains(r#"crmscore_model_info{model="churn",provider="CPUExecutionProvider""#),
        "{metrics}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("CUDA not used; running on CPU")),
        "the fallback is logged: {lines:#?}"
    );
}

#[test]
fn cuda_build_without_a_gpu_names_what_is_missing() {
    let Some(runtime) = gpu_runtime() else { return };
    if gpu_present() {
        println!("SKIPPED: this machine has a GPU");
        return;
    }
    let lib = runtime.to_string_lossy().to_string();
    let served = Served::start_on("cuda", &["--onnxruntime-lib", &lib], "info");
    let (status, lines) = served.exit();
    assert!(!status.success(), "{lines:#?}");
    let text = lines.join("\n");
    assert!(
        text.contains("libcuda.so.1") || text.contains("no GPU is visible"),
        "the error names the driver or the GPU: {text}"
    );
}

/// Scores the same requests on one server; the answers as JSON.
fn answers(base: &str) -> Vec<Value> {
    let (ids, _) = sample_features("churn", 64);
    let requests = [
        ("/v1/churn/score", json!({"customer_ids": ids})),
        (
            "/v1/recommendations",
            json!({"customer_ids": &ids[..16], "k": 10}),
        ),
        (
            "/v1/sentiment",
            json!({"texts": ["The engineer was brilliant, fixed in minutes", "third wrong bill this month",
                              "Can I change my delivery address?", "ok"]}),
        ),
    ];
    requests
        .iter()
        .map(|(path, body)| {
            agent()
                .post(format!("{base}{path}"))
                .send_json(body)
                .unwrap()
                .body_mut()
                .read_json()
                .unwrap()
        })
        .collect()
}

/// Every number in `a` within `tol` of the one at the same place in `b`; everything else equal.
fn assert_close(a: &Value, b: &Value, tol: f64, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= tol, "{at}: {x} vs {y}");
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                assert_close(x, y, tol, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                // Ids of the reply itself differ between two servers.
                if k == "decision_id" {
                    continue;
                }
                assert_close(v, &y[k], tol, &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn cuda_answers_equal_cpu_answers() {
    let Some(runtime) = gpu_runtime() else { return };
    if !gpu_present() {
        println!("SKIPPED: no GPU on this machine (nvidia-smi -L lists none)");
        return;
    }
    let lib = runtime.to_string_lossy().to_string();
    let cpu = Served::start_on("cpu", &["--onnxruntime-lib", &lib], "info");
    let cuda = Served::start_on("cuda", &["--onnxruntime-lib", &lib], "info");
    let (cpu_base, cuda_base) = (cpu.base_url(), cuda.base_url());
    wait_ready_at(&cpu_base);
    wait_ready_at(&cuda_base);
    let meta: Value = agent()
        .get(format!("{cuda_base}/v2/models/sentiment"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(
        meta["parameters"]["execution_provider"],
        "CUDAExecutionProvider"
    );
    let (on_cpu, on_cuda) = (answers(&cpu_base), answers(&cuda_base));
    for (i, (a, b)) in on_cpu.iter().zip(&on_cuda).enumerate() {
        assert_close(a, b, 1e-4, &format!("request {i}"));
    }
    cpu.stop();
    cuda.stop();
}
