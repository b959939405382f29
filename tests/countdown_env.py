"""A tiny task whose episodes end at a seed-dependent step, terminated or truncated, for the
tests of the episode loop (real tasks mostly end together)."""
import numpy as np

from bmf_graph.envs.base import BatchedEnv, TeamSpec, TeamStep


class CountdownEnv(BatchedEnv):
    """``teams`` teams of ``num_agents`` agents with random features and positions in a 4 x 4
    square. The episode of seed ``s`` terminates after ``2 + s % 5`` steps, or is truncated at
    ``max_steps``. Each step an agent dies with probability 0.1; its reward is 1 for action 1
    plus noise (0 once dead)."""

    def __init__(self, num_agents: int = 6, max_steps: int = 5, teams: int = 1, obs_dim: int = 5,
                 num_actions: int = 3):
        self.teams = tuple(TeamSpec(f"t{i}", num_agents, (), obs_dim, num_actions) for i in range(teams))
        self.max_steps = max_steps

    def reset(self, seed: int | None = None) -> list[TeamStep]:
        self.rng = np.random.default_rng(seed)
        self.end, self.t = 2 + (seed or 0) % 5, 0
        self.alive = [np.ones(t.num_agents, bool) for t in self.teams]
        self.pos = [self.rng.uniform(0, 4, (t.num_agents, 2)).astype(np.float32) for t in self.teams]
        return [self._team(i, np.zeros(t.num_agents, np.float32)) for i, t in enumerate(self.teams)]

    def step(self, actions):
        self.t += 1
        steps = []
        for i, (team, action) in enumerate(zip(self.teams, actions)):
            alive = self.alive[i]
            reward = ((np.asarray(action) == 1) + 0.1 * self.rng.normal(size=team.num_agents)) * alive
            self.alive[i] = alive & (self.rng.random(team.num_agents) > 0.1)
            self.pos[i] = (self.pos[i] + self.rng.normal(0, 0.3, self.pos[i].shape)).astype(np.float32)
            steps.append(self._team(i, reward.astype(np.float32)))
        terminated = self.t >= self.end
        return steps, terminated, self.t >= self.max_steps and not terminated, {}

    def _team(self, i: int, reward: np.ndarray) -> TeamStep:
        team, alive = self.teams[i], self.alive[i].copy()
        feature = self.rng.normal(size=(team.num_agents, team.feature_dim)).astype(np.float32) * alive[:, None]
        return TeamStep(view=np.zeros((team.num_agents, 0), np.float32), feature=feature, pos=self.pos[i].copy(),
                        alive=alive, reward=reward)

    def render(self) -> np.ndarray:
        return np.zeros((4, 4, 3), np.uint8)
