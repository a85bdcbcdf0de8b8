//! Checkpoints: the weights, the EMA target, the AdamW moments, the configuration and the
//! metadata in one folder, written atomically and read back exactly.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Device, Tensor};

use super::Trainer;
use crate::data::dataset::write_atomic;
use crate::error::InputError;
use crate::model::checkpoint::{load_exact, CheckpointMeta, Saved};
use crate::model::config::ModelConfig;

impl Trainer {
    /// Writes the checkpoint folder atomically: `checkpoint.tmp/` is filled, then swapped in.
    pub fn save(&self, run: &Path, meta: &CheckpointMeta) -> anyhow::Result<()> {
        let tmp = run.join("checkpoint.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        crate::error::create_dir_all(&tmp)?;
        self.vs.save(tmp.join("model.safetensors"))?;
        if let Some(t) = &self.target_vs {
            t.save(tmp.join("target.safetensors"))?;
        }
        let moments: Vec<(String, Tensor)> = self
            .moments
            .iter()
            .flat_map(|(n, (m, v))| {
                [
                    (format!("{n}.m"), m.shallow_clone()),
                    (format!("{n}.v"), v.shallow_clone()),
                ]
            })
            .collect();
        Tensor::write_safetensors(&moments, tmp.join("optimizer.safetensors"))?;
        std::fs::write(tmp.join("agent.toml"), toml::to_string_pretty(&self.agent)?)?;
        write_atomic(
            &tmp.join("meta.json"),
            serde_json::to_string_pretty(meta)?.as_bytes(),
        )?;
        for f in std::fs::read_dir(&tmp)? {
            std::fs::File::open(f?.path())?.sync_all()?;
        }
        let (cur, old) = (run.join("checkpoint"), run.join("checkpoint.old"));
        let _ = std::fs::remove_dir_all(&old);
        if cur.exists() {
            std::fs::rename(&cur, &old)?;
        }
        std::fs::rename(&tmp, &cur)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// Loads a run's checkpoint (or the previous one if a crash hit between the renames).
    /// Shapes and names must match the agent file exactly.
    pub fn load(
        run: &Path,
        agent: Option<&ModelConfig>,
        device: Device,
    ) -> Result<(Trainer, CheckpointMeta), InputError> {
        Trainer::load_with(run, agent, device, false)
    }

    /// Loads a run to continue training it. Unlike [`Trainer::load`], the `[critic]` table
    /// may differ from the checkpoint's: the critic is then refitted (it is fitted after
    /// training on the frozen encoder), without retraining the world model.
    pub fn load_to_resume(
        run: &Path,
        agent: &ModelConfig,
        device: Device,
    ) -> Result<(Trainer, CheckpointMeta), InputError> {
        Trainer::load_with(run, Some(agent), device, true)
    }

    /// [`Trainer::load`] and [`Trainer::load_to_resume`]: the model, its target and moments.
    fn load_with(
        run: &Path,
        agent: Option<&ModelConfig>,
        device: Device,
        allow_critic_change: bool,
    ) -> Result<(Trainer, CheckpointMeta), InputError> {
        let Saved {
            dir,
            meta,
            config: saved,
            refit_critic,
            skip,
        } = Saved::read(run, agent, allow_critic_change)?;
        let mut t = Trainer::new(saved, &meta.shapes, device);
        load_exact(&mut t.vs, &dir.join("model.safetensors"), skip)?;
        if let Some(tvs) = &mut t.target_vs {
            load_exact(tvs, &dir.join("target.safetensors"), skip)?;
        }
        let opt_path = dir.join("optimizer.safetensors");
        t.load_moments(&opt_path, !allow_critic_change, skip, device)?;
        t.step = meta.step;
        t.critic_fit = if refit_critic {
            None
        } else {
            meta.critic.clone()
        };
        Ok((t, meta))
    }

    /// Restores the AdamW moments of the trainable variables (but those under `skip`) from
    /// `opt_path`, which may be missing when the moments are `optional`.
    fn load_moments(
        &mut self,
        opt_path: &Path,
        optional: bool,
        skip: Option<&str>,
        device: Device,
    ) -> Result<(), InputError> {
        // Planning and probing need no Adam moments: a run shipped as its weights alone
        // (model.safetensors, meta.json, agent.toml) loads; resuming still needs them.
        let saved_moments: BTreeMap<String, Tensor> = if optional && !opt_path.exists() {
            BTreeMap::new()
        } else {
            Tensor::read_safetensors(opt_path)
                .map_err(|e| {
                    InputError::new(opt_path, "", format!("corrupt optimizer state: {e}"))
                })?
                .into_iter()
                .collect()
        };
        for (name, p) in self.named_trainable() {
            if skip.is_some_and(|prefix| name.starts_with(prefix)) {
                continue;
            }
            if let (Some(m), Some(v)) = (
                saved_moments.get(&format!("{name}.m")),
                saved_moments.get(&format!("{name}.v")),
            ) {
                if m.size() != p.size() || v.size() != p.size() {
                    return Err(InputError::new(
                        opt_path,
                        &name,
                        format!(
                            "moment shape {:?} differs from the weight's {:?}",
                            m.size(),
                            p.size()
                        ),
                    ));
                }
                self.moments
                    .insert(name, (m.to_device(device), v.to_device(device)));
            }
        }
        Ok(())
    }
}
