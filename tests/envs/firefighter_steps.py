"""Shared by the Firefighter tests: one hand-set step and a binomial tolerance."""
import numpy as np


def step_with(env, levels, actions):
    """Set the state, take one step, return (team_step, terminated, truncated, info)."""
    env.levels = np.asarray(levels)
    (team,), terminated, truncated, info = env.step([np.asarray(actions)])
    return team, terminated, truncated, info


def within_binomial(successes, trials, p, sigmas=5.0):
    assert trials >= 300, f"too few samples ({trials}) for a statistical check"
    if p in (0.0, 1.0):
        return successes == p * trials
    return abs(successes / trials - p) <= sigmas * np.sqrt(p * (1 - p) / trials)
