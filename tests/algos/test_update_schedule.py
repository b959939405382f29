"""How often the Q family updates when the loop records several env copies at once, and how
often BMF's agent VAE steps."""
import copy
import sys
from pathlib import Path

import pytest
import torch

from bmf_graph.algos import make_algorithm
from bmf_graph.config import AlgoConfig
from bmf_graph.training.rollout import play_episode, play_episodes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from countdown_env import CountdownEnv  # noqa: E402

SEEDS = [3, 4, 8, 9, 13, 14]  # six truncated episodes of 5 steps


def count_updates(algo):
    calls = []
    update = algo.update
    algo.update = lambda *a: calls.append(1) or update(*a)
    return calls


@pytest.mark.parametrize("ratio", [1.0, 2.0])
def test_replay_ratio_is_the_same_with_copies(ratio):
    """Credit per stored agent transition: six episodes played one by one or six copies at once
    (deterministic policies, the same transitions) pay for the same gradient steps, about
    ``ratio * agent transitions / (batch_steps * mean alive agents per record)`` of them."""
    torch.manual_seed(0)
    cfg = AlgoConfig(name="mfq", hidden=8, batch_steps=2, learning_starts=0, update_every=1, replay_ratio=ratio)
    stacked = make_algorithm(CountdownEnv().teams[0], cfg, radius=1.5)
    alone = copy.deepcopy(stacked)
    calls_stacked, calls_alone = count_updates(stacked), count_updates(alone)
    play_episodes([CountdownEnv() for _ in SEEDS], [stacked], "cpu", SEEDS, explore=None, learners={0: stacked})
    for seed in SEEDS:
        play_episode(CountdownEnv(), [alone], "cpu", seed, explore=None, learners={0: alone})
    assert stacked.steps == alone.steps == 30
    assert abs(len(calls_stacked) - len(calls_alone)) <= 1
    earned = len(calls_stacked) * stacked.batch_cost() + stacked.credit
    expected = earned / stacked.batch_cost()
    assert 0.8 * expected <= len(calls_stacked) <= expected


def test_learning_starts_and_update_every_count_records_of_every_copy():
    torch.manual_seed(0)
    cfg = AlgoConfig(name="q", hidden=8, sampling="team_steps", batch_steps=2, learning_starts=26, update_every=3)
    algo = make_algorithm(CountdownEnv().teams[0], cfg, radius=1.5)
    calls, steps_at = count_updates(algo), []
    after_step = algo.after_step
    algo.after_step = lambda explore: (steps_at.append(algo.steps), after_step(explore))[1]
    play_episodes([CountdownEnv() for _ in SEEDS[:5]], [algo], "cpu", SEEDS[:5], learners={0: algo})  # 25 records
    assert algo.steps == 25 and steps_at == [5, 10, 15, 20, 25] and not calls and algo.credit > 0
    play_episode(CountdownEnv(), [algo], "cpu", SEEDS[5], learners={0: algo})
    assert calls  # at 27 = 9 * 3 records, the first block crossed after learning_starts


@pytest.mark.parametrize("every", [1, 3])
def test_vae_steps_on_every_nth_update(every):
    torch.manual_seed(0)
    cfg = AlgoConfig(name="bmf_q", hidden=8, sampling="team_steps", batch_steps=2, learning_starts=0, num_groups=2, vae_every=every)
    algo = make_algorithm(CountdownEnv().teams[0], cfg, radius=1.5)
    calls = count_updates(algo)
    vae_steps = []
    step_aux = algo.interaction.step_aux
    algo.interaction.step_aux = lambda loss: vae_steps.append(1) or step_aux(loss)
    before = [p.clone() for p in algo.interaction.vae.parameters()]
    logs = play_episodes([CountdownEnv() for _ in SEEDS], [algo], "cpu", SEEDS, learners={0: algo})[0].logs
    assert len(calls) >= 10 and len(vae_steps) == (len(calls) + every - 1) // every
    assert 1 <= len(logs["losses/vae_rec"]) <= len(vae_steps) and algo.interaction.aux_calls == len(calls)
    assert any(not torch.equal(a, b) for a, b in zip(before, algo.interaction.vae.parameters()))
