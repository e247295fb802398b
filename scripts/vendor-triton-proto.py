#!/usr/bin/env python3
"""Writes proto/grpc_service.proto and proto/model_config.proto from the compiled descriptors of the pinned
tritonclient (scripts/requirements-triton.txt), so the server's gRPC types are exactly the ones tritonclient.grpc
speaks. build.rs compiles them with protox (no system protoc).

Run with the interop venv:  "$(scripts/setup-python.sh --triton)" scripts/vendor-triton-proto.py
The files are printed from descriptors: same packages, messages, field numbers, types and services as Triton's
grpc_service.proto and model_config.proto (triton-inference-server/common), without their comments.
"""

import sys
from importlib.metadata import version
from pathlib import Path

from google.protobuf import descriptor_pb2
from tritonclient.grpc import model_config_pb2, service_pb2

F = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    F.TYPE_DOUBLE: "double", F.TYPE_FLOAT: "float", F.TYPE_INT64: "int64", F.TYPE_UINT64: "uint64",
    F.TYPE_INT32: "int32", F.TYPE_FIXED64: "fixed64", F.TYPE_FIXED32: "fixed32", F.TYPE_BOOL: "bool",
    F.TYPE_STRING: "string", F.TYPE_BYTES: "bytes", F.TYPE_UINT32: "uint32", F.TYPE_SFIXED32: "sfixed32",
    F.TYPE_SFIXED64: "sfixed64", F.TYPE_SINT32: "sint32", F.TYPE_SINT64: "sint64",
}

LICENSE = """\
// Copyright (c) 2020, NVIDIA CORPORATION. All rights reserved.
//
// Redistribution and use in source and binary forms, with or without
// modification, are permitted provided that the following conditions
// are met:
//  * Redistributions of source code must retain the above copyright
//    notice, this list of conditions and the following disclaimer.
//  * Redistributions in binary form must reproduce the above copyright
//    notice, this list of conditions and the following disclaimer in the
//    documentation and/or other materials provided with the distribution.
//  * Neither the name of NVIDIA CORPORATION nor the names of its
//    contributors may be used to endorse or promote products derived
//    from this software without specific prior written permission.
//
// THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS ``AS IS'' AND ANY
// EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
// IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR
// PURPOSE ARE DISCLAIMED.  IN NO EVENT SHALL THE COPYRIGHT OWNER OR
// CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL,
// EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO,
// PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR
// PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY
// OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
// (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
// OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""


def type_name(field, package):
    if field.type in SCALARS:
        return SCALARS[field.type]
    # ".inference.ModelConfig" -> "ModelConfig" inside package inference.
    return field.type_name.removeprefix(f".{package}.")


def print_enum(enum, out, indent):
    pad = "  " * indent
    out.append(f"{pad}enum {enum.name} {{")
    for value in enum.value:
        out.append(f"{pad}  {value.name} = {value.number};")
    out.append(f"{pad}}}")


def print_message(msg, out, indent, package):
    pad = "  " * indent
    out.append(f"{pad}message {msg.name} {{")
    maps = {n.name: n for n in msg.nested_type if n.options.map_entry}
    for nested in msg.nested_type:
        if not nested.options.map_entry:
            print_message(nested, out, indent + 1, package)
    for enum in msg.enum_type:
        print_enum(enum, out, indent + 1)

    def field_line(field):
        entry = maps.get(field.type_name.rsplit(".", 1)[-1]) if field.type == F.TYPE_MESSAGE else None
        if entry is not None and field.label == F.LABEL_REPEATED:
            key, value = entry.field
            return f"map<{type_name(key, package)}, {type_name(value, package)}> {field.name} = {field.number};"
        label = "repeated " if field.label == F.LABEL_REPEATED else ("optional " if field.proto3_optional else "")
        return f"{label}{type_name(field, package)} {field.name} = {field.number};"

    real_oneofs = {
        i for i, _ in enumerate(msg.oneof_decl)
        if not any(f.proto3_optional for f in msg.field if f.HasField("oneof_index") and f.oneof_index == i)
    }
    done = set()
    for field in msg.field:
        if field.HasField("oneof_index") and field.oneof_index in real_oneofs:
            index = field.oneof_index
            if index in done:
                continue
            done.add(index)
            out.append(f"{pad}  oneof {msg.oneof_decl[index].name} {{")
            for member in msg.field:
                if member.HasField("oneof_index") and member.oneof_index == index:
                    out.append(f"{pad}    {field_line(member)}")
            out.append(f"{pad}  }}")
        else:
            out.append(f"{pad}  {field_line(field)}")
    out.append(f"{pad}}}")


def print_file(module):
    fd = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(fd)
    out = [LICENSE.rstrip("\n"), "",
           f"// Printed by scripts/vendor-triton-proto.py from tritonclient {version('tritonclient')}'s descriptors of",
           f"// Triton's {fd.name} (triton-inference-server/common); comments dropped. Do not edit.",
           "", f'syntax = "{fd.syntax}";', "", f"package {fd.package};", ""]
    for dependency in fd.dependency:
        out.append(f'import "{dependency}";')
    if fd.dependency:
        out.append("")
    for service in fd.service:
        out.append(f"service {service.name} {{")
        for m in service.method:
            request = ("stream " if m.client_streaming else "") + m.input_type.removeprefix(f".{fd.package}.")
            reply = ("stream " if m.server_streaming else "") + m.output_type.removeprefix(f".{fd.package}.")
            out.append(f"  rpc {m.name}({request}) returns ({reply}) {{}}")
        out.append("}")
        out.append("")
    for enum in fd.enum_type:
        print_enum(enum, out, 0)
        out.append("")
    for msg in fd.message_type:
        print_message(msg, out, 0, fd.package)
        out.append("")
    return fd.name, "\n".join(out).rstrip("\n") + "\n"


def main():
    folder = Path(__file__).resolve().parent.parent / "proto"
    folder.mkdir(exist_ok=True)
    for module in (service_pb2, model_config_pb2):
        name, text = print_file(module)
        (folder / name).write_text(text)
        print(f"wrote proto/{name}", file=sys.stderr)


if __name__ == "__main__":
    main()
