#!/usr/bin/env bash
# The robustness table (docs/results/robustness.md): each shipped agent evaluated in
# distribution, then with one factor of variation shifted at a time (`hjepa eval --vary`),
# with the random policy on the same start/goal pairs. Writes one JSON-lines file per
# condition under $OUT and prints a Markdown table.
#
#   experiments/robustness.sh [AGENT...]        # default: two_rooms point_maze_u
#   EPISODES=100 SEED=0 OUT=results/robustness HJEPA=target/release/hjepa experiments/robustness.sh
#   SCENE=two_rooms ONLY='distribution|colour|background' experiments/robustness.sh experiments/robustness/two_rooms_dr.toml
# An agent file's conditions are those of its name (without `.toml` and a `_dr...` suffix); with
# SCENE it plays that scene (the domain-randomised agent trains on a varied copy of it).
set -euo pipefail

HJEPA=${HJEPA:-target/release/hjepa}
EPISODES=${EPISODES:-100}
SEED=${SEED:-0}
OUT=${OUT:-results/robustness}
mkdir -p "$OUT"

# condition name|--vary value ("" = in distribution), per agent. two_rooms sees 64x64
# pixels with velocity control; point_maze_u sees state only (its colours are not observed)
# with force control.
conditions() {
  local name
  name=$(basename "$1" .toml)
  case "${name%%_dr*}" in
    two_rooms) cat <<'EOF'
in distribution|
background (170, 200, 255)|background=(170, 200, 255)
agent colour (230, 60, 60)|agent.color=(230, 60, 60)
agent size x2|agent.size=2.0
agent density x4|material.agent.density=4.0
agent friction 1.0 (was 0)|material.agent.friction=1.0
actuator gain x0.7|agent.gain=0.7
EOF
    ;;
    point_maze_u) cat <<'EOF'
in distribution|
agent size x1.5|agent.size=1.5
ball density x2|material.ball.density=63.66
ball friction 1.0 (was 0)|material.ball.friction=1.0
linear damping 2 (was 1)|material.ball.linear_damping=2.0
actuator gain x0.7|agent.gain=0.7
EOF
    ;;
    *) echo "no conditions for agent $1" >&2; exit 2 ;;
  esac
}

agents=("$@")
[ ${#agents[@]} -gt 0 ] || agents=(two_rooms point_maze_u)
for agent in "${agents[@]}"; do
  echo
  echo "### $agent ($EPISODES episodes, seed $SEED)"
  echo
  echo "| condition | --vary | agent | random |"
  echo "|---|---|---|---|"
  while IFS='|' read -r name vary; do
    # ONLY=REGEX keeps the conditions whose names match.
    if [ -n "${ONLY:-}" ] && ! [[ "$name" =~ $ONLY ]]; then continue; fi
    slug=$(echo "$name" | tr -c 'a-zA-Z0-9' '_')
    args=(eval --agent "$agent" --episodes "$EPISODES" --seed "$SEED" --out "$OUT/$(basename "$agent" .toml)-$slug.jsonl")
    [ -n "${SCENE:-}" ] && args+=(--scene "$SCENE")
    [ -n "$vary" ] && args+=(--vary "$vary")
    report=$("$HJEPA" "${args[@]}" 2>/dev/null)
    learned=$(echo "$report" | sed -n 's/.*success \([0-9]*\/[0-9]*\).*/\1/p' | head -1)
    random=$(echo "$report" | sed -n 's/^random policy on the same pairs: \([0-9]*\/[0-9]*\).*/\1/p')
    echo "| $name | ${vary:+\`$vary\`} | $learned | $random |"
  done < <(conditions "$agent")
done
