#!/usr/bin/env python3
"""Drives a running crmscore with NVIDIA's own clients (tritonclient.http and tritonclient.grpc) and checks every
answer: health, metadata, readiness (plain and versioned), model config, and inference for churn (FP32 rows of the
sample snapshot, missing values sent as NaN), recommendation and sentiment (BYTES), with binary and JSON tensors
over HTTP. Scores are compared with Python onnxruntime running models/*/model.onnx on the same rows (1e-5);
sentiment texts are tokenized here with the model's tokenizer.json, as the server does.

Prints one line per client call (protocol, call, result, PASS/FAIL); exits 1 when any check failed.
Usage: tritonclient_check.py --http 127.0.0.1:8080 --grpc 127.0.0.1:8001 [--protocol http|grpc|both]
Needs the venv of `scripts/setup-python.sh --triton`; tests/tritonclient.rs runs it against the real server.
"""

import argparse
import sys
import tomllib
import traceback
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow.compute as pc
import pyarrow.parquet as pq
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tokenizers import Tokenizer
from tritonclient.utils import InferenceServerException

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5
TEXTS = [
    "The support team fixed my issue in minutes, great service!",
    "I was charged twice this month and nobody answers my emails.",
    "I changed my address last week.",
    "ça marche très bien, merci 👍",
    # Longer than the model's 128 tokens: the server truncates as the tokenizer does here.
    " ".join(["the delivery was late and the parcel was damaged"] * 30),
]


class Checks:
    """Runs named checks, printing each call and its result, and remembers failures."""

    def __init__(self):
        self.failed = []
        self.passed = 0

    def run(self, protocol, call, check):
        try:
            result = check()
        except Exception as error:  # a failed check is reported, not fatal: the next one still runs
            detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            print(f"[{protocol}] {call} -> FAIL: {detail}", flush=True)
            if not isinstance(error, (AssertionError, InferenceServerException)):
                traceback.print_exc(file=sys.stdout)
            self.failed.append(f"[{protocol}] {call}")
            return
        print(f"[{protocol}] {call} -> {result}  PASS", flush=True)
        self.passed += 1


def manifest(model):
    with open(ROOT / "models" / model / "model.toml", "rb") as f:
        return tomllib.load(f)


def snapshot_rows(features, n_complete=5, n_missing=5):
    """Rows of the sample snapshot as float32 [n, features] (nulls as NaN): some complete, some with a null."""
    table = pq.read_table(ROOT / "snapshots" / "customers-sample.parquet", columns=features)
    matrix = np.column_stack(
        [pc.cast(table.column(f), "float32").to_numpy(zero_copy_only=False) for f in features]
    ).astype(np.float32)
    has_nan = np.isnan(matrix).any(axis=1)
    complete = np.flatnonzero(~has_nan)[:n_complete]
    missing = np.flatnonzero(has_nan)[:n_missing]
    assert len(missing) > 0, "the sample snapshot has no row with a missing value"
    return matrix[np.concatenate([complete, missing])], len(missing)


class Reference:
    """What Python onnxruntime says for the same inputs."""

    def __init__(self):
        self.sessions = {}

    def session(self, model):
        if model not in self.sessions:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            path = str(ROOT / "models" / model / "model.onnx")
            self.sessions[model] = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        return self.sessions[model]

    def features(self, model, rows):
        spec = manifest(model)
        return self.session(model).run([spec["output"]], {spec["input"]: rows})[0]

    def texts(self, model, texts):
        spec = manifest(model)
        tokenizer = Tokenizer.from_file(str(ROOT / "models" / model / spec["tokenizer"]))
        tokenizer.enable_truncation(max_length=spec["max_length"])
        tokenizer.no_padding()
        logits = []
        for text in texts:
            ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
            feeds = {spec["input_ids"]: ids, spec["attention_mask"]: np.ones_like(ids)}
            logits.append(self.session(model).run([spec["output"]], feeds)[0][0])
        return np.stack(logits)


def close(got, want, what):
    assert got is not None, f"{what}: no such output in the reply"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    assert diff <= TOLERANCE, f"{what}: max |diff| vs onnxruntime {diff:.3g} > {TOLERANCE}"
    return f"{what} {list(got.shape)}, max |diff| vs onnxruntime {diff:.2g}"


def check_protocol(checks, protocol, url, reference):
    client_module = httpclient if protocol == "http" else grpcclient
    client = client_module.InferenceServerClient(url=url)
    run = lambda call, check: checks.run(protocol, call, check)

    def truthy(value):
        assert value is True, f"got {value!r}"
        return value

    run("is_server_live()", lambda: truthy(client.is_server_live()))
    run("is_server_ready()", lambda: truthy(client.is_server_ready()))

    def server_metadata():
        meta = client.get_server_metadata()
        name = meta["name"] if protocol == "http" else meta.name
        assert name == "crmscore", f"name {name!r}"
        return f"name={name!r}"

    run("get_server_metadata()", server_metadata)

    for model in ("churn", "recommendation", "sentiment"):
        version = str(manifest(model)["version"])
        run(f"is_model_ready({model!r})", lambda m=model: truthy(client.is_model_ready(m)))
        run(f"is_model_ready({model!r}, {version!r})", lambda m=model, v=version: truthy(client.is_model_ready(m, v)))

        def metadata(m=model, v=version):
            meta = client.get_model_metadata(m, v, as_json=True) if protocol == "grpc" else client.get_model_metadata(m, v)
            inputs = [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in meta["inputs"]]
            outputs = [t["name"] for t in meta["outputs"]]
            assert meta["name"] == m and v in meta["versions"], f"{meta}"
            spec = manifest(m)
            expected_input = "text" if spec["kind"] == "text" else spec["input"]
            assert inputs[0][0] == expected_input, f"inputs {inputs}"
            assert spec["output"] in outputs, f"outputs {outputs}"
            return f"inputs={inputs} outputs={outputs}"

        run(f"get_model_metadata({model!r}, {version!r})", metadata)

        def config(m=model):
            reply = client.get_model_config(m, as_json=True) if protocol == "grpc" else client.get_model_config(m)
            cfg = reply["config"] if protocol == "grpc" else reply
            assert cfg["name"] == m, f"{cfg}"
            spec = manifest(m)
            assert int(cfg["max_batch_size"]) == spec["batching"]["max_batch_size"], f"max_batch_size {cfg}"
            inputs = [(t["name"], t["data_type"], [int(d) for d in t.get("dims", [])]) for t in cfg["input"]]
            if spec["kind"] == "text":
                assert inputs == [("text", "TYPE_STRING", [1])], f"inputs {inputs}"
            else:
                assert inputs == [(spec["input"], "TYPE_FP32", [len(spec["features"])])], f"inputs {inputs}"
            return f"max_batch_size={cfg['max_batch_size']} input={inputs}"

        run(f"get_model_config({model!r})", config)

    def falsy(value):
        assert value is False, f"got {value!r}"
        return value

    run("is_model_ready('no_such_model')", lambda: falsy(client.is_model_ready("no_such_model")))

    def refused_unknown_model():
        try:
            client.get_model_metadata("no_such_model")
        except InferenceServerException as error:
            expected = "StatusCode.NOT_FOUND" if protocol == "grpc" else "404"
            assert str(error.status()) == expected, f"status {error.status()!r}, expected {expected}"
            assert "no_such_model" in error.message(), error.message()
            return f"{error.status()}: {error.message()}"
        raise AssertionError("metadata of an unknown model was answered")

    run("get_model_metadata('no_such_model')", refused_unknown_model)

    # Inference: over HTTP every combination of binary and JSON tensors; gRPC always carries raw tensors.
    modes = [(True, True), (False, False), (True, False), (False, True)] if protocol == "http" else [(None, None)]
    for binary_in, binary_out in modes:
        infer_features(run, client_module, client, protocol, reference, "churn", binary_in, binary_out)
        infer_features(run, client_module, client, protocol, reference, "recommendation", binary_in, binary_out)
        infer_texts(run, client_module, client, protocol, reference, binary_in, binary_out)

    def refused_bad_input():
        spec = manifest("churn")
        tensor = client_module.InferInput("not_the_input", [1, len(spec["features"])], "FP32")
        data = np.zeros((1, len(spec["features"])), dtype=np.float32)
        tensor.set_data_from_numpy(data) if protocol == "grpc" else tensor.set_data_from_numpy(data, binary_data=False)
        try:
            client.infer("churn", [tensor])
        except InferenceServerException as error:
            expected = "StatusCode.INVALID_ARGUMENT" if protocol == "grpc" else "400"
            assert str(error.status()) == expected, f"status {error.status()!r}, expected {expected}"
            assert "not_the_input" in error.message(), error.message()
            return f"{error.status()}: {error.message()}"
        raise AssertionError("an unknown input name was scored")

    run("infer('churn', input 'not_the_input')", refused_bad_input)


def describe(binary_in, binary_out):
    if binary_in is None:
        return ""
    return f", binary_data in={binary_in} out={binary_out}"


def infer_features(run, client_module, client, protocol, reference, model, binary_in, binary_out):
    spec = manifest(model)
    rows, missing = snapshot_rows(spec["features"])
    want = reference.features(model, rows)
    tensor = client_module.InferInput(spec["input"], list(rows.shape), "FP32")
    if protocol == "http":
        tensor.set_data_from_numpy(rows, binary_data=binary_in)
        outputs = [client_module.InferRequestedOutput(spec["output"], binary_data=binary_out)]
    else:
        tensor.set_data_from_numpy(rows)
        outputs = [client_module.InferRequestedOutput(spec["output"])]

    def infer():
        result = client.infer(model, [tensor], outputs=outputs, request_id="interop-1")
        return close(result.as_numpy(spec["output"]), want, spec["output"])

    call = (f"infer({model!r}, FP32 {list(rows.shape)} incl. {missing} rows with NaN, "
            f"outputs=[{spec['output']!r}]{describe(binary_in, binary_out)})")
    run(call, infer)

    if spec["kind"] == "tabular" and binary_in in (None, True) and binary_out in (None, True):
        # No outputs named: the model's own output (tritonclient.http then asks for binary outputs).
        def infer_default():
            result = client.infer(model, [tensor], model_version=str(spec["version"]))
            return close(result.as_numpy(spec["output"]), want, spec["output"])

        run(f"infer({model!r}, FP32 {list(rows.shape)}, model_version={spec['version']!r}, no outputs named)",
            infer_default)


def infer_texts(run, client_module, client, protocol, reference, binary_in, binary_out):
    spec = manifest("sentiment")
    want = reference.texts("sentiment", TEXTS)
    data = np.array([t.encode("utf-8") for t in TEXTS], dtype=np.object_)
    tensor = client_module.InferInput("text", [len(TEXTS)], "BYTES")
    if protocol == "http":
        tensor.set_data_from_numpy(data, binary_data=binary_in)
        outputs = [client_module.InferRequestedOutput(spec["output"], binary_data=binary_out)]
    else:
        tensor.set_data_from_numpy(data)
        outputs = [client_module.InferRequestedOutput(spec["output"])]

    def infer():
        result = client.infer("sentiment", [tensor], outputs=outputs)
        return close(result.as_numpy(spec["output"]), want, spec["output"])

    run(f"infer('sentiment', BYTES [{len(TEXTS)}], outputs=[{spec['output']!r}]{describe(binary_in, binary_out)})",
        infer)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", help="host:port of the HTTP server")
    parser.add_argument("--grpc", help="host:port of the gRPC server")
    parser.add_argument("--protocol", choices=["http", "grpc", "both"], default="both")
    args = parser.parse_args()
    protocols = ["http", "grpc"] if args.protocol == "both" else [args.protocol]
    checks, reference = Checks(), Reference()
    for protocol in protocols:
        url = getattr(args, protocol)
        if not url:
            parser.error(f"--{protocol} is needed to check {protocol}")
        print(f"== tritonclient.{protocol} {url}", flush=True)
        check_protocol(checks, protocol, url, reference)
    print(f"== {checks.passed} passed, {len(checks.failed)} failed", flush=True)
    for failure in checks.failed:
        print(f"FAILED {failure}", flush=True)
    sys.exit(1 if checks.failed else 0)


if __name__ == "__main__":
    main()
