//! Software rasteriser for pixel observations (tiny-skia): no GPU, no window.
//!
//! Static geometry (background, walls, the goal) is drawn once per episode into a cached
//! layer; each frame copies that layer and draws only the moving bodies.

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
        }
    }

    /// Redraws the per-episode static layer: background, obstacles (with this episode's doors)
    /// and, when the spec asks, the goal.
    pub fn set_static_layer(&mut self, scene: &Scene, layout: &Layout) {
        let bg = self.spec.background;
        self.static_layer
            .fill(Color::from_rgba8(bg[0], bg[1], bg[2], 255));
        let wall = paint(self.spec.obstacle_color, self.spec.anti_alias);
        let t = self.transform;
        for p in &wall_polygons(scene, &layout.doors) {
            fill_polygon(&mut self.static_layer, p, &wall, t);
        }
        if self.spec.draw_goal {
            let goal = paint(self.spec.goal_color, self.spec.anti_alias);
            for p in &body_goal_polygons(scene, layout) {
                fill_polygon(&mut self.static_layer, p, &goal, t);
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
                );
            }
        }
    }

    /// Draws the current frame.
    pub fn render(&mut self, scene: &Scene, world: &World, _layout: &Layout) -> Image {
        self.frame
            .data_mut()
            .copy_from_slice(self.static_layer.data());
        let t = self.transform;
        for b in world.bodies() {
            let def = &scene.bodies[b.def];
            fill_shape(
                &mut self.frame,
                &def.shape,
                &world.body_pose(b),
                &paint(def.color, self.spec.anti_alias),
                t,
            );
        }
        let a = world.agent_position();
        fill_shape(
            &mut self.frame,
            &scene.agent.shape,
            &Pose2::new(a.0, a.1, 0.0),
            &paint(scene.agent.color, self.spec.anti_alias),
            t,
        );
        let mut rgb = Vec::with_capacity((self.spec.width * self.spec.height * 3) as usize);
        for px in self.frame.data().chunks_exact(4) {
            rgb.extend_from_slice(&px[..3]);
        }
        Image {
            width: self.spec.width,
            height: self.spec.height,
            rgb,
        }
    }
}

fn fill_shape(pm: &mut Pixmap, shape: &Shape, pose: &Pose2, paint: &Paint, t: Transform) {
    match shape {
        // Real circles, not the polygon approximation used for areas.
        Shape::Circle { radius } => {
            if let Some(path) = PathBuilder::from_circle(pose.x, pose.y, *radius) {
                pm.fill_path(&path, paint, FillRule::Winding, t, None);
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
                );
            }
        }
        _ => {
            for p in shape_polygons(shape, pose) {
                fill_polygon(pm, &p, paint, t);
            }
        }
    }
}

fn fill_polygon(pm: &mut Pixmap, poly: &[V2], paint: &Paint, t: Transform) {
    let mut pb = PathBuilder::new();
    pb.move_to(poly[0].0, poly[0].1);
    for p in &poly[1..] {
        pb.line_to(p.0, p.1);
    }
    pb.close();
    if let Some(path) = pb.finish() {
        pm.fill_path(&path, paint, FillRule::Winding, t, None);
    }
}
