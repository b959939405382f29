import numpy as np
import pytest
from PIL import Image

from bmf_graph.envs.base import BatchedEnv, TeamSpec, TeamStep
from bmf_graph.envs.firefighter import batched_env
from bmf_graph.envs.gif import COUNTER_HEIGHT, save_episode_gif


class CountingEnv(BatchedEnv):
    """Two teams of different sizes; ends after ``length`` steps; frames show the step."""

    teams = (TeamSpec("red", 3, (2, 2, 1), 1, 4), TeamSpec("blue", 2, (), 2, 3))
    max_steps = 50

    def __init__(self, length):
        self.length, self.t, self.seen = length, 0, []

    def _steps(self):
        return [TeamStep(np.zeros((t.num_agents, *t.view_shape), np.float32),
                         np.zeros((t.num_agents, t.feature_dim), np.float32),
                         np.zeros((t.num_agents, 2), np.float32),
                         np.ones(t.num_agents, bool), np.zeros(t.num_agents, np.float32))
                for t in self.teams]

    def reset(self, seed=None):
        self.t = 0
        return self._steps()

    def step(self, actions):
        for a, t in zip(actions, self.teams):
            assert a.shape == (t.num_agents,) and 0 <= a.min() and a.max() < t.num_actions
        self.seen.append([a.copy() for a in actions])
        self.t += 1
        return self._steps(), self.t >= self.length, False, {}

    def render(self):
        frame = np.zeros((8, 8, 3), np.uint8)
        frame[:, : self.t % 9] = 255
        return frame


def n_frames(path):
    with Image.open(path) as im:
        return im.n_frames, im.info.get("duration")


def test_firefighter_gif(tmp_path):
    env = batched_env(num_firefighters=12)
    flip = iter(range(1000))
    policy = lambda steps: [np.full(steps[0].alive.shape[0], next(flip) % 2)]  # noqa: E731
    out = save_episode_gif(env, tmp_path / "runs" / "ff.gif", policy=policy, seed=0, max_steps=5, fps=5)
    assert out == tmp_path / "runs" / "ff.gif" and out.is_file()
    assert n_frames(out) == (6, 200)  # reset frame + 5 steps, 1000 / fps ms each
    height, width = env.render().shape[:2]
    with Image.open(out) as im:
        assert im.size == (width, height + COUNTER_HEIGHT)  # the frame under the step-counter band


def test_step_counter_band_changes_every_step_and_can_be_left_out(tmp_path):
    """Every frame of a still scene differs only in its counter band; without it, the frame is
    the render alone."""
    class Still(CountingEnv):
        def render(self):
            return np.zeros((20, 40, 3), np.uint8)

    with_counter = save_episode_gif(Still(length=3), tmp_path / "c.gif", seed=0, fps=5)
    with Image.open(with_counter) as im:
        frames = [np.asarray(im.seek(i) or im.convert("RGB")) for i in range(im.n_frames)]
    assert len(frames) == 4 and frames[0].shape == (20 + COUNTER_HEIGHT, 40, 3)
    bands = [f[:COUNTER_HEIGHT] for f in frames]
    assert all(not np.array_equal(a, b) for a, b in zip(bands, bands[1:]))  # t = 0, 1, 2, 3
    assert all((f[COUNTER_HEIGHT:] == 0).all() for f in frames)
    plain = save_episode_gif(Still(length=3), tmp_path / "p.gif", seed=0, step_counter=False)
    with Image.open(plain) as im:
        assert im.size == (40, 20) and im.n_frames == 1  # identical frames merge


def test_episode_end_random_policy_and_any_batched_env(tmp_path):
    env = CountingEnv(length=4)
    out = save_episode_gif(env, tmp_path / "count.gif", seed=1)
    assert n_frames(out)[0] == 5 and len(env.seen) == 4
    first = env.seen
    env.seen = []
    save_episode_gif(env, tmp_path / "again.gif", seed=1)
    assert all(np.array_equal(a, b) for s, t in zip(first, env.seen) for a, b in zip(s, t))


def test_overwrite_protection(tmp_path):
    path = tmp_path / "ep.gif"
    save_episode_gif(CountingEnv(length=3), path)
    with pytest.raises(FileExistsError, match="ep.gif"):
        save_episode_gif(CountingEnv(length=6), path)
    assert n_frames(path)[0] == 4
    save_episode_gif(CountingEnv(length=6), path, overwrite=True)
    assert n_frames(path)[0] == 7


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="'.gif'"):
        save_episode_gif(CountingEnv(2), tmp_path / "ep.png")
    with pytest.raises(ValueError, match="fps=0"):
        save_episode_gif(CountingEnv(2), tmp_path / "ep.gif", fps=0)
    with pytest.raises(ValueError, match="1 action arrays, expected 2"):
        save_episode_gif(CountingEnv(2), tmp_path / "ep.gif", policy=lambda s: [np.zeros(3, int)])
    assert not (tmp_path / "ep.gif").exists()
