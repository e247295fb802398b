"""Offline checks of everything under deploy/: run by tests/deploy.rs with .venv-deploy's python.

    python scripts/check_deploy.py --bin target/debug/crmscore [--deploy DIR]

1. Every Kubernetes manifest (deploy/**/*.yaml, each document) is valid against the Kubernetes 1.37 JSON schemas
   bundled by kubernetes-validate, strictly (unknown fields refused). KServe's custom resources are not in those
   schemas: they are validated against the JSON schemas in deploy/schemas/ (written from KServe's CRD fields; their
   pod and container parts reference the same Kubernetes definitions).
2. Every flag (`--name`) passed to crmscore in a manifest or the Dockerfile's CMD exists in `crmscore serve --help`
   or `crmscore score-batch --help` (by the subcommand used), and every CRMSCORE_* variable set in a manifest, a
   ConfigMap or the Dockerfile is one of the variables those help texts list.
3. The InferenceService names a runtime and model format that a ClusterServingRuntime here provides; the policy
   ConfigMap holds policies/engagement.toml verbatim; the Dockerfile's COPY sources exist.
Prints one line per checked document; exits 1 listing every problem.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from importlib_resources import files
from referencing import Registry, Resource

K8S_VERSION = "1.37.0"
ROOT = Path(__file__).resolve().parent.parent


def help_of(binary: str, command: str) -> tuple[set[str], set[str]]:
    """The --flags and CRMSCORE_* variables `crmscore <command> --help` lists."""
    text = subprocess.run([binary, command, "--help"], check=True, capture_output=True, text=True).stdout
    flags = set(re.findall(r"(?m)^\s+(?:-\w, )?(--[a-z0-9][a-z0-9-]*)", text)) | {"--help"}
    envs = set(re.findall(r"\[env:\s+(CRMSCORE_[A-Z0-9_]+)", text))
    return flags, envs


def k8s_registry() -> Registry:
    """The Kubernetes definitions kubernetes-validate bundles, for the KServe schemas' references."""
    folder = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{K8S_VERSION}-local-strict"
    definitions = json.loads((folder / "_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()


def validate(doc: dict, registry: Registry, deploy: Path) -> None:
    """Raises on a schema violation (KServe resources: against the schemas in `deploy`/schemas)."""
    if doc.get("apiVersion", "").startswith("serving.kserve.io/"):
        group_version = doc["apiVersion"].split("/")
        name = f"{doc['kind'].lower()}-serving-{group_version[1]}.json"
        schema_path = deploy / "schemas" / name
        if not schema_path.exists():
            raise ValueError(f"no schema {schema_path} for {doc['apiVersion']} {doc['kind']}")
        schema = json.loads(schema_path.read_text())
        jsonschema.Draft202012Validator(schema, registry=registry).validate(doc)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def containers_of(doc: dict) -> list[tuple[dict, str | None]]:
    """(container-like spec, default subcommand) of a document: pod templates, runtimes, an InferenceService model."""
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return [(c, None) for c in spec["template"]["spec"].get("containers", [])]
    if kind in ("ClusterServingRuntime", "ServingRuntime"):
        return [(c, None) for c in spec.get("containers", [])]
    if kind == "InferenceService":
        # A model's args are appended to its runtime's `serve` arguments.
        return [(spec["predictor"]["model"], "serve")]
    return []


def check_args(where: str, args: list[str], default: str | None, helps: dict, problems: list[str]) -> None:
    command = args[0] if args and args[0] in helps else default
    if command is None:
        problems.append(f"{where}: arguments {args} name no crmscore subcommand ({', '.join(helps)})")
        return
    for arg in args:
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            if flag not in helps[command][0]:
                problems.append(f"{where}: `crmscore {command}` has no flag {flag}")


def check_env(where: str, names: list[str], helps: dict, problems: list[str]) -> None:
    known = set().union(*(envs for _, envs in helps.values()))
    for name in names:
        if name.startswith("CRMSCORE_") and name not in known:
            problems.append(f"{where}: {name} is not a variable of crmscore serve or score-batch")


def check_dockerfile(path: Path, helps: dict, problems: list[str]) -> None:
    where = path.name
    text = re.sub(r"\\\n", " ", path.read_text())
    cmd = re.search(r"(?m)^CMD\s+(\[.*\])\s*$", text)
    if cmd is None:
        problems.append(f"{where}: no CMD in exec form")
    else:
        check_args(where, json.loads(cmd.group(1)), None, helps, problems)
    for line in re.findall(r"(?m)^ENV\s+(.*)$", text):
        check_env(where, re.findall(r"([A-Z_][A-Z0-9_]*)=", line), helps, problems)
    for line in re.findall(r"(?m)^COPY\s+(.*)$", text):
        parts = line.split()
        if any(p.startswith("--from") for p in parts):
            continue
        for source in [p for p in parts if not p.startswith("--")][:-1]:
            if not (ROOT / source).exists():
                problems.append(f"{where}: COPY source {source} does not exist")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, help="the crmscore binary whose --help the flags are checked against")
    parser.add_argument("--deploy", type=Path, default=ROOT / "deploy", help="the folder to check")
    args = parser.parse_args()
    deploy = args.deploy.resolve()
    helps = {c: help_of(args.bin, c) for c in ("serve", "score-batch")}
    registry = k8s_registry()
    problems: list[str] = []
    docs: list[tuple[str, dict]] = []
    for path in sorted(deploy.rglob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc:
                docs.append((f"{path.relative_to(deploy)}[{i}] {doc.get('kind')}/{doc['metadata']['name']}", doc))
    for where, doc in docs:
        try:
            validate(doc, registry, deploy)
        except (jsonschema.ValidationError, kubernetes_validate.utils.ValidationError, ValueError) as e:
            message = e.message if isinstance(e, jsonschema.ValidationError) else str(e)
            path = "/".join(str(p) for p in getattr(e, "absolute_path", []))
            problems.append(f"{where}: invalid{' at ' + path if path else ''}: {message}")
        except kubernetes_validate.utils.SchemaNotFoundError as e:
            problems.append(f"{where}: no schema: {e}")
        for container, default in containers_of(doc):
            check_args(where, container.get("command", []) + container.get("args", []), default, helps, problems)
            check_env(where, [e["name"] for e in container.get("env", [])], helps, problems)
        if doc.get("kind") == "ConfigMap":
            check_env(where, list(doc.get("data", {})), helps, problems)
            policy = doc.get("data", {}).get("engagement.toml")
            if policy is not None and policy != (ROOT / "policies/engagement.toml").read_text():
                problems.append(f"{where}: engagement.toml differs from policies/engagement.toml")
        print(f"checked {where}")
    runtimes = {
        d["metadata"]["name"]: {f["name"] for f in d["spec"]["supportedModelFormats"]}
        for _, d in docs
        if d.get("kind") == "ClusterServingRuntime"
    }
    for where, doc in docs:
        if doc.get("kind") == "InferenceService":
            model = doc["spec"]["predictor"]["model"]
            runtime, fmt = model.get("runtime"), model["modelFormat"]["name"]
            if runtime not in runtimes or fmt not in runtimes[runtime]:
                problems.append(f"{where}: no ClusterServingRuntime {runtime} here serves model format {fmt}")
    check_dockerfile(deploy / "Dockerfile", helps, problems)
    print("checked Dockerfile")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"{len(docs)} manifests, 1 Dockerfile: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
