//! CUDA from the PyPI libtorch. torch-sys links `libtorch_cuda.so`, but no symbol of ours
//! comes from it, so the linker's `--as-needed` drops it and libtorch never registers its
//! CUDA backend: `tch::Cuda::is_available()` says false on a GPU machine. Linking it with
//! `--no-as-needed` would load it (and its CUDA libraries, ~350 MB, ~0.25 s) in every
//! process, CPU runs and each test included, so it is loaded here on demand instead.

use std::sync::OnceLock;

use crate::device::Device;

/// Loads libtorch's CUDA backend once (found through the binary's rpath to torch/lib, or
/// LD_LIBRARY_PATH); `Err` says why it could not be, e.g. a CPU-only libtorch.
pub fn load_cuda_backend() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let name = c"libtorch_cuda.so";
            // SAFETY: a constant, NUL-terminated name; the handle is kept for the
            // process's lifetime (never dlclose'd), as libtorch's static registrations need.
            let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            if handle.is_null() {
                // SAFETY: dlerror returns a NUL-terminated string or null.
                let why = unsafe {
                    let e = libc::dlerror();
                    if e.is_null() {
                        "unknown error".to_string()
                    } else {
                        std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
                    }
                };
                Err(format!("could not load libtorch_cuda.so: {why}"))
            } else {
                Ok(())
            }
        })
        .clone()
}

/// Whether libtorch sees a CUDA device, after loading its CUDA backend (must precede
/// the first CUDA query: libtorch caches the answer).
pub fn cuda_available() -> bool {
    load_cuda_backend().is_ok() && tch::Cuda::is_available()
}

/// The libtorch device for `device`; `Err` says why it cannot be used here (no CUDA device,
/// or fewer than asked for).
pub fn tch_device(device: Device) -> Result<tch::Device, String> {
    match device {
        Device::Cpu => Ok(tch::Device::Cpu),
        Device::Cuda(i) => {
            if !cuda_available() {
                return Err(format!(
                    "{device:?} asked for, but libtorch sees no CUDA device",
                    device = device.to_string()
                ));
            }
            let count = tch::Cuda::device_count() as usize;
            if i >= count {
                return Err(format!(
                    "\"{device}\" asked for, but libtorch sees {count} CUDA device(s)"
                ));
            }
            Ok(tch::Device::Cuda(i))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_venvs_libtorch_has_a_cuda_backend_to_load() {
        // The PyPI torch the Makefile installs is the CUDA build: the backend must load
        // even on a machine without a GPU (it then reports no device).
        super::load_cuda_backend().expect("libtorch_cuda.so loads");
        let _ = super::cuda_available();
    }
}
