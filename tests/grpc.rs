//! The KServe v2 gRPC front door (`--grpc-bind`), driven by a tonic client over a real socket: metadata and
//! readiness, typed and raw tensors giving the same answers as HTTP/JSON, malformed calls getting the right status
//! code and a clear message, the message size limit, the `grpc-timeout` deadline, metrics, and a clean stop.

mod common;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use crmscore::RunningServer;
use crmscore::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use crmscore::grpc::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use crmscore::grpc::proto::*;
use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic::{Code, Status};

type Client = GrpcInferenceServiceClient<Channel>;

/// Rows in the churn model's feature order (21 features).
const WIDTH: usize = 21;

fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| start_ready(with_grpc(config(&sample_snapshot()))))
}

fn with_grpc(config: crmscore::Config) -> crmscore::Config {
    crmscore::Config {
        grpc_bind: Some(([127, 0, 0, 1], 0).into()),
        ..config
    }
}

/// Runs one async client session against `server` on a fresh single-thread runtime.
fn with_client<T>(server: &RunningServer, session: impl AsyncFnOnce(Client) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = server
        .grpc
        .expect("the server was started with --grpc-bind");
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connects to the gRPC port");
        session(GrpcInferenceServiceClient::new(channel)).await
    })
}

fn rows(n: usize) -> Vec<f32> {
    (0..n * WIDTH).map(|i| (i % 7) as f32 * 1.5 + 1.0).collect()
}

fn tensor(
    name: &str,
    datatype: &str,
    shape: Vec<i64>,
    contents: Option<InferTensorContents>,
) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape,
        parameters: HashMap::new(),
        contents,
    }
}

fn request(model: &str, inputs: Vec<InferInputTensor>, raw: Vec<Vec<u8>>) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.into(),
        inputs,
        raw_input_contents: raw,
        ..Default::default()
    }
}

fn fp32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Output `i` of a reply as f32 values (from `raw_output_contents`, as Triton sends).
fn output(reply: &ModelInferResponse, i: usize) -> Vec<f32> {
    assert_eq!(reply.outputs[i].datatype, "FP32");
    reply.raw_output_contents[i]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The first output of an HTTP/JSON v2 infer call, for comparison.
fn http_output(model: &str, inputs: Value) -> Vec<f32> {
    let (status, body) = post(
        server(),
        &format!("/v2/models/{model}/infer"),
        &json!({ "inputs": inputs }),
    );
    assert_eq!(status, 200, "{body}");
    body["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-6, "{got:?} vs {want:?}");
    }
}

#[test]
fn health_metadata_and_config_answer_like_triton() {
    with_client(server(), async |mut c| {
        assert!(
            c.server_live(ServerLiveRequest {})
                .await
                .unwrap()
                .into_inner()
                .live
        );
        assert!(
            c.server_ready(ServerReadyRequest {})
                .await
                .unwrap()
                .into_inner()
                .ready
        );
        let meta = c
            .server_metadata(ServerMetadataRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(meta.name, "crmscore");
        for (name, version, ready) in [
            ("churn", "", true),
            ("churn", "1", true),
            ("churn", "2", false),
            ("nope", "", false),
        ] {
            let asked = ModelReadyRequest {
                name: name.into(),
                version: version.into(),
            };
            let got = c.model_ready(asked).await.unwrap().into_inner().ready;
            assert_eq!(got, ready, "{name} version {version:?}");
        }
        let asked = ModelMetadataRequest {
            name: "churn".into(),
            version: "1".into(),
        };
        let meta = c.model_metadata(asked).await.unwrap().into_inner();
        assert_eq!(
            (meta.name.as_str(), meta.versions.as_slice()),
            ("churn", &["1".to_string()][..])
        );
        assert_eq!(meta.inputs[0].name, "features");
        assert_eq!(
            (
                meta.inputs[0].datatype.as_str(),
                meta.inputs[0].shape.as_slice()
            ),
            ("FP32", &[-1, 21][..])
        );
        let outputs: Vec<_> = meta.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(outputs, ["probabilities", "contributions"]);
        let asked = ModelMetadataRequest {
            name: "sentiment".into(),
            version: String::new(),
        };
        let meta = c.model_metadata(asked).await.unwrap().into_inner();
        assert_eq!(
            (
                meta.inputs[0].name.as_str(),
                meta.inputs[0].datatype.as_str()
            ),
            ("text", "BYTES")
        );
        let asked = ModelConfigRequest {
            name: "churn".into(),
            version: String::new(),
        };
        let config = c
            .model_config(asked)
            .await
            .unwrap()
            .into_inner()
            .config
            .unwrap();
        assert_eq!(
            (config.name.as_str(), config.platform.as_str()),
            ("churn", "onnxruntime_onnx")
        );
        assert_eq!(config.max_batch_size, 256);
        assert_eq!(
            config.input[0].dims,
            [21],
            "batch dimension left out, as in Triton"
        );
        assert_eq!(config.input[0].data_type, DataType::TypeFp32 as i32);
        assert_eq!(config.output[0].dims, [2]);
    });
}

#[test]
fn typed_and_raw_tensors_give_the_http_answer() {
    let values = rows(3);
    let http = http_output(
        "churn",
        json!([{ "name": "features", "shape": [3, WIDTH], "datatype": "FP32", "data": values }]),
    );
    with_client(server(), async |mut c| {
        let typed = InferTensorContents {
            fp32_contents: values.clone(),
            ..Default::default()
        };
        let mut call = request(
            "churn",
            vec![tensor("features", "FP32", vec![3, 21], Some(typed))],
            vec![],
        );
        call.id = "req-7".into();
        let reply = c.model_infer(call).await.unwrap().into_inner();
        assert_eq!(
            (
                reply.model_name.as_str(),
                reply.model_version.as_str(),
                reply.id.as_str()
            ),
            ("churn", "1", "req-7")
        );
        assert_eq!(reply.outputs[0].name, "probabilities");
        assert_eq!(reply.outputs[0].shape, [3, 2]);
        assert_close(&output(&reply, 0), &http);

        let raw = request(
            "churn",
            vec![tensor("features", "FP32", vec![3, 21], None)],
            vec![fp32_bytes(&values)],
        );
        assert_close(
            &output(&c.model_infer(raw).await.unwrap().into_inner(), 0),
            &http,
        );

        let fp64 = InferTensorContents {
            fp64_contents: values.iter().map(|&v| f64::from(v)).collect(),
            ..Default::default()
        };
        let call = request(
            "churn",
            vec![tensor("features", "FP64", vec![3, 21], Some(fp64))],
            vec![],
        );
        assert_close(
            &output(&c.model_infer(call).await.unwrap().into_inner(), 0),
            &http,
        );

        // A NaN is a missing value (this model's policy: passed on as NaN); contributions only when asked by name.
        let mut missing = values[..WIDTH].to_vec();
        missing[9] = f32::NAN;
        let mut call = request(
            "churn",
            vec![tensor("features", "FP32", vec![1, 21], None)],
            vec![fp32_bytes(&missing)],
        );
        call.outputs = ["contributions", "probabilities"]
            .map(|name| InferRequestedOutputTensor {
                name: name.into(),
                parameters: HashMap::new(),
            })
            .into();
        let reply = c.model_infer(call).await.unwrap().into_inner();
        let names: Vec<_> = reply.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["probabilities", "contributions"]);
        let p = output(&reply, 0);
        assert!(
            (p[0] + p[1] - 1.0).abs() < 1e-5 && p.iter().all(|v| v.is_finite()),
            "{p:?}"
        );
        assert_eq!(reply.outputs[1].shape, [1, 22]);
    });
}

#[test]
fn texts_go_in_as_bytes_typed_or_raw() {
    let texts = ["the service was great", "my bill is wrong again, ça suffit"];
    let http = http_output(
        "sentiment",
        json!([{ "name": "text", "shape": [2], "datatype": "BYTES", "data": texts }]),
    );
    with_client(server(), async |mut c| {
        let typed = InferTensorContents {
            bytes_contents: texts.map(|t| t.as_bytes().to_vec()).into(),
            ..Default::default()
        };
        let call = request(
            "sentiment",
            vec![tensor("text", "BYTES", vec![2], Some(typed))],
            vec![],
        );
        let reply = c.model_infer(call).await.unwrap().into_inner();
        assert_eq!(
            (
                reply.outputs[0].name.as_str(),
                reply.outputs[0].shape.as_slice()
            ),
            ("logits", &[2, 3][..])
        );
        assert_close(&output(&reply, 0), &http);
        let mut raw = Vec::new();
        for t in texts {
            raw.extend_from_slice(&(t.len() as u32).to_le_bytes());
            raw.extend_from_slice(t.as_bytes());
        }
        let call = request(
            "sentiment",
            vec![tensor("text", "BYTES", vec![2], None)],
            vec![raw],
        );
        assert_close(
            &output(&c.model_infer(call).await.unwrap().into_inner(), 0),
            &http,
        );
    });
}

fn refused(result: Result<tonic::Response<ModelInferResponse>, Status>) -> Status {
    result.expect_err("the call must be refused")
}

#[test]
fn malformed_calls_get_the_right_code_and_a_clear_message() {
    with_client(server(), async |mut c| {
        let raw = |name: &str, shape: Vec<i64>, bytes: usize| {
            request(
                "churn",
                vec![tensor(name, "FP32", shape, None)],
                vec![vec![0; bytes]],
            )
        };
        let cases = [
            (
                raw("feats", vec![1, 21], 84),
                Code::InvalidArgument,
                "unknown input 'feats'; this model's input is 'features'",
            ),
            (
                raw("features", vec![1, 21], 80),
                Code::InvalidArgument,
                "needs 84 bytes",
            ),
            (
                raw("features", vec![1, 20], 80),
                Code::InvalidArgument,
                "takes 21 features",
            ),
            (
                request(
                    "churn",
                    vec![tensor("features", "FP32", vec![1, 21], None)],
                    vec![],
                ),
                Code::InvalidArgument,
                "no data",
            ),
            (
                request("nope", vec![], vec![]),
                Code::NotFound,
                "model 'nope' is not served here",
            ),
            (
                ModelInferRequest {
                    model_version: "9".into(),
                    ..raw("features", vec![1, 21], 84)
                },
                Code::NotFound,
                "no version '9'",
            ),
        ];
        for (call, code, message) in cases {
            let status = refused(c.model_infer(call).await);
            assert_eq!(status.code(), code, "{status:?}");
            assert!(
                status.message().contains(message),
                "{message:?} not in {:?}",
                status.message()
            );
        }
        let mut call = raw("features", vec![1, 21], 84);
        call.outputs = vec![InferRequestedOutputTensor {
            name: "logits".into(),
            parameters: HashMap::new(),
        }];
        let status = refused(c.model_infer(call).await);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("output 'logits' is not served"),
            "{status:?}"
        );
        assert_eq!(status.metadata().get("error-code").unwrap(), "bad_request");

        let status = c
            .model_statistics(ModelStatisticsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented);
        assert!(
            status.message().contains("ModelStatistics is not served")
                && status.message().contains("/metrics"),
            "{status:?}"
        );
        let status = c
            .model_metadata(ModelMetadataRequest {
                name: "nope".into(),
                version: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    });
}

#[test]
fn grpc_calls_are_counted_by_rpc_and_code() {
    with_client(server(), async |mut c| {
        c.server_live(ServerLiveRequest {}).await.unwrap();
        let call = request(
            "churn",
            vec![tensor("feats", "FP32", vec![1, 21], None)],
            vec![vec![0; 84]],
        );
        c.model_infer(call).await.unwrap_err();
    });
    let (_, _, metrics) = get_text(server(), "/metrics");
    for wanted in [
        r#"crmscore_http_requests_total{method="POST",route="grpc:ServerLive",status="OK"}"#,
        r#"crmscore_http_requests_total{method="POST",route="grpc:ModelInfer",status="INVALID_ARGUMENT"}"#,
    ] {
        assert!(metrics.contains(wanted), "{wanted} missing from /metrics");
    }
}

/// Every worker waits this long to fill a batch it cannot fill, so a job waits in the queue about as long.
const FILL_DELAY: Duration = Duration::from_millis(700);

fn slow_server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        start_ready(with_grpc(crmscore::Config {
            max_delay_us: Some(FILL_DELAY.as_micros() as u64),
            max_batch_size: Some(100_000),
            max_body_bytes: 4096,
            ..config(&sample_snapshot())
        }))
    })
}

fn one_text(text: &str) -> ModelInferRequest {
    let typed = InferTensorContents {
        bytes_contents: vec![text.as_bytes().to_vec()],
        ..Default::default()
    };
    request(
        "sentiment",
        vec![tensor("text", "BYTES", vec![1], Some(typed))],
        vec![],
    )
}

#[test]
fn the_grpc_timeout_is_the_request_deadline() {
    with_client(slow_server(), async |mut c| {
        // No deadline: the job waits out the batch window and is scored.
        c.model_infer(one_text("fine"))
            .await
            .expect("scored after the batch window");
        let mut call = tonic::Request::new(one_text("too late"));
        call.set_timeout(Duration::from_millis(20));
        let started = Instant::now();
        let status = refused(c.model_infer(call).await);
        // The server drops the call at its deadline: its own DEADLINE_EXCEEDED, or tonic's transport cutting it at
        // the same instant (CANCELLED, "Timeout expired"); either way before the batch window closes.
        assert!(
            matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{status:?}"
        );
        assert!(
            started.elapsed() < FILL_DELAY,
            "answered at the deadline, not after the queue wait"
        );
    });
}

#[test]
fn messages_over_max_body_bytes_are_refused() {
    with_client(slow_server(), async |mut c| {
        let status = refused(c.model_infer(one_text(&"a".repeat(5000))).await);
        assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
        assert!(
            status.message().contains("4096"),
            "names the limit: {status:?}"
        );
    });
}

#[test]
fn stop_ends_grpc_too_with_a_client_still_connected() {
    let server = start_ready(with_grpc(config(&sample_snapshot())));
    let addr = server.grpc.unwrap();
    // The client's connection is driven in the background, as in a real client process.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut client = runtime.block_on(async {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = GrpcInferenceServiceClient::new(channel);
        client.server_live(ServerLiveRequest {}).await.unwrap();
        client
    });
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        server.stop();
        let _ = done.send(());
    });
    stopped
        .recv_timeout(Duration::from_secs(60))
        .expect("stop returns while a gRPC client is connected");
    let after = runtime.block_on(client.server_live(ServerLiveRequest {}));
    assert!(after.is_err(), "the gRPC port is closed after stop");
}

#[test]
fn a_taken_grpc_port_fails_start_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = crmscore::Config {
        grpc_bind: Some(addr),
        ..config(&sample_snapshot())
    };
    let error = crmscore::start(config)
        .err()
        .expect("start fails")
        .to_string();
    assert!(error.contains(&addr.to_string()), "{error}");
}

#[test]
fn api_keys_guard_every_rpc_but_the_server_probes() {
    let dir = TempDir::new("grpc-keys");
    let keys = dir.path().join("keys.txt");
    let key = "grpc-test-key-0123456789";
    std::fs::write(
        &keys,
        format!("svc:{}\n", crmscore::api_keys::digest_hex(key)),
    )
    .unwrap();
    let mut cfg = with_grpc(config(&sample_snapshot()));
    cfg.api_keys_file = Some(keys);
    let keyed = start_ready(cfg);
    with_client(&keyed, async |mut client| {
        // The probes answer without a key, as /v2/health/* do on HTTP.
        let live = client.server_live(ServerLiveRequest {}).await.unwrap();
        assert!(live.get_ref().live);
        client.server_ready(ServerReadyRequest {}).await.unwrap();
        let metadata = || ModelMetadataRequest {
            name: "churn".into(),
            version: String::new(),
        };
        let refused = client.model_metadata(metadata()).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        let mut wrong = tonic::Request::new(metadata());
        wrong
            .metadata_mut()
            .insert("authorization", "Bearer not-the-key".parse().unwrap());
        let refused = client.model_metadata(wrong).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        let mut right = tonic::Request::new(metadata());
        right
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
        let answered = client.model_metadata(right).await.unwrap();
        assert_eq!(answered.get_ref().name, "churn");
    });
    keyed.stop();
}
