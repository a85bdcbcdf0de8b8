//! The compute device a model runs on, as agent files (`[train] device`), experiment files
//! and `--device` name it: `cpu`, `cuda` (the first GPU) or `cuda:N`. Read once into a
//! [`Device`]; whether libtorch can use it is asked where a model is built
//! (`model::cuda::tch_device`). Torch-free, so the command line parses it in every build.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// `cpu`, `cuda` or `cuda:N`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Device {
    #[default]
    Cpu,
    /// A CUDA GPU by index (`cuda` is `cuda:0`).
    Cuda(usize),
}

/// The forms a device name may take, for error messages.
const ALLOWED: [&str; 3] = ["cpu", "cuda", "cuda:N"];

impl FromStr for Device {
    type Err = ConfigError;

    fn from_str(name: &str) -> Result<Device, ConfigError> {
        let index = name.strip_prefix("cuda:").map(str::parse::<usize>);
        match (name, index) {
            ("cpu", _) => Ok(Device::Cpu),
            ("cuda", _) => Ok(Device::Cuda(0)),
            (_, Some(Ok(i))) => Ok(Device::Cuda(i)),
            _ => Err(ConfigError::NotOneOf {
                key: "device".into(),
                allowed: ALLOWED.iter().map(|s| s.to_string()).collect(),
                found: name.to_string(),
            }),
        }
    }
}

impl TryFrom<String> for Device {
    type Error = ConfigError;
    fn try_from(name: String) -> Result<Device, ConfigError> {
        name.parse()
    }
}

impl From<Device> for String {
    fn from(d: Device) -> String {
        d.to_string()
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            // Written as it was before indices existed, so saved configurations (and batch
            // run ids made from them) read the same.
            Device::Cuda(0) => f.write_str("cuda"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_print_back() {
        for (name, device) in [
            ("cpu", Device::Cpu),
            ("cuda", Device::Cuda(0)),
            ("cuda:3", Device::Cuda(3)),
        ] {
            assert_eq!(name.parse::<Device>().unwrap(), device);
            assert_eq!(device.to_string(), name);
        }
        assert_eq!("cuda:0".parse::<Device>().unwrap().to_string(), "cuda");
    }

    #[test]
    fn other_names_are_refused_with_the_allowed_forms() {
        for bad in ["gpu", "CPU", "cuda:", "cuda:-1", "cuda:x", ""] {
            let e = bad.parse::<Device>().unwrap_err();
            assert_eq!(e.key(), "device");
            assert!(e.to_string().contains("cpu, cuda, cuda:N"), "{e}");
        }
    }
}
