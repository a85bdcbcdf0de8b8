//! Factors of variation: scene properties (colours, sizes, masses, friction, damping, the
//! agent's gain) that a scene declares as a range or a set of values instead of one value,
//! drawn per episode from the episode's seed. They draw from a generator stream of their
//! own, so the layout's draws are those of the same scene without factors, and a scene
//! without factors plays exactly as before.
//!
//! ```ron
//! factors: {
//!     "background": Set([(255, 255, 255), (40, 40, 40)]),
//!     "body.tee.size": Range(0.8, 1.2),
//!     "material.block.friction": Range(0.5, 1.5),
//! },
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::scene::{Actuator, Scene, Shape};
use crate::error::InputError;

/// The generator stream factors draw from (the layout draws from stream 0).
const FACTOR_STREAM: u64 = 1;

/// One property's values in a scene's `factors` table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Factor {
    /// Uniform between the two (per channel for colours, whole numbers).
    Range(Value, Value),
    /// One of these, picked uniformly.
    Set(Vec<Value>),
}

/// A property's value: a number, or an RGB colour `(r, g, b)` with channels 0-255.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Value {
    Number(f32),
    Color(f32, f32, f32),
}

/// The values one episode drew, by key (kept in its layout, datasets and recordings).
pub type Drawn = BTreeMap<String, Value>;

/// A material's properties a factor may set (absolute values).
const MATERIAL_FIELDS: [&str; 5] = [
    "density",
    "friction",
    "restitution",
    "linear_damping",
    "angular_damping",
];

/// What a factor key names.
#[derive(Clone, Debug, PartialEq)]
enum Property {
    /// `background`, `obstacle_color`, `goal_color`: the image's colours.
    ImageColor(&'static str),
    AgentColor,
    /// `agent.size`: a scale factor on the agent's shape (1 = as declared).
    AgentSize,
    /// `agent.gain`: a factor on the actuator's gains (velocity, force, or PD's kp and kv).
    AgentGain,
    BodyColor(usize),
    /// `body.NAME.size`: a scale factor on the body's shape and its parts' offsets.
    BodySize(usize),
    /// `material.NAME.FIELD`.
    Material(String, &'static str),
}

impl Property {
    fn is_color(&self) -> bool {
        matches!(
            self,
            Property::ImageColor(_) | Property::AgentColor | Property::BodyColor(_)
        )
    }

    /// The smallest value that makes sense, and whether it may be reached.
    fn lower_bound(&self) -> (f32, bool) {
        match self {
            Property::AgentSize | Property::BodySize(_) | Property::AgentGain => (0.0, false),
            Property::Material(_, "density") => (0.0, false),
            _ => (0.0, true),
        }
    }
}

/// Every key a factor may have in `scene`.
pub fn valid_keys(scene: &Scene) -> Vec<String> {
    let mut keys = Vec::new();
    if scene.observation.image.is_some() {
        keys.extend(["background", "obstacle_color", "goal_color"].map(String::from));
    }
    keys.extend(["agent.color", "agent.size", "agent.gain"].map(String::from));
    for b in &scene.bodies {
        keys.push(format!("body.{}.color", b.name));
        keys.push(format!("body.{}.size", b.name));
    }
    for m in material_names(scene) {
        keys.extend(MATERIAL_FIELDS.map(|f| format!("material.{m}.{f}")));
    }
    keys
}

/// The materials bodies and the agent use (declared ones, and `default` when something uses it).
fn material_names(scene: &Scene) -> Vec<String> {
    let mut names: Vec<String> = scene.materials.keys().cloned().collect();
    let used = scene
        .bodies
        .iter()
        .map(|b| b.material.as_str())
        .chain([scene.agent.material.as_str()]);
    for m in used {
        if !names.iter().any(|n| n == m) {
            names.push(m.to_string());
        }
    }
    names
}

fn property(scene: &Scene, key: &str) -> Option<Property> {
    let parts: Vec<&str> = key.split('.').collect();
    let body = |name: &str| scene.bodies.iter().position(|b| b.name == name);
    match parts.as_slice() {
        [c @ ("background" | "obstacle_color" | "goal_color")] => {
            let c = ["background", "obstacle_color", "goal_color"]
                .into_iter()
                .find(|k| k == c)?;
            scene
                .observation
                .image
                .as_ref()
                .map(|_| Property::ImageColor(c))
        }
        ["agent", "color"] => Some(Property::AgentColor),
        ["agent", "size"] => Some(Property::AgentSize),
        ["agent", "gain"] => Some(Property::AgentGain),
        ["body", name, "color"] => body(name).map(Property::BodyColor),
        ["body", name, "size"] => body(name).map(Property::BodySize),
        ["material", name, field] => {
            let field = MATERIAL_FIELDS.iter().find(|f| *f == field)?;
            material_names(scene)
                .iter()
                .any(|m| m == name)
                .then(|| Property::Material(name.to_string(), field))
        }
        _ => None,
    }
}

/// Checks one factor against `scene`; the error says what is wrong (the caller names where).
pub fn check(scene: &Scene, key: &str, factor: &Factor) -> Result<(), String> {
    let Some(p) = property(scene, key) else {
        return Err(format!(
            "no such property in scene {:?}; valid keys: {}",
            scene.name,
            valid_keys(scene).join(", ")
        ));
    };
    let values: Vec<&Value> = match factor {
        Factor::Range(lo, hi) => vec![lo, hi],
        Factor::Set(v) if v.is_empty() => {
            return Err("an empty Set: give at least one value".into())
        }
        Factor::Set(v) => v.iter().collect(),
    };
    for v in &values {
        match (p.is_color(), v) {
            (true, Value::Color(r, g, b)) => {
                if let Some(c) = [r, g, b]
                    .into_iter()
                    .find(|c| !(0.0..=255.0).contains(*c) || c.fract() != 0.0)
                {
                    return Err(format!(
                        "colour {v:?}: channel {c} is outside 0-255 or not a whole number"
                    ));
                }
            }
            (true, Value::Number(_)) => {
                return Err(format!("{v:?}: expected a colour (r, g, b)"));
            }
            (false, Value::Color(..)) => return Err(format!("{v:?}: expected a number")),
            (false, Value::Number(x)) => {
                let (min, inclusive) = p.lower_bound();
                let ok = x.is_finite() && (*x > min || (inclusive && *x == min));
                if !ok {
                    return Err(format!(
                        "{x}: expected a finite number {} {min}",
                        if inclusive { ">=" } else { ">" }
                    ));
                }
                if matches!(&p, Property::Material(_, "restitution")) && *x > 1.0 {
                    return Err(format!("{x}: a restitution is at most 1"));
                }
            }
        }
    }
    if let Factor::Range(lo, hi) = factor {
        let low_above = match (lo, hi) {
            (Value::Number(a), Value::Number(b)) => a > b,
            (Value::Color(a, b, c), Value::Color(x, y, z)) => a > x || b > y || c > z,
            _ => true,
        };
        if low_above {
            return Err(format!("Range({lo:?}, {hi:?}): low is above high"));
        }
    }
    Ok(())
}

/// Checks a scene's `factors` table; errors name the file, the key's line and the key.
pub fn validate(scene: &Scene, text: &str, path: &Path) -> Result<(), InputError> {
    for (key, factor) in &scene.factors {
        check(scene, key, factor).map_err(|why| {
            let line = key_line(text, key)
                .map(|l| format!("line {l}, "))
                .unwrap_or_default();
            InputError::new(path, format!("{line}factors.{key:?}"), why)
        })?;
    }
    Ok(())
}

/// The 1-based line of `"key"` in the scene text's `factors` table.
fn key_line(text: &str, key: &str) -> Option<usize> {
    let start = text.find("factors")?;
    let quoted = format!("{key:?}");
    let at = start + text[start..].find(&quoted)?;
    Some(text[..at].lines().count().max(1))
}

/// The values of episode `seed`: each factor drawn in key order from the factors' own
/// stream (empty, and no draw, for a scene without factors).
pub fn draw(scene: &Scene, seed: u64) -> Drawn {
    if scene.factors.is_empty() {
        return Drawn::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(FACTOR_STREAM);
    scene
        .factors
        .iter()
        .map(|(key, f)| {
            let v = match f {
                Factor::Set(values) => values[rng.random_range(0..values.len())],
                Factor::Range(Value::Number(a), Value::Number(b)) => {
                    Value::Number(a + (b - a) * rng.random::<f32>())
                }
                Factor::Range(Value::Color(r0, g0, b0), Value::Color(r1, g1, b1)) => {
                    let mut channel =
                        |lo: f32, hi: f32| rng.random_range(lo as u16..=hi as u16) as f32;
                    Value::Color(channel(*r0, *r1), channel(*g0, *g1), channel(*b0, *b1))
                }
                // Refused when the scene was loaded.
                Factor::Range(lo, _) => *lo,
            };
            (key.clone(), v)
        })
        .collect()
}

/// The scene one episode plays: `declared` with the drawn values set (and no factors left).
pub fn apply(declared: &Scene, drawn: &Drawn) -> Scene {
    let mut scene = declared.clone();
    scene.factors.clear();
    for (key, value) in drawn {
        let Some(p) = property(declared, key) else {
            continue;
        };
        match (p, *value) {
            (Property::ImageColor(which), Value::Color(r, g, b)) => {
                if let Some(image) = &mut scene.observation.image {
                    let c = [r as u8, g as u8, b as u8];
                    match which {
                        "background" => image.background = c,
                        "obstacle_color" => image.obstacle_color = c,
                        _ => image.goal_color = c,
                    }
                }
            }
            (Property::AgentColor, Value::Color(r, g, b)) => {
                scene.agent.color = [r as u8, g as u8, b as u8];
            }
            (Property::BodyColor(i), Value::Color(r, g, b)) => {
                scene.bodies[i].color = [r as u8, g as u8, b as u8];
            }
            (Property::AgentSize, Value::Number(s)) => scale(&mut scene.agent.shape, s),
            (Property::BodySize(i), Value::Number(s)) => scale(&mut scene.bodies[i].shape, s),
            (Property::AgentGain, Value::Number(g)) => match &mut scene.agent.actuator {
                Actuator::Velocity { gain } | Actuator::Force { gain, .. } => *gain *= g,
                Actuator::PdTarget { kp, kv } => {
                    *kp *= g;
                    *kv *= g;
                }
            },
            (Property::Material(name, field), Value::Number(x)) => {
                let m = scene.materials.entry(name).or_insert_with(Default::default);
                match field {
                    "density" => m.density = x,
                    "friction" => m.friction = x,
                    "restitution" => m.restitution = x,
                    "linear_damping" => m.linear_damping = x,
                    _ => m.angular_damping = x,
                }
            }
            _ => {}
        }
    }
    scene
}

/// Scales a shape about its body's origin.
fn scale(shape: &mut Shape, s: f32) {
    match shape {
        Shape::Circle { radius } => *radius *= s,
        Shape::Box { half } => *half = (half.0 * s, half.1 * s),
        Shape::Polygon { points } => {
            for p in points {
                *p = (p.0 * s, p.1 * s);
            }
        }
        Shape::Compound { parts } => {
            for part in parts {
                scale(&mut part.shape, s);
                part.offset = (part.offset.0 * s, part.offset.1 * s);
            }
        }
    }
}

/// `--vary KEY=VALUE`: VALUE is a factor as a scene writes it (`Range(0.5, 1.0)`,
/// `Set([(0, 0, 0)])`) or one value (`0.5`, `(0, 0, 0)`), which every episode then takes.
pub fn parse_vary(arg: &str) -> Result<(String, Factor), String> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("--vary {arg:?}: expected KEY=VALUE, e.g. background=(0, 0, 0)"))?;
    let value = value.trim();
    let factor = ron::from_str::<Factor>(value)
        .or_else(|_| ron::from_str::<Value>(value).map(|v| Factor::Set(vec![v])))
        .map_err(|e| {
            format!(
                "--vary {key}: cannot read {value:?} ({e}); expected Range(LOW, HIGH), Set([V, ...]) or one value: a number or a colour (r, g, b)"
            )
        })?;
    Ok((key.trim().to_string(), factor))
}

/// The scene with `vary`'s factors set over its own (`hjepa eval --vary`); an unknown key or
/// a bad value is refused naming `--vary` and the key, with the valid keys.
pub fn vary_scene(mut scene: Scene, vary: &[(String, Factor)]) -> Result<Scene, InputError> {
    for (key, factor) in vary {
        check(&scene, key, factor)
            .map_err(|why| InputError::new(Path::new("--vary"), key.as_str(), why))?;
        scene.factors.insert(key.clone(), factor.clone());
    }
    Ok(scene)
}

/// A factor in a line of `hjepa check`.
pub fn describe(key: &str, f: &Factor) -> String {
    let v = |v: &Value| match v {
        Value::Number(x) => format!("{x}"),
        Value::Color(r, g, b) => format!("({r}, {g}, {b})"),
    };
    match f {
        Factor::Range(lo, hi) => format!("{key} in [{}, {}]", v(lo), v(hi)),
        Factor::Set(values) => format!(
            "{key} one of {{{}}}",
            values.iter().map(v).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_t() -> Scene {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenes/push_t.ron");
        Scene::load(&path).unwrap()
    }

    #[test]
    fn draws_depend_on_the_seed_only_and_stay_in_range() {
        let mut scene = push_t();
        scene.factors.insert(
            "body.tee.size".into(),
            Factor::Range(Value::Number(0.5), Value::Number(1.5)),
        );
        scene.factors.insert(
            "background".into(),
            Factor::Range(
                Value::Color(0.0, 10.0, 20.0),
                Value::Color(5.0, 10.0, 200.0),
            ),
        );
        let a = draw(&scene, 7);
        assert_eq!(a, draw(&scene, 7));
        assert_ne!(a, draw(&scene, 8));
        for s in 0..50 {
            let d = draw(&scene, s);
            let Value::Number(x) = d["body.tee.size"] else {
                panic!()
            };
            assert!((0.5..=1.5).contains(&x));
            let Value::Color(r, g, b) = d["background"] else {
                panic!()
            };
            assert!(r <= 5.0 && g == 10.0 && (20.0..=200.0).contains(&b));
        }
    }

    #[test]
    fn apply_sets_each_property_and_leaves_the_declared_scene() {
        let mut scene = push_t();
        scene
            .factors
            .insert("x".into(), Factor::Set(vec![Value::Number(1.0)]));
        let drawn: Drawn = [
            ("body.tee.size".to_string(), Value::Number(2.0)),
            ("agent.gain".to_string(), Value::Number(0.5)),
            ("material.block.friction".to_string(), Value::Number(0.25)),
            ("background".to_string(), Value::Color(1.0, 2.0, 3.0)),
        ]
        .into_iter()
        .collect();
        let s = apply(&scene, &drawn);
        assert!(s.factors.is_empty());
        let Shape::Compound { parts } = &s.bodies[0].shape else {
            panic!()
        };
        assert_eq!(parts[1].offset, (0.0, 1.5));
        assert_eq!(parts[0].shape, Shape::Box { half: (1.2, 0.3) });
        assert!(
            matches!(s.agent.actuator, Actuator::PdTarget { kp, kv } if kp == 50.0 && kv == 10.0)
        );
        assert_eq!(s.materials["block"].friction, 0.25);
        assert_eq!(s.observation.image.as_ref().unwrap().background, [1, 2, 3]);
        assert_eq!(scene.materials["block"].friction, 1.0);
    }

    #[test]
    fn bad_factors_are_refused_with_the_reason() {
        let scene = push_t();
        let n = Value::Number;
        let cases = [
            ("body.nope.size", Factor::Set(vec![n(1.0)]), "valid keys"),
            (
                "body.tee.size",
                Factor::Range(n(2.0), n(1.0)),
                "low is above high",
            ),
            ("body.tee.size", Factor::Set(vec![]), "empty Set"),
            ("body.tee.size", Factor::Set(vec![n(0.0)]), "> 0"),
            (
                "background",
                Factor::Set(vec![Value::Color(0.0, 300.0, 0.0)]),
                "0-255",
            ),
            ("background", Factor::Set(vec![n(3.0)]), "expected a colour"),
            (
                "agent.gain",
                Factor::Set(vec![Value::Color(1.0, 1.0, 1.0)]),
                "expected a number",
            ),
            (
                "material.block.restitution",
                Factor::Set(vec![n(2.0)]),
                "at most 1",
            ),
        ];
        for (key, f, why) in cases {
            let err = check(&scene, key, &f).unwrap_err();
            assert!(err.contains(why), "{key}: {err}");
        }
        assert!(check(
            &scene,
            "material.agent.density",
            &Factor::Range(n(1.0), n(9.0))
        )
        .is_ok());
    }

    #[test]
    fn vary_reads_factors_and_single_values() {
        assert_eq!(
            parse_vary("background=(0, 0, 0)").unwrap(),
            (
                "background".into(),
                Factor::Set(vec![Value::Color(0.0, 0.0, 0.0)])
            )
        );
        assert_eq!(
            parse_vary("body.tee.size=Range(0.8, 1.2)").unwrap().1,
            Factor::Range(Value::Number(0.8), Value::Number(1.2))
        );
        assert!(parse_vary("background").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_vary("x=Rnge(1)")
            .unwrap_err()
            .contains("expected Range"));
    }
}
