"""Write an animated GIF of one episode of any :class:`~bmf_graph.envs.base.BatchedEnv`."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from bmf_graph.envs.base import BatchedEnv, TeamStep
from bmf_graph.files import atomic_write

__all__ = ["save_episode_gif"]

Policy = Callable[[list[TeamStep]], Sequence[np.ndarray]]


def save_episode_gif(env: BatchedEnv, path: str | Path, policy: Policy | None = None,
                     seed: int | None = None, max_steps: int | None = None, fps: float = 10,
                     overwrite: bool = False, step_counter: bool = True) -> Path:
    """Play one episode and save its frames (``env.render()``) as an animated GIF.

    The first frame is the state after ``reset``, then one frame per step, until the
    episode terminates or truncates or ``max_steps`` steps have run. Identical consecutive
    frames are merged by the GIF encoder (their durations add up).

    Args:
        env: any batched environment; it is reset with ``seed``.
        path: output file, ending in ``.gif``; missing parent folders are created.
        policy: ``policy(team_steps) -> [actions per team]``, each ``[N_t]`` integers.
            ``None`` plays uniformly random actions from a generator seeded from ``seed``.
        seed: seed of the episode (and of the random policy).
        max_steps: stop after this many steps (``None``: play to the end of the episode).
        fps: frames per second (> 0).
        overwrite: replace an existing file instead of raising ``FileExistsError``.
        step_counter: put a band above each frame reading ``t = k / T`` (``k`` steps played,
            ``T`` the step limit).

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"save_episode_gif: path={str(path)!r} must end in '.gif'")
    if path.exists() and not overwrite:
        raise FileExistsError(f"save_episode_gif: {str(path)!r} exists; pass overwrite=True to replace it")
    if not fps > 0:
        raise ValueError(f"save_episode_gif: fps={fps!r} must be > 0")
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"save_episode_gif: max_steps={max_steps!r} must be None or >= 0")

    if policy is None:
        rng = np.random.default_rng(None if seed is None else [seed, 1])

        def policy(_: list[TeamStep]) -> list[np.ndarray]:
            return [rng.integers(0, t.num_actions, size=t.num_agents) for t in env.teams]

    team_steps = env.reset(seed=seed)
    limit = env.max_steps if max_steps is None else max_steps
    label = (lambda t: f"t = {t} / {limit}") if step_counter else None
    frames = [_frame(env, label and label(0))]
    for t in range(1, limit + 1):
        actions = list(policy(team_steps))
        if len(actions) != len(env.teams):
            raise ValueError(f"save_episode_gif: policy returned {len(actions)} action arrays, "
                             f"expected {len(env.teams)} (one per team)")
        team_steps, terminated, truncated, _ = env.step(actions)
        frames.append(_frame(env, label and label(t)))
        if terminated or truncated:
            break

    images = [Image.fromarray(f) for f in frames]
    return atomic_write(path, lambda f: images[0].save(f, format="GIF", save_all=True, append_images=images[1:],
                                                       duration=max(10, round(1000 / fps)), loop=0), overwrite)


COUNTER_HEIGHT = 14
"""Pixel rows of the step-counter band above each frame."""


def _frame(env: BatchedEnv, text: str | None = None) -> np.ndarray:
    """``env.render()``, checked, under a white band holding ``text`` (none when ``None``)."""
    frame = np.asarray(env.render())
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"save_episode_gif: env.render() must return [H, W, 3] uint8, "
                         f"got shape {frame.shape} dtype {frame.dtype}")
    if text is None:
        return frame
    band = Image.new("RGB", (frame.shape[1], COUNTER_HEIGHT), (255, 255, 255))
    ImageDraw.Draw(band).text((3, 1), text, fill=(0, 0, 0))
    return np.concatenate([np.asarray(band), frame])
