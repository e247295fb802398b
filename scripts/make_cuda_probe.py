"""Write src/model/cuda_probe.onnx: y = Identity(x), float[n], opset 17 (86 bytes). The server opens it on CUDA
before any model loads, so `--device cuda` fails at start, once, naming what is missing (no GPU, old driver) and
`auto` decides once for the whole server.

    .venv/bin/python scripts/make_cuda_probe.py   (any venv with onnx)
"""

from pathlib import Path

import onnx
from onnx import TensorProto, helper

x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])
graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "cuda_probe", [x], [y])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="crmscore")
model.ir_version = 8
onnx.checker.check_model(model)
out = Path(__file__).resolve().parent.parent / "src" / "model" / "cuda_probe.onnx"
out.write_bytes(model.SerializeToString())
print(f"wrote {out} ({out.stat().st_size} bytes)")
