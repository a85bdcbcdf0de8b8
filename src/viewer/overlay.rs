//! Gizmos over the arena: the path the agent expects (its remaining plan replayed in a
//! snapshot of the sandbox), the arena border (green once the goal is reached), the cost of
//! the episode so far, and the timeline of a replay.

use bevy::prelude::*;

use super::{plot_strip, Live};

pub struct OverlayPlugin;

impl Plugin for OverlayPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(
            Update,
            (
                draw_plan,
                draw_subgoals,
                draw_border,
                draw_cost_plot,
                draw_timeline,
            ),
        );
    }
}

pub const PLAN_COLOR: Color = Color::srgb(1.0, 0.55, 0.0);

fn v(p: (f32, f32)) -> Vec2 {
    Vec2::new(p.0, p.1)
}

fn draw_plan(live: Res<Live>, mut gizmos: Gizmos) {
    let plan = &live.latest.plan;
    if plan.len() < 2 {
        return;
    }
    gizmos.linestrip_2d(plan.iter().map(|p| v(*p)), PLAN_COLOR);
    let r = 0.012
        * live
            .latest
            .view
            .world_size
            .0
            .max(live.latest.view.world_size.1);
    for p in plan.iter().skip(1) {
        gizmos.circle_2d(v(*p), r, PLAN_COLOR);
    }
}

pub const SUBGOAL_COLOR: Color = Color::srgb(0.55, 0.2, 0.85);

/// The upper level's predicted abstract states (subgoal first), as the linear probe places
/// them: a chain from the agent, one ring per jump.
fn draw_subgoals(live: Res<Live>, mut gizmos: Gizmos) {
    let f = &live.latest;
    if f.subgoals.is_empty() {
        return;
    }
    let r = 0.02 * f.view.world_size.0.max(f.view.world_size.1);
    gizmos.linestrip_2d(
        std::iter::once(v(f.agent)).chain(f.subgoals.iter().map(|p| v(*p))),
        SUBGOAL_COLOR.with_alpha(0.5),
    );
    for (i, p) in f.subgoals.iter().enumerate() {
        let radius = if i == 0 { 1.6 * r } else { r };
        gizmos.circle_2d(v(*p), radius, SUBGOAL_COLOR);
    }
}

fn draw_border(live: Res<Live>, mut gizmos: Gizmos) {
    let (w, h) = live.latest.view.world_size;
    let color = if live.latest.success {
        Color::srgb(0.1, 0.75, 0.2)
    } else {
        Color::srgb(0.35, 0.35, 0.4)
    };
    gizmos.linestrip_2d(
        [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h), (0.0, 0.0)].map(v),
        color,
    );
}

/// Cost per step of the current episode, scaled to its own range.
fn draw_cost_plot(live: Res<Live>, mut gizmos: Gizmos) {
    let (w, h) = live.latest.view.world_size;
    let (plot, _) = plot_strip(Vec2::new(w, h));
    let frame = Color::srgb(0.5, 0.5, 0.55);
    gizmos.linestrip_2d(
        [
            plot.min,
            Vec2::new(plot.max.x, plot.min.y),
            plot.max,
            Vec2::new(plot.min.x, plot.max.y),
            plot.min,
        ],
        frame,
    );
    let costs = &live.costs;
    if costs.len() < 2 {
        return;
    }
    let (lo, hi) = costs
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), c| (a.min(*c), b.max(*c)));
    let span = (hi - lo).max(1e-6);
    // The x axis spans the episode's length when known, else what was seen so far.
    let n = live
        .latest
        .view
        .replay_steps
        .map_or(costs.len(), |s| s as usize)
        .max(costs.len())
        .max(2);
    let points = costs.iter().enumerate().map(|(i, c)| {
        Vec2::new(
            plot.min.x + plot.width() * i as f32 / (n - 1) as f32,
            plot.min.y + plot.height() * (c - lo) / span,
        )
    });
    gizmos.linestrip_2d(points, Color::srgb(0.15, 0.35, 0.85));
}

/// A replay's timeline: a bar with the current step marked; clicking it seeks.
fn draw_timeline(live: Res<Live>, mut gizmos: Gizmos) {
    let Some(total) = live.latest.view.replay_steps else {
        return;
    };
    let (w, h) = live.latest.view.world_size;
    let (_, bar) = plot_strip(Vec2::new(w, h));
    let grey = Color::srgb(0.45, 0.45, 0.5);
    gizmos.line_2d(
        Vec2::new(bar.min.x, bar.center().y),
        Vec2::new(bar.max.x, bar.center().y),
        grey,
    );
    let x = bar.min.x + bar.width() * live.latest.step as f32 / total.max(1) as f32;
    gizmos.line_2d(Vec2::new(x, bar.min.y), Vec2::new(x, bar.max.y), PLAN_COLOR);
}
