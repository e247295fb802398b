//! Triton's binary tensor data extension on /v2 over a real socket: binary requests and replies (as tritonclient
//! sends and reads them) give exactly the JSON answers for the churn (FP32, FP64), recommendation and sentiment
//! (BYTES) models, mixed replies follow each output's choice, and every malformed binary body is a 400 naming the
//! problem.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use crmscore::RunningServer;
use serde_json::{Value, json};

const HEADER: &str = "Inference-Header-Content-Length";

/// One server for the whole file.
fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| start_ready(config(&sample_snapshot())))
}

/// What a reply held: status, its `Inference-Header-Content-Length` and content type, and the raw body.
struct Reply {
    status: u16,
    header_length: Option<usize>,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    /// The JSON part (the whole body without a header length).
    fn json(&self) -> Value {
        let end = self.header_length.unwrap_or(self.body.len());
        serde_json::from_slice(&self.body[..end])
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into()))
    }

    /// Every output as (name, shape, values): JSON data, or its binary data decoded (FP32 little-endian).
    fn outputs(&self) -> Vec<(String, Value, Vec<f32>)> {
        assert_eq!(self.status, 200, "{}", self.json());
        let header = self.json();
        let mut offset = self.header_length.unwrap_or(0);
        let mut outputs = Vec::new();
        for o in header["outputs"].as_array().unwrap() {
            assert_eq!(o["datatype"], "FP32");
            let values = match o["parameters"]["binary_data_size"].as_u64() {
                Some(size) => {
                    assert!(o.get("data").is_none(), "binary output with data: {o}");
                    let bytes = &self.body[offset..offset + size as usize];
                    offset += size as usize;
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect()
                }
                None => o["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().map_or(f32::NAN, |v| v as f32))
                    .collect(),
            };
            outputs.push((
                o["name"].as_str().unwrap().to_string(),
                o["shape"].clone(),
                values,
            ));
        }
        if self.header_length.is_some() {
            assert_eq!(offset, self.body.len(), "binary data left over");
        }
        outputs
    }
}

/// POSTs `body`, with `Inference-Header-Content-Length` when `header_length` is given.
fn send(path: &str, body: &[u8], header_length: Option<&str>) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut request = agent
        .post(url(server(), path))
        .header("content-type", "application/octet-stream");
    if let Some(length) = header_length {
        request = request.header(HEADER, length);
    }
    let mut resp = request.send(body).expect("request reaches the server");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let header_length = header(HEADER).map(|v| v.parse().unwrap());
    let content_type = header("content-type").unwrap_or_default();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    Reply {
        status: resp.status().as_u16(),
        header_length,
        content_type,
        body,
    }
}

/// A binary request as tritonclient builds it: the JSON header, then each tensor's bytes.
fn send_binary(path: &str, header: &Value, tensors: &[&[u8]]) -> Reply {
    let json = header.to_string();
    let mut body = json.clone().into_bytes();
    for t in tensors {
        body.extend_from_slice(t);
    }
    send(path, &body, Some(&json.len().to_string()))
}

fn send_json(path: &str, body: &Value) -> Reply {
    send(path, body.to_string().as_bytes(), None)
}

fn fp32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn fp64(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| f64::from(v).to_le_bytes())
        .collect()
}

/// BYTES elements: a 4-byte little-endian length, then the UTF-8 bytes.
fn bytes_tensor(texts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in texts {
        out.extend_from_slice(&(t.len() as u32).to_le_bytes());
        out.extend_from_slice(t.as_bytes());
    }
    out
}

/// Bitwise equality, NaN included.
fn assert_same(binary: &[(String, Value, Vec<f32>)], json: &[(String, Value, Vec<f32>)]) {
    assert_eq!(binary.len(), json.len());
    for ((bn, bs, bv), (jn, js, jv)) in binary.iter().zip(json) {
        assert_eq!((bn, bs), (jn, js));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(bv), bits(jv), "output {bn} differs");
    }
}

/// The first rows of the sample snapshot for `model` (with its missing values), flat, and their width.
fn rows(model: &str, n: usize) -> (Vec<f32>, usize) {
    let (_, rows) = sample_features(model, n);
    let width = rows[0].len();
    (rows.concat(), width)
}

#[test]
fn binary_feature_tensors_score_like_json() {
    let (values, width) = rows("churn", 40);
    assert!(
        values.iter().any(|v| v.is_nan()),
        "the rows should hold missing values"
    );
    let n = values.len() / width;
    let path = "/v2/models/churn/infer";
    let json_reply = send_json(
        path,
        &json!({"inputs": [{"name": "features", "shape": [n, width], "datatype": "FP32", "data": values}]}),
    );
    assert_eq!(json_reply.header_length, None);
    assert!(json_reply.content_type.starts_with("application/json"));
    let expected = json_reply.outputs();
    for (datatype, raw) in [("FP32", fp32(&values)), ("FP64", fp64(&values))] {
        // No outputs named: tritonclient asks for every output in binary.
        let header = json!({
            "inputs": [{"name": "features", "shape": [n, width], "datatype": datatype,
                        "parameters": {"binary_data_size": raw.len()}}],
            "parameters": {"binary_data_output": true},
        });
        let reply = send_binary(path, &header, &[&raw]);
        assert_eq!(reply.content_type, "application/octet-stream");
        assert!(reply.header_length.is_some());
        assert_same(&reply.outputs(), &expected);
        // Binary in, JSON out.
        let header = json!({
            "inputs": [{"name": "features", "shape": [n, width], "datatype": datatype,
                        "parameters": {"binary_data_size": raw.len()}}],
        });
        let reply = send_binary(path, &header, &[&raw]);
        assert_eq!(reply.header_length, None);
        assert_same(&reply.outputs(), &expected);
    }
    // JSON in, binary out.
    let header = json!({
        "inputs": [{"name": "features", "shape": [n, width], "datatype": "FP32", "data": values}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": true}}],
    });
    let reply = send(path, header.to_string().as_bytes(), None);
    assert!(reply.header_length.is_some());
    assert_same(&reply.outputs(), &expected);
}

#[test]
fn mixed_replies_follow_each_output() {
    let (values, width) = rows("churn", 5);
    let raw = fp32(&values);
    let n = values.len() / width;
    let input = json!([{"name": "features", "shape": [n, width], "datatype": "FP32",
                        "parameters": {"binary_data_size": raw.len()}}]);
    let path = "/v2/models/churn/infer";
    let all_json = send_binary(
        path,
        &json!({"inputs": input, "outputs": [{"name": "probabilities"}, {"name": "contributions"}]}),
        &[&raw],
    );
    assert_eq!(all_json.header_length, None);
    let expected = all_json.outputs();
    assert_eq!(expected.len(), 2);
    // The request default says binary; one output says JSON.
    let mixed = send_binary(
        path,
        &json!({
            "inputs": input,
            "outputs": [
                {"name": "probabilities", "parameters": {"binary_data": true}},
                {"name": "contributions", "parameters": {"binary_data": false}},
            ],
            "parameters": {"binary_data_output": true},
        }),
        &[&raw],
    );
    let header = mixed.json();
    assert!(header["outputs"][0]["parameters"]["binary_data_size"].is_u64());
    assert!(header["outputs"][0].get("data").is_none());
    assert!(header["outputs"][1]["data"].is_array());
    assert!(header["outputs"][1].get("parameters").is_none());
    assert_same(&mixed.outputs(), &expected);
}

#[test]
fn binary_recommendation_scores_match_json() {
    let (values, width) = rows("recommendation", 6);
    let n = values.len() / width;
    let path = "/v2/models/recommendation/infer";
    let expected = send_json(
        path,
        &json!({"inputs": [{"name": "features", "shape": [n, width], "datatype": "FP32", "data": values}]}),
    )
    .outputs();
    assert_eq!(expected[0].1, json!([n, 800]));
    let raw = fp32(&values);
    let reply = send_binary(
        path,
        &json!({
            "inputs": [{"name": "features", "shape": [n, width], "datatype": "FP32",
                        "parameters": {"binary_data_size": raw.len()}}],
            "outputs": [{"name": "scores", "parameters": {"binary_data": true}}],
        }),
        &[&raw],
    );
    assert_same(&reply.outputs(), &expected);
}

#[test]
fn binary_texts_classify_like_json() {
    let texts = [
        "The new plan is great, thanks!",
        "I have been waiting three weeks for a refund. Unacceptable.",
        "Ça marche, merci — rien à signaler.",
    ];
    let path = "/v2/models/sentiment/infer";
    let expected = send_json(
        path,
        &json!({"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": texts}]}),
    )
    .outputs();
    // [batch, 1] is the shape many clients send; JSON and binary alike.
    let as_column = send_json(
        path,
        &json!({"inputs": [{"name": "text", "shape": [3, 1], "datatype": "BYTES", "data": [[texts[0]], [texts[1]], [texts[2]]]}]}),
    );
    assert_same(&as_column.outputs(), &expected);
    let raw = bytes_tensor(&texts);
    for shape in [json!([3]), json!([3, 1])] {
        let reply = send_binary(
            path,
            &json!({
                "inputs": [{"name": "text", "shape": shape, "datatype": "BYTES",
                            "parameters": {"binary_data_size": raw.len()}}],
                "parameters": {"binary_data_output": true},
            }),
            &[&raw],
        );
        assert!(reply.header_length.is_some());
        assert_same(&reply.outputs(), &expected);
    }
}

/// Asserts a 400 whose v2 error mentions every needle.
fn assert_refused(reply: &Reply, needles: &[&str]) {
    let body = reply.json();
    assert_eq!(reply.status, 400, "{body}");
    let message = v2_error(&body);
    for needle in needles {
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
}

#[test]
fn malformed_binary_bodies_are_refused_naming_the_problem() {
    let (values, width) = rows("churn", 2);
    let raw = fp32(&values);
    let churn = "/v2/models/churn/infer";
    let features = |size: usize| {
        json!({"inputs": [{"name": "features", "shape": [2, width], "datatype": "FP32",
                           "parameters": {"binary_data_size": size}}]})
    };
    // Size past the data there is.
    let reply = send_binary(churn, &features(raw.len() + 8), &[&raw]);
    assert_refused(&reply, &["'features'", "remain"]);
    // Size that disagrees with shape × datatype (and matches the bytes sent).
    let short = &raw[..raw.len() - 4];
    let reply = send_binary(churn, &features(short.len()), &[short]);
    assert_refused(
        &reply,
        &["'features'", &format!("needs {} bytes", raw.len())],
    );
    // Sizes that do not use up the binary data.
    let reply = send_binary(churn, &features(raw.len()), &[&raw, &[0; 4]]);
    assert_refused(&reply, &["add up to", &raw.len().to_string()]);
    // data and binary_data_size both.
    let both = json!({"inputs": [{"name": "features", "shape": [2, width], "datatype": "FP32",
                                  "data": vec![0.0; 2 * width], "parameters": {"binary_data_size": raw.len()}}]});
    let reply = send_binary(churn, &both, &[&raw]);
    assert_refused(&reply, &["'features'", "both"]);
    // binary_data_size without the header.
    let header = features(raw.len()).to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&raw);
    assert_refused(&send(churn, &body, None), &["not valid JSON"]);
    let reply = send(churn, header.as_bytes(), None);
    assert_refused(&reply, &["'features'", HEADER]);
    // Header length that is not a number, past the body, or cutting the JSON short.
    for bad in ["abc", "-3", "1.5"] {
        assert_refused(&send(churn, &body, Some(bad)), &[HEADER, "byte length"]);
    }
    let too_long = (body.len() + 1).to_string();
    assert_refused(&send(churn, &body, Some(&too_long)), &[HEADER, "only"]);
    let cut = (header.len() - 3).to_string();
    assert_refused(&send(churn, &body, Some(&cut)), &["not valid JSON"]);

    let sentiment = "/v2/models/sentiment/infer";
    let text = |size: usize| {
        json!({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES",
                           "parameters": {"binary_data_size": size}}]})
    };
    let good = bytes_tensor(&["fine", "bad"]);
    // The second element's length prefix promises more bytes than there are.
    let truncated = &good[..good.len() - 1];
    let reply = send_binary(sentiment, &text(truncated.len()), &[truncated]);
    assert_refused(&reply, &["'text'", "element 1"]);
    // A length prefix cut off.
    let cut_prefix = &good[..10];
    let reply = send_binary(sentiment, &text(cut_prefix.len()), &[cut_prefix]);
    assert_refused(&reply, &["'text'", "length prefix"]);
    // Bytes after the last element.
    let mut trailing = good.clone();
    trailing.push(b'!');
    let reply = send_binary(sentiment, &text(trailing.len()), &[&trailing]);
    assert_refused(&reply, &["'text'", "follow"]);
    // Not UTF-8.
    let latin1 = [4, 0, 0, 0, b'c', 0xe7, b'a', b'!', 1, 0, 0, 0, b'x'];
    let reply = send_binary(sentiment, &text(latin1.len()), &[&latin1]);
    assert_refused(&reply, &["'text'", "UTF-8"]);
}
