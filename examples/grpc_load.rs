//! Load generator for the gRPC front door (`ModelInfer`), the gRPC counterpart of oha in `scripts/loadtest.sh`.
//!
//! Request bodies come from a v2 JSON lines file (the load test's `v2-1.jsonl`: one `{"inputs": [...]}` per line);
//! each is sent as a `ModelInferRequest` with its tensors in `raw_input_contents` (what tritonclient.grpc sends).
//! `--concurrency` tasks each keep one call in flight, picking a random body per call (fixed seed), over
//! `--connections` HTTP/2 connections; calls started before the end of `--duration` are awaited. The summary on
//! stdout has the JSON shape of `oha --output-format json` that the load test reads: OK replies count as status
//! "200" (a gRPC reply is an HTTP 200), every other gRPC status goes to `errorDistribution` by code.
//!
//! ```text
//! cargo build --release --example grpc_load
//! target/release/examples/grpc_load --target 127.0.0.1:18081 --model churn --bodies .bench/bodies/v2-1.jsonl \
//!     --concurrency 64 --duration 30s
//! target/release/examples/grpc_load --target 127.0.0.1:18081 --model churn --bodies ... --check 5
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use crmscore::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use crmscore::grpc::proto::model_infer_request::InferInputTensor;
use crmscore::grpc::proto::{ModelInferRequest, ModelInferResponse};
use serde_json::{Value, json};
use tonic::transport::{Channel, Endpoint};

/// Loads crmscore's gRPC ModelInfer with v2 request bodies and prints an oha-style JSON summary.
#[derive(Debug, Parser)]
#[command(name = "grpc_load", about, long_about = None)]
struct Args {
    /// host:port of the gRPC server.
    #[arg(long, default_value = "127.0.0.1:8001")]
    target: String,
    /// Model to call.
    #[arg(long, default_value = "churn")]
    model: String,
    /// v2 JSON lines file: one `{"inputs": [{"name", "shape", "datatype", "data"}]}` per line (FP32 or BYTES).
    #[arg(long)]
    bodies: PathBuf,
    /// Calls kept in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections the calls share (default: one per concurrent call, as oha -c opens).
    #[arg(long)]
    connections: Option<usize>,
    /// How long to send, e.g. 30s, 2m, or seconds.
    #[arg(long, default_value = "30s", value_parser = duration)]
    duration: Duration,
    /// Client runtime threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Per-call deadline (grpc-timeout).
    #[arg(long, default_value = "30s", value_parser = duration)]
    timeout: Duration,
    /// Instead of a load run: send the first N bodies, check each reply (one FP32 output, batch 1, finite values; for
    /// a tabular model's probabilities, summing to 1) and print them.
    #[arg(long)]
    check: Option<usize>,
}

fn duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], &text[i..]),
        _ => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration '{text}' (use e.g. 30s, 2m)"))?;
    match unit {
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("bad duration unit in '{text}' (s, m or h)")),
    }
}

/// One v2 JSON body as a ModelInfer request with raw tensors.
fn request(model: &str, line: &str) -> Result<ModelInferRequest, String> {
    let body: Value = serde_json::from_str(line).map_err(|e| format!("bad JSON body: {e}"))?;
    let inputs = body["inputs"]
        .as_array()
        .ok_or("a body without \"inputs\"")?;
    let mut request = ModelInferRequest {
        model_name: model.into(),
        ..Default::default()
    };
    for input in inputs {
        let name = input["name"].as_str().ok_or("an input without a name")?;
        let datatype = input["datatype"]
            .as_str()
            .ok_or("an input without a datatype")?;
        let shape = input["shape"]
            .as_array()
            .ok_or("an input without a shape")?;
        let data = input["data"].as_array().ok_or("an input without data")?;
        let mut raw = Vec::new();
        for value in data {
            match (datatype, value) {
                ("FP32", Value::Number(n)) => {
                    raw.extend_from_slice(&(n.as_f64().unwrap_or(f64::NAN) as f32).to_le_bytes())
                }
                ("BYTES", Value::String(s)) => {
                    raw.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    raw.extend_from_slice(s.as_bytes());
                }
                _ => {
                    return Err(format!(
                        "input '{name}': only FP32 numbers and BYTES strings are sent, got {datatype} {value}"
                    ));
                }
            }
        }
        request.inputs.push(InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.iter().filter_map(Value::as_i64).collect(),
            ..Default::default()
        });
        request.raw_input_contents.push(raw);
    }
    Ok(request)
}

/// The reply's first output as f32 values, checked for shape [1, n] and finite values.
fn check_reply(reply: &ModelInferResponse) -> Result<Vec<f32>, String> {
    let output = reply.outputs.first().ok_or("a reply without outputs")?;
    let raw = reply
        .raw_output_contents
        .first()
        .ok_or("a reply without raw_output_contents")?;
    let values: Vec<f32> = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let width = output.shape.get(1).copied().unwrap_or(0);
    if output.datatype != "FP32"
        || output.shape.len() != 2
        || output.shape[0] != 1
        || values.len() as i64 != width
    {
        return Err(format!(
            "unexpected output {output:?} with {} values",
            values.len()
        ));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(format!("non-finite scores {values:?}"));
    }
    Ok(values)
}

/// What one task saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<f64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

async fn connect(target: &str) -> Result<Channel, String> {
    Endpoint::from_shared(format!("http://{target}"))
        .map_err(|e| e.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {target}: {e}"))
}

async fn run(args: Args, requests: Vec<ModelInferRequest>) -> Result<Value, String> {
    let connections = args
        .connections
        .unwrap_or(args.concurrency)
        .clamp(1, args.concurrency.max(1));
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(connect(&args.target).await?);
    }
    let requests = std::sync::Arc::new(requests);
    let started = Instant::now();
    let end = started + args.duration;
    let mut tasks = Vec::with_capacity(args.concurrency);
    for task in 0..args.concurrency.max(1) {
        let mut client = GrpcInferenceServiceClient::new(channels[task % connections].clone())
            .max_decoding_message_size(64 << 20);
        let requests = requests.clone();
        let timeout = args.timeout;
        tasks.push(tokio::spawn(async move {
            // xorshift64*, seeded per task: a fixed, cheap sequence of bodies.
            let mut state =
                0x9E37_79B9_7F4A_7C15u64 ^ (task as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
            let mut tally = Tally::default();
            while Instant::now() < end {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let pick =
                    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % requests.len() as u64) as usize;
                let mut call = tonic::Request::new(requests[pick].clone());
                call.set_timeout(timeout);
                let sent = Instant::now();
                let answered = client.model_infer(call).await;
                tally.latencies.push(sent.elapsed().as_secs_f64());
                match answered {
                    Ok(_) => tally.ok += 1,
                    Err(status) => {
                        *tally
                            .errors
                            .entry(format!("{:?}: {}", status.code(), status.message()))
                            .or_default() += 1
                    }
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        let tally = task.await.map_err(|e| format!("a load task failed: {e}"))?;
        all.latencies.extend(tally.latencies);
        all.ok += tally.ok;
        for (error, n) in tally.errors {
            *all.errors.entry(error).or_default() += n;
        }
    }
    let total = started.elapsed().as_secs_f64();
    all.latencies.sort_by(f64::total_cmp);
    let percentile = |q: f64| -> Value {
        match all.latencies.len() {
            0 => Value::Null,
            n => json!(all.latencies[((q * n as f64).ceil() as usize).clamp(1, n) - 1]),
        }
    };
    let calls = all.latencies.len() as f64;
    Ok(json!({
        "summary": {
            "successRate": if calls > 0.0 { all.ok as f64 / calls } else { 0.0 },
            "total": total,
            "requestsPerSec": calls / total,
        },
        "latencyPercentiles": {
            "p10": percentile(0.10), "p25": percentile(0.25), "p50": percentile(0.50), "p75": percentile(0.75),
            "p90": percentile(0.90), "p95": percentile(0.95), "p99": percentile(0.99), "p99.9": percentile(0.999),
        },
        "statusCodeDistribution": { "200": all.ok },
        "errorDistribution": all.errors,
        "grpc": { "target": args.target, "model": args.model, "concurrency": args.concurrency, "connections": connections },
    }))
}

async fn check(args: &Args, requests: &[ModelInferRequest], n: usize) -> Result<(), String> {
    let mut client = GrpcInferenceServiceClient::new(connect(&args.target).await?);
    for request in requests.iter().take(n) {
        let reply = client
            .model_infer(request.clone())
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
        let values = check_reply(reply.get_ref())?;
        if values.len() == 2 && (values.iter().sum::<f32>() - 1.0).abs() > 1e-4 {
            return Err(format!("probabilities {values:?} do not sum to 1"));
        }
        eprintln!(
            "{} {}: {} = {values:?}",
            args.model,
            reply.get_ref().model_version,
            reply.get_ref().outputs[0].name
        );
    }
    eprintln!("grpc {}: {} replies OK", args.model, n.min(requests.len()));
    Ok(())
}

fn main() {
    let args = Args::parse();
    let outcome = (|| {
        let text = std::fs::read_to_string(&args.bodies)
            .map_err(|e| format!("cannot read {}: {e}", args.bodies.display()))?;
        let requests = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| request(&args.model, line))
            .collect::<Result<Vec<_>, _>>()?;
        if requests.is_empty() {
            return Err(format!("{} has no bodies", args.bodies.display()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads.max(1))
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        match args.check {
            Some(n) => runtime.block_on(check(&args, &requests, n)),
            None => {
                let summary = runtime.block_on(run(args, requests))?;
                println!("{summary}");
                Ok(())
            }
        }
    })();
    if let Err(error) = outcome {
        eprintln!("grpc_load: {error}");
        std::process::exit(1);
    }
}
