//! Software rasteriser for pixel observations (tiny-skia): no GPU, no window.
//!
//! Static geometry (background, walls, the goal) is drawn once per episode into a cached
//! layer; each frame restores from that layer only the pixels the previous frame's moving
//! bodies covered, draws the moving bodies, and converts to RGB only where pixels changed
//! (the RGB copy of the frame is kept between frames). The pixels are exactly those of
//! copying the whole layer and converting the whole frame.

use tiny_skia::{Color, FillRule, Paint, PathBuilder, Pixmap, Transform};

use super::geometry::{body_goal_polygons, has_agent_goal, shape_polygons, wall_polygons, Pose2};
use super::scene::{ImageSpec, Scene, Shape, V2};
use super::world::{Layout, World};

/// An RGB image, row-major, top row first, 3 bytes per pixel.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Image {
    /// The pixel at column `x`, row `y` (row 0 at the top).
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = 3 * (y * self.width + x) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Writes the image as a PNG file.
    pub fn save_png(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let mut pm =
            Pixmap::new(self.width, self.height).ok_or_else(|| anyhow::anyhow!("empty image"))?;
        for (dst, src) in pm
            .data_mut()
            .chunks_exact_mut(4)
            .zip(self.rgb.chunks_exact(3))
        {
            dst.copy_from_slice(&[src[0], src[1], src[2], 255]);
        }
        pm.save_png(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot write PNG: {e}", path.display()))
    }
}

pub struct Renderer {
    spec: ImageSpec,
    /// World-to-pixel transform (y flipped: world y up, image y down).
    transform: Transform,
    static_layer: Pixmap,
    frame: Pixmap,
    /// `frame` as RGB, up to date everywhere.
    rgb: Vec<u8>,
    /// Where the last frame drew moving bodies (pixels that may differ from the static
    /// layer); the whole frame after a new static layer.
    dirty: PixelRect,
}

/// A pixel rectangle, columns `x0..x1`, rows `y0..y1` (empty when `x0 >= x1` or `y0 >= y1`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct PixelRect {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

impl PixelRect {
    const EMPTY: PixelRect = PixelRect {
        x0: usize::MAX,
        y0: usize::MAX,
        x1: 0,
        y1: 0,
    };

    fn full(w: u32, h: u32) -> PixelRect {
        PixelRect {
            x0: 0,
            y0: 0,
            x1: w as usize,
            y1: h as usize,
        }
    }

    fn is_empty(&self) -> bool {
        self.x0 >= self.x1 || self.y0 >= self.y1
    }

    fn union(self, o: PixelRect) -> PixelRect {
        if self.is_empty() {
            return o;
        }
        if o.is_empty() {
            return self;
        }
        PixelRect {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }
}

/// The pixels a fill of `path` under `t` (a scale and a flip, as `Renderer`'s) may touch: its
/// bounds rounded out, plus 2 pixels for anti-aliasing, within the `w` x `h` image; the whole
/// image when the bounds are not finite.
fn touched(path: &tiny_skia::Path, t: Transform, w: u32, h: u32) -> PixelRect {
    if t.kx != 0.0 || t.ky != 0.0 {
        return PixelRect::full(w, h);
    }
    let b = path.bounds();
    let xs = [t.sx * b.left() + t.tx, t.sx * b.right() + t.tx];
    let ys = [t.sy * b.top() + t.ty, t.sy * b.bottom() + t.ty];
    if !xs.iter().chain(&ys).all(|v| v.is_finite()) {
        return PixelRect::full(w, h);
    }
    let clamp = |v: f32, max: u32| (v.max(0.0) as usize).min(max as usize);
    PixelRect {
        x0: clamp(xs[0].min(xs[1]).floor() - 2.0, w),
        x1: clamp(xs[0].max(xs[1]).ceil() + 2.0, w),
        y0: clamp(ys[0].min(ys[1]).floor() - 2.0, h),
        y1: clamp(ys[0].max(ys[1]).ceil() + 2.0, h),
    }
}

fn paint(rgb: [u8; 3], anti_alias: bool) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color(Color::from_rgba8(rgb[0], rgb[1], rgb[2], 255));
    p.anti_alias = anti_alias;
    p
}

impl Renderer {
    pub fn new(scene: &Scene, spec: &ImageSpec) -> Renderer {
        let (w, h) = scene.world.size;
        let (sx, sy) = (spec.width as f32 / w, spec.height as f32 / h);
        let transform = Transform::from_row(sx, 0.0, 0.0, -sy, 0.0, spec.height as f32);
        let blank = Pixmap::new(spec.width, spec.height).expect("validated image size");
        Renderer {
            spec: spec.clone(),
            transform,
            static_layer: blank.clone(),
            frame: blank,
            rgb: vec![0; (spec.width * spec.height * 3) as usize],
            dirty: PixelRect::full(spec.width, spec.height),
        }
    }

    /// Redraws the per-episode static layer: background, obstacles (with this episode's doors)
    /// and, when the spec asks, the goal.
    pub fn set_static_layer(&mut self, scene: &Scene, layout: &Layout) {
        self.dirty = PixelRect::full(self.spec.width, self.spec.height);
        let mut ignored = PixelRect::EMPTY;
        // The colours of this episode's scene (factors of variation may change them).
        let colors = scene.observation.image.as_ref().unwrap_or(&self.spec);
        let bg = colors.background;
        self.static_layer
            .fill(Color::from_rgba8(bg[0], bg[1], bg[2], 255));
        let wall = paint(colors.obstacle_color, self.spec.anti_alias);
        let t = self.transform;
        for p in &wall_polygons(scene, &layout.doors) {
            fill_polygon(&mut self.static_layer, p, &wall, t, &mut ignored);
        }
        if self.spec.draw_goal {
            let goal = paint(colors.goal_color, self.spec.anti_alias);
            for p in &body_goal_polygons(scene, layout) {
                fill_polygon(&mut self.static_layer, p, &goal, t, &mut ignored);
            }
            // The agent's goal as an exact circle (observations were always drawn this way).
            if has_agent_goal(scene) {
                let g = layout.agent_goal;
                let r = scene.agent.shape.bounding_radius();
                fill_shape(
                    &mut self.static_layer,
                    &Shape::Circle { radius: r },
                    &Pose2::new(g.0, g.1, 0.0),
                    &goal,
                    t,
                    &mut ignored,
                );
            }
        }
    }

    /// Draws the current frame.
    pub fn render(&mut self, scene: &Scene, world: &World, _layout: &Layout) -> Image {
        let (w, h) = (self.spec.width, self.spec.height);
        let before = self.dirty;
        copy_rect(&mut self.frame, &self.static_layer, before);
        let t = self.transform;
        let mut drawn = PixelRect::EMPTY;
        for b in world.bodies() {
            let def = &scene.bodies[b.def];
            fill_shape(
                &mut self.frame,
                &def.shape,
                &world.body_pose(b),
                &paint(def.color, self.spec.anti_alias),
                t,
                &mut drawn,
            );
        }
        let a = world.agent_position();
        fill_shape(
            &mut self.frame,
            &scene.agent.shape,
            &Pose2::new(a.0, a.1, 0.0),
            &paint(scene.agent.color, self.spec.anti_alias),
            t,
            &mut drawn,
        );
        // Changed since the last frame: what it drew (now restored) and what this one drew.
        to_rgb(&mut self.rgb, &self.frame, before.union(drawn));
        self.dirty = drawn;
        Image {
            width: w,
            height: h,
            rgb: self.rgb.clone(),
        }
    }
}

/// Copies `r`'s pixels of `src` into `dst` (same size).
fn copy_rect(dst: &mut Pixmap, src: &Pixmap, r: PixelRect) {
    if r.is_empty() {
        return;
    }
    let stride = 4 * dst.width() as usize;
    let (a, b) = (4 * r.x0, 4 * r.x1);
    let src = src.data();
    for (d, s) in dst
        .data_mut()
        .chunks_exact_mut(stride)
        .zip(src.chunks_exact(stride))
        .take(r.y1)
        .skip(r.y0)
    {
        d[a..b].copy_from_slice(&s[a..b]);
    }
}

/// Writes `r`'s pixels of `frame` (RGBA, opaque) into `rgb` (RGB, same size).
fn to_rgb(rgb: &mut [u8], frame: &Pixmap, r: PixelRect) {
    if r.is_empty() {
        return;
    }
    let w = frame.width() as usize;
    for (d, s) in rgb
        .chunks_exact_mut(3 * w)
        .zip(frame.data().chunks_exact(4 * w))
        .take(r.y1)
        .skip(r.y0)
    {
        for (d, s) in d[3 * r.x0..3 * r.x1]
            .chunks_exact_mut(3)
            .zip(s[4 * r.x0..4 * r.x1].chunks_exact(4))
        {
            d.copy_from_slice(&s[..3]);
        }
    }
}

fn fill_shape(
    pm: &mut Pixmap,
    shape: &Shape,
    pose: &Pose2,
    paint: &Paint,
    t: Transform,
    drawn: &mut PixelRect,
) {
    match shape {
        // Real circles, not the polygon approximation used for areas.
        Shape::Circle { radius } => {
            if let Some(path) = PathBuilder::from_circle(pose.x, pose.y, *radius) {
                fill(pm, &path, paint, t, drawn);
            }
        }
        Shape::Compound { parts } => {
            for p in parts {
                fill_shape(
                    pm,
                    &p.shape,
                    &pose.compose(&Pose2::new(p.offset.0, p.offset.1, p.angle)),
                    paint,
                    t,
                    drawn,
                );
            }
        }
        _ => {
            for p in shape_polygons(shape, pose) {
                fill_polygon(pm, &p, paint, t, drawn);
            }
        }
    }
}

fn fill_polygon(pm: &mut Pixmap, poly: &[V2], paint: &Paint, t: Transform, drawn: &mut PixelRect) {
    let mut pb = PathBuilder::new();
    pb.move_to(poly[0].0, poly[0].1);
    for p in &poly[1..] {
        pb.line_to(p.0, p.1);
    }
    pb.close();
    if let Some(path) = pb.finish() {
        fill(pm, &path, paint, t, drawn);
    }
}

/// Fills `path`, adding the pixels it may touch to `drawn`.
fn fill(
    pm: &mut Pixmap,
    path: &tiny_skia::Path,
    paint: &Paint,
    t: Transform,
    drawn: &mut PixelRect,
) {
    *drawn = drawn.union(touched(path, t, pm.width(), pm.height()));
    pm.fill_path(path, paint, FillRule::Winding, t, None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Env;
    use rand::{Rng, SeedableRng};
    use std::sync::Arc;

    /// The renderer redraws only what changed since its last frame; every pixel observation
    /// must still equal a full redraw by a fresh renderer, across steps, resets and the goal
    /// frames drawn in between (which move the bodies and back).
    #[test]
    fn incremental_frames_equal_full_redraws() {
        for name in ["push_t", "two_rooms", "wall"] {
            let path = Scene::resolve_path(name);
            let scene = Arc::new(Scene::load(&path).unwrap());
            let spec = scene.observation.image.clone().expect("a pixel scene");
            let (lo, hi) = (scene.agent.action.low, scene.agent.action.high);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let mut env = Env::new(scene.clone());
            for episode in 0..3 {
                let mut obs = env.reset(episode);
                for t in 0..40 {
                    let mut fresh = Renderer::new(&scene, &spec);
                    fresh.set_static_layer(&scene, env.layout());
                    let full = fresh.render(&scene, env.world(), env.layout());
                    assert!(
                        obs.image.as_ref().unwrap().rgb == full.rgb,
                        "{name}: episode {episode}, step {t}: the frame differs from a full redraw"
                    );
                    if t % 7 == 3 {
                        let _ = env.goal_observation();
                    }
                    let a = [rng.random_range(lo.0..=hi.0), rng.random_range(lo.1..=hi.1)];
                    obs = env.step(&a).unwrap().observation;
                }
            }
        }
    }
}
