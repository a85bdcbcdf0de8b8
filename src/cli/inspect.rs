//! `hjepa inspect`: verify a dataset and summarise it.

use std::path::PathBuf;

// The flags of `hjepa inspect` (its --help text is the doc comment on `Command::Inspect`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset folder.
    dataset: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args { dataset } = args;
    let d = crate::data::Dataset::open(&dataset)?;
    d.verify()?;
    let eps = d.episodes()?;
    let m = &d.manifest;
    let steps: usize = eps.iter().map(|e| e.action.len()).sum();
    let succ = eps.iter().filter(|e| e.success).count();
    println!(
        "{}: ok, scene {}, policy {:?}, {} / {} episodes in {} shards, {} steps, success {}/{}\nobservation state {:?}\nimage {:?}\nphysical state {:?}",
        dataset.display(), m.scene, m.policy, eps.len(), m.episodes, m.shards.len(), steps, succ, eps.len(),
        m.obs_state_names, m.image_shape, m.state_names
    );
    if (eps.len() as u64) < m.episodes {
        println!("incomplete: rerun the collect command to record the missing episodes");
    }
    Ok(())
}
