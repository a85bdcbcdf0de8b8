//! `hjepa record`: one episode of an agent (or a scripted policy) drawn headless by the
//! software rasteriser at a viewing size, written as an animated GIF and optionally as PNG
//! frames and a recording that `hjepa replay` and `hjepa view --replay` play back.

use std::path::PathBuf;

use crate::data::episodes::episode_seed;
use crate::data::recording::{write_gif, RecordedEpisode, Recording};
use crate::data::PolicyKind;
use crate::run::actors::{choose_agent, ActorSpec};
use crate::run::episode::{run_episode_observed, EvalActor};
use crate::sim::render::Renderer;
use crate::sim::{Env, Image, Scene};

#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// Scene, agent file (without one, `policy` acts), oracle, device.
    pub actor: ActorSpec,
    pub policy: PolicyKind,
    pub seed: u64,
    /// Which episode of the seeded sequence (the same pairs as `hjepa eval --seed`).
    pub episode: u64,
    pub gif: PathBuf,
    pub frames: Option<PathBuf>,
    pub recording: Option<PathBuf>,
    /// Longest side of the frames in pixels.
    pub size: u32,
}

#[derive(Debug)]
pub struct RecordSummary {
    pub scene: String,
    pub actor: String,
    pub success: bool,
    pub steps: u32,
    pub frames: usize,
}

/// The scene's image style (or the default one) at `size` pixels on the longer side, goal
/// drawn.
pub fn view_renderer(scene: &Scene, size: u32) -> Renderer {
    let (w, h) = scene.world.size;
    let scale = size as f32 / w.max(h);
    let mut spec = scene
        .observation
        .image
        .clone()
        .unwrap_or_else(|| crate::sim::scene::ImageSpec::default_with_size(1, 1));
    spec.width = ((w * scale).round() as u32).max(1);
    spec.height = ((h * scale).round() as u32).max(1);
    spec.draw_goal = true;
    spec.anti_alias = true;
    Renderer::new(scene, &spec)
}

pub fn record(opts: &RecordOptions) -> anyhow::Result<RecordSummary> {
    anyhow::ensure!(
        opts.size >= 16,
        "--size: expected at least 16 pixels, got {}",
        opts.size
    );
    let choice = choose_agent(&opts.actor)?;
    let (scene_path, scene) = (choice.scene_path, choice.scene);
    let (mut actor, name) = choice.actor.unwrap_or_else(|| {
        (
            EvalActor::scripted(opts.policy, 0.3),
            format!("{:?}", opts.policy).to_lowercase(),
        )
    });
    let mut renderer = view_renderer(&scene, opts.size);
    let mut frames: Vec<Image> = Vec::new();
    let mut env = Env::new(scene.clone());
    let seed = episode_seed(opts.seed, opts.episode);
    let ep = run_episode_observed(&mut actor, &mut env, opts.episode, seed, |env, first| {
        if first {
            renderer.set_static_layer(env.episode_scene(), env.layout());
        }
        frames.push(renderer.render(env.episode_scene(), env.world(), env.layout()));
    })?;
    let delay = (100.0 * scene.control_dt() * scene.physics.frameskip as f32).round() as u16;
    if let Some(parent) = opts.gif.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::error::create_dir_all(parent)?;
    }
    write_gif(&opts.gif, &frames, delay)?;
    if let Some(dir) = &opts.frames {
        crate::error::create_dir_all(dir)?;
        for (t, f) in frames.iter().enumerate() {
            f.save_png(&dir.join(format!("frame_{t:04}.png")))?;
        }
    }
    if let Some(path) = &opts.recording {
        let mut r = Recording::new(&name, &scene_path, Default::default())?;
        r.episodes.push(RecordedEpisode::from(&ep));
        r.save(path)?;
    }
    Ok(RecordSummary {
        scene: scene.name.clone(),
        actor: name,
        success: ep.success,
        steps: ep.steps,
        frames: frames.len(),
    })
}
