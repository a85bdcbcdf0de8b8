//! `--device cuda`: refused with a clear error where libtorch sees no GPU; where it sees
//! one, a model trains there, plans there, and computes what it computes on the CPU.
//! `HJEPA_REQUIRE_CUDA=1` (the GPU machine's check) makes a missing GPU a failure instead
//! of a skip.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use std::path::{Path, PathBuf};

use hjepa::agent::AgentFile;
use hjepa::model::cuda::cuda_available;
use hjepa::model::TrainedModel;

fn agent(dir: &Path, run: &Path) -> PathBuf {
    let text = include_str!("data/tiny_agent.toml").to_string()
        + &format!(
            "\n[planning]\ncheckpoint = {:?}\n[planning.planner]\nkind = \"mppi\"\nsamples = 64\nelites = 8\niterations = 2\nhorizon = 8\nreplan_every = 4\n",
            run.to_str().unwrap()
        );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn train(agent: &Path, data: &Path, out: &Path, device: &str) -> std::process::Output {
    common::bin()
        .arg("train")
        .arg("--agent")
        .arg(agent)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(["--steps", "8", "--device", device])
        .output()
        .unwrap()
}

fn gpu_present() -> bool {
    let present = cuda_available();
    if !present {
        assert!(
            std::env::var_os("HJEPA_REQUIRE_CUDA").is_none(),
            "HJEPA_REQUIRE_CUDA is set but libtorch sees no CUDA device"
        );
    }
    present
}

#[test]
fn a_device_libtorch_cannot_see_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (agent, data) = (
        agent(dir.path(), &run),
        common::collect_two_rooms(dir.path(), 20, 2),
    );
    // Without a GPU "cuda" is refused; with one, an index past the last GPU is.
    let device = if gpu_present() { "cuda:99" } else { "cuda" };
    let out = train(&agent, &data, &run, device);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(device) && err.contains("CUDA device"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!run.join("checkpoint").exists(), "nothing trained");
}

#[test]
fn on_a_gpu_a_model_trains_plans_and_computes_what_it_does_on_the_cpu() {
    if !gpu_present() {
        eprintln!("skipping: libtorch sees no CUDA device");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (agent_path, data) = (
        agent(dir.path(), &run),
        common::collect_two_rooms(dir.path(), 20, 2),
    );
    common::assert_ok(&train(&agent_path, &data, &run, "cuda"));
    // Planning on the GPU: an eval runs to the end and writes every episode.
    let rows = dir.path().join("eval.jsonl");
    let out = common::bin()
        .arg("eval")
        .arg("--agent")
        .arg(&agent_path)
        .args(["--episodes", "2", "--device", "cuda", "--no-random-floor"])
        .arg("--out")
        .arg(&rows)
        .output()
        .unwrap();
    common::assert_ok(&out);
    assert_eq!(std::fs::read_to_string(&rows).unwrap().lines().count(), 2);
    // The GPU-trained checkpoint loads on both devices and gives the same latents.
    let config = AgentFile::load(&agent_path).unwrap().model;
    let on = |d| TrainedModel::load(&run, Some(&config), d).unwrap();
    let (cpu, gpu) = (on(tch::Device::Cpu), on(tch::Device::Cuda(0)));
    // Images as the sandbox gives them: [N, height, width, RGB] bytes.
    let obs = tch::Tensor::randint(256, [4, 64, 64, 3], (tch::Kind::Uint8, tch::Device::Cpu));
    let z_cpu = tch::no_grad(|| cpu.model.encode(&obs));
    let z_gpu = tch::no_grad(|| gpu.model.encode(&obs.to_device(tch::Device::Cuda(0))))
        .to_device(tch::Device::Cpu);
    let err = (&z_cpu - &z_gpu).abs().max().double_value(&[]);
    let scale = z_cpu.abs().max().double_value(&[]).max(1e-6);
    assert!(
        err / scale < 1e-3,
        "CPU and GPU latents differ by {err} (scale {scale})"
    );
}
