//! ONNX Runtime's CUDA execution provider: its options, the check that its libraries load, and a start-up error
//! that names what is missing (provider library, CUDA or cuDNN library, GPU, driver) instead of ORT's raw text.

use std::path::Path;

use clap::ValueEnum;
use ort::ep::{self, ArenaExtendStrategy, ExecutionProvider};
use ort::session::Session;
use ort::session::builder::SessionBuilder;

use super::runtime;
use crate::config::Device;

/// How the CUDA provider is configured; one value for every model of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaOptions {
    /// GPU ordinal (`CUDA_VISIBLE_DEVICES` numbering).
    pub device_id: i32,
    /// Most bytes the provider's memory arena may take; 0 leaves it to the device's size.
    pub mem_limit_bytes: usize,
    /// How the arena grows when a batch needs more.
    pub arena: CudaArena,
    /// How cuDNN picks convolution kernels.
    pub conv_search: CudaConvSearch,
}

impl Default for CudaOptions {
    fn default() -> Self {
        CudaOptions {
            device_id: 0,
            mem_limit_bytes: 0,
            arena: CudaArena::SameAsRequested,
            conv_search: CudaConvSearch::Heuristic,
        }
    }
}

/// Growth of the CUDA memory arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CudaArena {
    /// Grow by what was asked: memory tracks the largest batch, so several models share a GPU predictably.
    SameAsRequested,
    /// Double each time (ONNX Runtime's default): fewer allocations, up to twice the memory.
    NextPowerOfTwo,
}

/// cuDNN convolution kernel search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CudaConvSearch {
    /// cuDNN's heuristics: no start-up benchmark; right for the graphs served here (GBDTs, MLPs, transformers).
    Heuristic,
    /// Benchmark every kernel on first use (ONNX Runtime's default): best for convolution-heavy graphs, slow first
    /// batches and extra memory.
    Exhaustive,
    /// cuDNN's default kernel.
    Default,
}

/// Registers CUDA on `builder`, first checking that every library it needs loads; the error names what is missing.
pub fn register(builder: &mut SessionBuilder, options: &CudaOptions) -> Result<(), String> {
    let lib_dir = runtime::library_path()
        .and_then(Path::parent)
        .ok_or("ONNX Runtime library path unknown")?;
    if !lib_dir.join("libonnxruntime_providers_cuda.so").is_file() {
        return Err(format!(
            "this ONNX Runtime build has no CUDA provider ({} lacks libonnxruntime_providers_cuda.so; \
             run scripts/setup-onnxruntime.sh --gpu)",
            lib_dir.display()
        ));
    }
    // The driver's library comes with the NVIDIA driver, never with a wheel: without it there is no GPU to use.
    if ort::util::preload_dylib("libcuda.so.1").is_err() {
        return Err("the NVIDIA driver library libcuda.so.1 is not found: this machine (or container) has no \
             NVIDIA driver or no GPU access (check nvidia-smi; in a container, the NVIDIA runtime)"
            .to_string());
    }
    let missing = preload(lib_dir);
    if !missing.is_empty() {
        return Err(format!(
            "CUDA 13 / cuDNN 9 libraries not found: {} (not beside ONNX Runtime in {} nor on the loader path; run \
             scripts/setup-onnxruntime.sh --gpu, or add the nvidia-* wheels' lib folders or a CUDA 13 install to \
             LD_LIBRARY_PATH)",
            missing.join(", "),
            lib_dir.display()
        ));
    }
    provider(options)
        .register(builder)
        .map_err(|e| format!("CUDA execution provider failed to register: {e}"))
}

/// y = Identity(x) over float[n] (scripts/make_cuda_probe.py): the smallest graph a CUDA session can be made for.
const PROBE: &[u8] = include_bytes!("cuda_probe.onnx");

/// Opens the probe graph on CUDA: whether sessions can run on the GPU here, or what stops them (provider or CUDA
/// libraries, driver, GPU), decided once before any model loads.
pub fn probe(options: &CudaOptions) -> Result<(), String> {
    let env = runtime::environment(None).map_err(|e| e.to_string())?;
    let mut builder = Session::builder(env).map_err(|e| e.to_string())?;
    register(&mut builder, options)?;
    builder
        .commit_from_memory(PROBE)
        .map(drop)
        .map_err(|e| explain_failure(&e.to_string()))
}

/// The device every model runs on (unless its manifest asks for the CPU), decided once at start: `cuda` must
/// work or the server does not start, naming why; `auto` takes CUDA when the probe passes, else logs why not and
/// runs on the CPU.
pub fn decide(asked: Device, options: &CudaOptions) -> Result<Device, String> {
    if asked == Device::Cpu {
        return Ok(Device::Cpu);
    }
    match probe(options) {
        Ok(()) => {
            tracing::info!(device_id = options.device_id, "models run on CUDA");
            Ok(Device::Cuda)
        }
        Err(reason) if asked == Device::Cuda => Err(format!(
            "--device cuda was asked for but CUDA cannot be used: {reason}"
        )),
        Err(reason) => {
            tracing::info!(%reason, "CUDA not used; running on CPU");
            Ok(Device::Cpu)
        }
    }
}

/// The provider with its options set. TF32 stays off so FP32 answers match the CPU's (1e-4); copies between host
/// and device run on the provider's own streams (ORT dropped the old default-stream option).
fn provider(options: &CudaOptions) -> ep::CUDA {
    let mut cuda = ep::CUDA::default()
        .with_device_id(options.device_id)
        .with_arena_extend_strategy(match options.arena {
            CudaArena::SameAsRequested => ArenaExtendStrategy::SameAsRequested,
            CudaArena::NextPowerOfTwo => ArenaExtendStrategy::NextPowerOfTwo,
        })
        .with_conv_algorithm_search(match options.conv_search {
            CudaConvSearch::Heuristic => ep::cuda::ConvAlgorithmSearch::Heuristic,
            CudaConvSearch::Exhaustive => ep::cuda::ConvAlgorithmSearch::Exhaustive,
            CudaConvSearch::Default => ep::cuda::ConvAlgorithmSearch::Default,
        })
        .with_tf32(false);
    if options.mem_limit_bytes > 0 {
        cuda = cuda.with_memory_limit(options.mem_limit_bytes);
    }
    cuda
}

/// Loads each CUDA and cuDNN library, from beside ONNX Runtime when it is there (setup-onnxruntime.sh --gpu), else
/// by name through the system loader; returns the names that load from neither.
fn preload(lib_dir: &Path) -> Vec<&'static str> {
    let mut missing = Vec::new();
    for lib in ep::cuda::CUDA_DYLIBS.iter().chain(ep::cuda::CUDNN_DYLIBS) {
        let local = lib_dir.join(lib);
        let loaded = if local.is_file() {
            ort::util::preload_dylib(&local).is_ok()
        } else {
            ort::util::preload_dylib(*lib).is_ok()
        };
        if !loaded {
            missing.push(*lib);
        }
    }
    missing
}

/// ONNX Runtime's text for a session that failed on CUDA, with what it means in front: no GPU, an old driver, or
/// a GPU already full.
pub fn explain_failure(error: &str) -> String {
    let hint = if error.contains("no CUDA-capable device") || error.contains("CUDA failure 100") {
        Some(
            "no GPU is visible to this process (check nvidia-smi, CUDA_VISIBLE_DEVICES and the container's GPU access)",
        )
    } else if error.contains("driver version is insufficient") || error.contains("CUDA failure 35")
    {
        Some(
            "the NVIDIA driver is older than the CUDA 13 runtime needs (update the driver to one for CUDA 13)",
        )
    } else if error.contains("invalid device ordinal") || error.contains("CUDA failure 101") {
        Some("--cuda-device-id names a GPU this process cannot see")
    } else if error.contains("out of memory") || error.contains("CUDA failure 2:") {
        Some(
            "the GPU has no room for this model (lower --cuda-mem-limit-mb elsewhere or free the GPU)",
        )
    } else {
        None
    };
    match hint {
        Some(hint) => format!("{hint}: {error}"),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_named() {
        let raw = "CUDA failure 100: no CUDA-capable device is detected ; GPU=0 ; expr=cudaSetDevice(info_.device_id);";
        assert!(explain_failure(raw).starts_with("no GPU is visible"));
        assert!(
            explain_failure(raw).ends_with(raw),
            "ORT's own text is kept"
        );
        let old = "CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version";
        assert!(explain_failure(old).starts_with("the NVIDIA driver is older"));
        assert!(
            explain_failure("CUDA failure 101: invalid device ordinal")
                .contains("--cuda-device-id")
        );
        assert_eq!(explain_failure("something else"), "something else");
    }

    #[test]
    fn defaults_are_deliberate() {
        let d = CudaOptions::default();
        assert_eq!(d.device_id, 0);
        assert_eq!(d.mem_limit_bytes, 0);
        assert_eq!(d.arena, CudaArena::SameAsRequested);
        assert_eq!(d.conv_search, CudaConvSearch::Heuristic);
    }
}
