//! Finding and initialising the ONNX Runtime shared library (loaded at run time, never linked).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use super::ModelError;

const LIB_NAME: &str = "libonnxruntime.so";
const LOCAL_DIR: &str = ".onnxruntime/lib";

/// The process-wide ORT environment; ONNX Runtime allows one per process, so every server in it shares this.
static ENVIRONMENT: OnceLock<Result<(Environment, PathBuf), String>> = OnceLock::new();

/// Returns the ORT environment, loading the library on first use from the first place that has it.
pub fn environment(explicit: Option<&Path>) -> Result<&'static Environment, ModelError> {
    let result = ENVIRONMENT.get_or_init(|| {
        let path = find_library(explicit)?;
        let env = ort::init_from(&path)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?
            .with_name("crmscore")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", path.display()))?;
        tracing::info!(library = %path.display(), "ONNX Runtime loaded");
        Ok((env, path))
    });
    match result {
        Ok((env, _)) => Ok(env),
        Err(message) => Err(ModelError::Library(message.clone())),
    }
}

/// The library file the environment was loaded from, once it is.
pub fn library_path() -> Option<&'static Path> {
    match ENVIRONMENT.get() {
        Some(Ok((_, path))) => Some(path.as_path()),
        _ => None,
    }
}

/// Resolution order: the flag or `CRMSCORE_ONNXRUNTIME_LIB`, `ORT_DYLIB_PATH`, `.onnxruntime/lib` beside the
/// executable (or up to three folders above it, covering `target/release`), the current folder, the system paths.
fn find_library(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return existing(path).ok_or_else(|| {
            format!(
                "--onnxruntime-lib {} does not exist; run scripts/setup-onnxruntime.sh to fetch ONNX Runtime",
                path.display()
            )
        });
    }
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return existing(&path).ok_or_else(|| {
            format!(
                "ORT_DYLIB_PATH={} does not exist; run scripts/setup-onnxruntime.sh to fetch ONNX Runtime",
                path.display()
            )
        });
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(
            exe.ancestors()
                .skip(1)
                .take(4)
                .map(|d| d.join(LOCAL_DIR).join(LIB_NAME)),
        );
    }
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join(LOCAL_DIR).join(LIB_NAME));
    }
    if let Some(found) = candidates.iter().find_map(|c| existing(c)) {
        return Ok(found);
    }
    system_library().ok_or_else(|| {
        format!(
            "ONNX Runtime ({LIB_NAME}) not found: looked in --onnxruntime-lib, ORT_DYLIB_PATH, {} and the system \
             library path. Run scripts/setup-onnxruntime.sh (it fetches the library from PyPI into {LOCAL_DIR}).",
            candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}

fn existing(path: &Path) -> Option<PathBuf> {
    path.is_file().then(|| path.to_path_buf())
}

/// The system loader's own search (ld.so.cache, LD_LIBRARY_PATH) is what `dlopen` of a bare name does.
fn system_library() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    dirs.extend(
        [
            "/usr/local/lib",
            "/usr/lib",
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib64",
        ]
        .map(PathBuf::from),
    );
    dirs.iter()
        .flat_map(|d| [d.join(LIB_NAME), d.join(format!("{LIB_NAME}.1"))])
        .find_map(|c| existing(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_missing_path_names_the_setup_script() {
        let err = find_library(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
        assert!(err.contains("scripts/setup-onnxruntime.sh"), "{err}");
        assert!(err.contains("/nonexistent/libonnxruntime.so"), "{err}");
    }
}
