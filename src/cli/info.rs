//! `hjepa info`: versions, and what libtorch sees (threads, CUDA devices).

// `hjepa info` takes no flags: `Command::Info` is a unit variant.
pub fn run() -> anyhow::Result<()> {
    // A real op through libtorch, not just a symbol lookup.
    let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    let sum = t.sum(tch::Kind::Float).double_value(&[]);
    println!("hjepa {}", env!("CARGO_PKG_VERSION"));
    println!(
        "libtorch: ok (sum of [1, 2, 3] = {sum}), {} intra-op threads",
        tch::get_num_threads()
    );
    let backend = crate::model::cuda::load_cuda_backend();
    println!(
        "cuda: available {}, {} device(s){}",
        crate::model::cuda::cuda_available(),
        tch::Cuda::device_count(),
        backend.err().map(|e| format!(" ({e})")).unwrap_or_default()
    );
    Ok(())
}
