//! Episode recordings: what `hjepa eval --record` saves and `hjepa replay` plays back. A
//! recording holds the scene file's text, each episode's seed and its actions; because the
//! sandbox is deterministic, replaying them reproduces every frame bit for bit (and replay
//! checks that the outcome matches), so recordings stay small and need no pixels.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::data::dataset::write_atomic;
use crate::error::InputError;
use crate::sim::{Env, Layout, Observation, Scene};

/// Version 2 added episode starts and protocol overrides, version 3 a digest of the state
/// after each step; older files still load (their replays compare outcomes only).
pub const RECORDING_FORMAT: &str = "hjepa-recording/3";
const OLDER_FORMATS: [&str; 2] = ["hjepa-recording/1", "hjepa-recording/2"];

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordedEpisode {
    pub index: u64,
    pub seed: u64,
    pub success: bool,
    pub steps: u32,
    pub actions: Vec<[f32; 2]>,
    /// The episode's start and goal when they were not drawn from `seed` (goals from a
    /// dataset, `hjepa eval --goals-from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Layout>,
    /// [`Env::state_digest`] after each step (empty in recordings before version 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state_digests: Vec<u32>,
    /// The values the scene's factors of variation took (drawn from `seed`; kept to read).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub factors: crate::sim::factors::Drawn,
}

impl RecordedEpisode {
    /// Resets `env` to where this episode started.
    pub fn reset(&self, env: &mut Env) -> Observation {
        match &self.start {
            Some(layout) => env.reset_to(layout.clone()),
            None => env.reset(self.seed),
        }
    }
}

/// How an evaluation changed the scene file's episodes (`hjepa eval --max-steps`,
/// `--success`); a replay applies the same.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProtocolOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<String>,
    /// `--vary`'s factors of variation, set over the scene's.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vary: std::collections::BTreeMap<String, crate::sim::factors::Factor>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    pub format: String,
    /// Who acted (agent file name, `oracle`, a policy).
    pub actor: String,
    pub scene_file: PathBuf,
    /// The scene file's text at recording time: replays do not depend on later edits.
    pub scene_ron: String,
    /// Applied to the scene above before replaying.
    #[serde(default, skip_serializing_if = "is_default")]
    pub overrides: ProtocolOverrides,
    pub episodes: Vec<RecordedEpisode>,
}

fn is_default(o: &ProtocolOverrides) -> bool {
    *o == ProtocolOverrides::default()
}

impl Recording {
    pub fn new(
        actor: &str,
        scene_file: &Path,
        overrides: ProtocolOverrides,
    ) -> anyhow::Result<Recording> {
        Ok(Recording {
            overrides,
            format: RECORDING_FORMAT.into(),
            actor: actor.into(),
            scene_file: scene_file.to_path_buf(),
            scene_ron: crate::sim::shipped::read(scene_file, crate::sim::shipped::Kind::Scene)
                .map_err(|e| anyhow::anyhow!("{}: {e}", scene_file.display()))?,
            episodes: Vec::new(),
        })
    }

    /// Written atomically (temporary file, sync, rename).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        write_atomic(path, serde_json::to_string(self)?.as_bytes())
    }

    pub fn load(path: &Path) -> Result<Recording, InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::new(path, "", format!("cannot read recording: {e}")))?;
        let r: Recording = serde_json::from_str(&text).map_err(|e| {
            InputError::new(
                path,
                format!("line {}, column {}", e.line(), e.column()),
                format!("not a valid recording: {e}"),
            )
        })?;
        if r.format != RECORDING_FORMAT && !OLDER_FORMATS.contains(&r.format.as_str()) {
            return Err(InputError::new(
                path,
                "format",
                format!("expected {RECORDING_FORMAT:?}, found {:?}", r.format),
            ));
        }
        Ok(r)
    }

    /// The scene as recorded (with the evaluation's overrides).
    pub fn scene(&self, path: &Path) -> Result<Arc<Scene>, InputError> {
        let scene = Scene::parse(&self.scene_ron, &self.scene_file).map_err(|e| {
            InputError::new(
                path,
                "scene_ron",
                format!("the embedded scene does not load: {e}"),
            )
        })?;
        let scene = crate::sim::scene::eval_scene(
            scene,
            path,
            self.overrides.max_steps,
            self.overrides.success.as_deref(),
        )?;
        let vary: Vec<_> = self.overrides.vary.clone().into_iter().collect();
        let scene = crate::sim::factors::vary_scene(scene, &vary)?;
        for (i, ep) in self.episodes.iter().enumerate() {
            if let Some(layout) = &ep.start {
                crate::sim::env::check_layout(&scene, layout)
                    .map_err(|e| InputError::new(path, format!("episodes[{i}].start"), e))?;
            }
        }
        Ok(Arc::new(scene))
    }
}

/// What a replay found for one episode.
#[derive(Clone, Debug)]
pub struct Replayed {
    pub index: u64,
    pub steps: u32,
    pub success: bool,
    /// Same outcome and length as recorded, and the same state after every step.
    pub matches: bool,
    /// The first step (from 1) after which the state differs from the recording's digest.
    pub first_difference: Option<usize>,
}

/// Where to write one replayed episode's frames.
#[derive(Clone, Debug, Default)]
pub struct FrameOutput {
    /// Frames as `frame_NNNN.png`.
    pub png_dir: Option<PathBuf>,
    /// An animated GIF at the scene's real-time rate.
    pub gif: Option<PathBuf>,
}

/// Writes frames to a GIF at `delay_cs` hundredths of a second each, atomically.
pub fn write_gif(path: &Path, frames: &[crate::sim::Image], delay_cs: u16) -> anyhow::Result<()> {
    let first = frames
        .first()
        .ok_or_else(|| anyhow::anyhow!("no frames to write"))?;
    let mut bytes = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut bytes, first.width as u16, first.height as u16, &[])?;
        enc.set_repeat(gif::Repeat::Infinite)?;
        for img in frames {
            let mut f =
                gif::Frame::from_rgb_speed(img.width as u16, img.height as u16, &img.rgb, 10);
            f.delay = delay_cs.max(1);
            enc.write_frame(&f)?;
        }
    }
    write_atomic(path, &bytes)
}

/// Refuses frames or a GIF of an episode the recording does not hold.
fn check_episode_to_draw(
    rec: &Recording,
    path: &Path,
    frames_of: Option<u64>,
    frames: &FrameOutput,
) -> anyhow::Result<()> {
    if let Some(i) = frames_of.filter(|_| frames.png_dir.is_some() || frames.gif.is_some()) {
        if !rec.episodes.iter().any(|e| e.index == i) {
            let have: Vec<u64> = rec.episodes.iter().map(|e| e.index).collect();
            return Err(InputError::new(
                path,
                "episodes",
                format!("no episode {i} to draw; the recording has {have:?}"),
            )
            .into());
        }
    }
    Ok(())
}

/// Replays episodes; writes the frames of episode `frames_of` as `frames` asks.
pub fn replay(
    path: &Path,
    frames_of: Option<u64>,
    frames: &FrameOutput,
) -> anyhow::Result<Vec<Replayed>> {
    let frames_dir = frames.png_dir.as_deref();
    let mut gif_frames: Vec<crate::sim::Image> = Vec::new();
    let rec = Recording::load(path)?;
    check_episode_to_draw(&rec, path, frames_of, frames)?;
    let scene = rec.scene(path)?;
    let mut env = Env::new(scene.clone());
    let mut out = Vec::new();
    for ep in &rec.episodes {
        let this_one = frames_of == Some(ep.index);
        let want_frames = frames_dir.filter(|_| this_one);
        if let Some(dir) = want_frames {
            crate::error::create_dir_all(dir)?;
        }
        let mut obs = ep.reset(&mut env);
        let (mut steps, mut success, mut first_difference) = (0, false, None);
        for (t, a) in ep.actions.iter().enumerate() {
            if let (true, Some(_), Some(img)) = (this_one, &frames.gif, &obs.image) {
                gif_frames.push(img.clone());
            }
            if let Some(dir) = want_frames {
                let img = obs
                    .image
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("scene {} renders no images", scene.name))?;
                img.save_png(&dir.join(format!("frame_{t:04}.png")))?;
            }
            let step = env.step(a).map_err(|e| {
                InputError::new(
                    path,
                    format!("episodes[{}].actions[{t}]", ep.index),
                    e.to_string(),
                )
            })?;
            obs = step.observation;
            if first_difference.is_none()
                && ep
                    .state_digests
                    .get(t)
                    .is_some_and(|&d| d != env.state_digest())
            {
                first_difference = Some(t + 1);
            }
            steps = step.info.steps;
            success = step.info.success;
            if step.terminated || step.truncated {
                break;
            }
        }
        if let Some(dir) = want_frames {
            if let Some(img) = &obs.image {
                img.save_png(&dir.join(format!("frame_{:04}.png", ep.actions.len())))?;
            }
        }
        if let (true, Some(gif_path)) = (this_one, &frames.gif) {
            let img = obs
                .image
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("scene {} renders no images", scene.name))?;
            gif_frames.push(img.clone());
            let delay =
                (100.0 * scene.control_dt() * scene.physics.frameskip as f32).round() as u16;
            write_gif(gif_path, &gif_frames, delay)?;
        }
        out.push(Replayed {
            index: ep.index,
            steps,
            success,
            matches: success == ep.success && steps == ep.steps && first_difference.is_none(),
            first_difference,
        });
    }
    Ok(out)
}
