//! deploy/ checked offline: every Kubernetes manifest against the Kubernetes schemas (kubernetes-validate, in
//! .venv-deploy), KServe's resources against deploy/schemas/, and every flag and CRMSCORE_* variable the manifests
//! and the Dockerfile use against this binary's `serve --help` and `score-batch --help` (scripts/check_deploy.py).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// Runs scripts/check_deploy.py on `deploy` with this build's binary (None when .venv-deploy is missing outside CI).
fn check(deploy: &Path) -> Option<Output> {
    let python = venv_python(".venv-deploy", "--deploy")?;
    let output = Command::new(python)
        .arg(repo().join("scripts/check_deploy.py"))
        .args(["--bin", env!("CARGO_BIN_EXE_crmscore"), "--deploy"])
        .arg(deploy)
        .output()
        .expect("python starts");
    Some(output)
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A copy of deploy/ under a temporary folder.
fn copy_of_deploy(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo().join("deploy"))
        .arg(dir.path())
        .status()
        .expect("cp runs");
    assert!(status.success());
    dir
}

#[test]
fn every_manifest_is_valid_and_every_flag_exists() {
    let Some(output) = check(&repo().join("deploy")) else {
        return;
    };
    let text = text(&output);
    assert!(output.status.success(), "{text}");
    for kind in [
        "Deployment/crmscore",
        "Service/crmscore",
        "PodDisruptionBudget/crmscore",
        "HorizontalPodAutoscaler/crmscore",
        "ConfigMap/crmscore-flags",
        "ConfigMap/crmscore-policy",
        "Job/crmscore-score-batch",
        "ClusterServingRuntime/kserve-crmscore",
        "InferenceService/crm",
    ] {
        assert!(text.contains(kind), "{kind} was not checked:\n{text}");
    }
    assert!(text.contains(": 0 problems"), "{text}");
}

#[test]
fn a_flag_the_binary_lacks_a_typo_and_a_stale_policy_are_caught() {
    let dir = copy_of_deploy("deploy-broken");
    let deploy = dir.path().join("deploy");
    let edit = |file: &str, from: &str, to: &str| {
        let path = deploy.join(file);
        let text = std::fs::read_to_string(&path).expect("manifest");
        assert!(text.contains(from), "{file} lacks {from}");
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
    };
    edit(
        "kubernetes/deployment.yaml",
        "- --grpc-bind\n",
        "- --grpc-port\n",
    );
    edit(
        "kubernetes/score-batch-job.yaml",
        "- --shard\n",
        "- --shards\n",
    );
    edit(
        "kubernetes/flags-configmap.yaml",
        "CRMSCORE_POLL_MS:",
        "CRMSCORE_POLL_SECONDS:",
    );
    edit("kubernetes/hpa.yaml", "  minReplicas:", "  minReplica:");
    edit("kserve/inferenceservice.yaml", "storageUri", "storageURI");
    edit(
        "kubernetes/policy-configmap.yaml",
        "priority = 5",
        "priority = 6",
    );
    edit("Dockerfile", "\"--snapshots\"", "\"--snapshot\"");
    let Some(output) = check(&deploy) else {
        return;
    };
    let text = text(&output);
    assert!(!output.status.success(), "{text}");
    for problem in [
        "`crmscore serve` has no flag --grpc-port",
        "`crmscore score-batch` has no flag --shards",
        "CRMSCORE_POLL_SECONDS is not a variable",
        "HorizontalPodAutoscaler/crmscore: invalid",
        "InferenceService/crm: invalid",
        "engagement.toml differs from policies/engagement.toml",
        "Dockerfile: `crmscore serve` has no flag --snapshot",
    ] {
        assert!(
            text.contains(problem),
            "{problem} was not reported:\n{text}"
        );
    }
}
