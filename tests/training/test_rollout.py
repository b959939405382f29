"""The one episode loop: several env copies at once equal playing them one by one, for acting
and for what learners record."""
import copy
from collections import Counter

import numpy as np
import pytest
import torch

from bmf_graph.algos import make_algorithm
from bmf_graph.algos.random_policy import RandomPolicy
from bmf_graph.config import AlgoConfig
from bmf_graph.envs import battle, firefighter
from bmf_graph.envs.copies import LocalCopies, WorkerCopies
from bmf_graph.training.rollout import PartPlayer, acting_copy, play_episode, play_episodes, select_copies, team_view
from countdown_env import CountdownEnv

SEEDS = [0, 1, 2, 3, 4]  # CountdownEnv: terminated after 2, 3, 4, 5 steps; truncated at 5


def _single(env, policies, seeds, max_steps=None, **kw):
    with torch.no_grad():
        return [play_episode(env, policies, "cpu", seed, max_steps=max_steps, **kw) for seed in seeds]


def _same_results(a, b):
    assert (a.steps, a.terminated) == (b.steps, b.terminated)
    assert np.allclose(a.returns, b.returns) and np.array_equal(a.alive, b.alive) and np.array_equal(a.kills, b.kills)


def transitions(buffer) -> Counter:
    """Every stored transition as bytes of (record, successor), order-free."""
    data = {k: v[:buffer.size] for k, v in buffer.data.items()}
    out = Counter()
    for i, j in enumerate(buffer.next[:buffer.size]):
        if j >= 0:
            out[b"".join(data[k][i].numpy().tobytes() + data[k][j].numpy().tobytes() for k in sorted(data))] += 1
    return out


@pytest.mark.parametrize("name", ["q", "mfq", "gat_mf"])
def test_copies_play_the_single_env_episodes(name):
    """Greedy policies: copy e plays exactly the episode of seed e, also when copies end at
    different steps, terminated or truncated."""
    torch.manual_seed(0)
    algo = make_algorithm(CountdownEnv().teams[0], AlgoConfig(name=name, hidden=16), radius=1.5)
    copies = play_episodes([CountdownEnv() for _ in SEEDS], [algo], "cpu", SEEDS)
    alone = _single(CountdownEnv(), [algo], SEEDS)
    assert [r.steps for r in alone] == [2, 3, 4, 5, 5] and [r.terminated for r in alone] == [1, 1, 1, 1, 0]
    for a, b in zip(copies, alone):
        _same_results(a, b)


@pytest.mark.parametrize("name", ["q", "mfq", "gat_mf"])
@pytest.mark.parametrize("parts", [1, 2])
def test_copies_record_the_transitions_of_single_env_play(name, parts):
    """A learner playing 5 copies at once stores exactly the records and successor links it
    stores playing the 5 episodes one after another (deterministic policies, no update): a
    copy that ended stops recording, the last record of a terminated episode is dead, and
    every reward lands on the step that earned it."""
    torch.manual_seed(0)
    cfg = AlgoConfig(name=name, hidden=16, learning_starts=10**9)
    stacked = make_algorithm(CountdownEnv().teams[0], cfg, radius=1.5)
    alone = copy.deepcopy(stacked)
    results = play_episodes([CountdownEnv() for _ in SEEDS], [stacked], "cpu", SEEDS, learners={0: stacked},
                            parts=parts)
    singles = [play_episode(CountdownEnv(), [alone], "cpu", s, learners={0: alone}) for s in SEEDS]
    for a, b in zip(results, singles):
        _same_results(a, b)
    assert len(stacked.buffer) == len(alone.buffer) == sum(r.steps + 1 for r in singles)
    assert transitions(stacked.buffer) == transitions(alone.buffer)
    assert stacked.buffer.num_transitions == sum(r.steps for r in singles)
    rewards = stacked.buffer.data["reward"][:len(stacked.buffer)]
    assert torch.isclose(rewards.sum(), torch.tensor(sum(r.returns[0] for r in results), dtype=torch.float32))
    dead_ends = [stacked.buffer.last[c] for c, r in enumerate(results) if r.terminated]
    assert not stacked.buffer.data["alive"][dead_ends].any()
    assert stacked.steps == alone.steps and stacked.credit == alone.credit


@pytest.mark.parametrize("name", ["mfq", "gat_mf", "bmf_q"])
def test_replayed_critic_input_of_copies_matches_acting_time(name):
    """Each copy's records rebuild, at update time, the critic input its agents acted on:
    groups, pooled group inputs and attention stay per copy in the replay."""
    torch.manual_seed(0)
    envs = [firefighter.batched_env(num_firefighters=10, max_steps=6) for _ in range(3)]
    cfg = AlgoConfig(name=name, hidden=16, num_groups=3, group_interval=2, learning_starts=10**9)
    algo = make_algorithm(envs[0].teams[0], cfg, radius=1.5)
    seen = []
    play_episodes(envs, [algo], "cpu", [0, 1, 2], explore=0.5, learners={0: algo},
                  on_step=lambda t, views, recs, actions: seen.append(recs[0]["mean_action"].view(3, 10, -1).clone()))
    buffer = algo.buffer
    for c in range(3):
        slot, rows = c, []  # the t = 0 records are slots 0..2, in copy order
        while buffer.next[slot] >= 0:  # every record that starts a transition
            rows.append(slot)
            slot = buffer.next[slot]
        rec = {k: v[rows] for k, v in buffer.data.items()}
        with torch.no_grad():
            replayed = algo.interaction.mean_action(rec)
        assert torch.allclose(replayed, torch.stack([s[c] for s in seen[:len(rows)]]), atol=1e-6)


def test_actor_critic_updates_on_each_copys_own_episode():
    """A2C (``critic=value``) keeps the copies apart: the batch of the copies ending together is their single-env
    episodes side by side, ``[T + 1, C, N]``."""
    torch.manual_seed(0)
    envs = [CountdownEnv(max_steps=4) for _ in range(2)]
    algo = make_algorithm(envs[0].teams[0], AlgoConfig(name="mfac", critic="value", hidden=16), radius=1.5)
    batches = []
    algo.update = lambda batch, explore: batches.append(batch) or {}
    play_episodes(envs, [algo], "cpu", [3, 9], learners={0: algo})  # both truncated at 4 steps
    for seed in (3, 9):
        play_episode(CountdownEnv(max_steps=4), [algo], "cpu", seed, learners={0: algo})
    both, first, second = batches
    assert both["obs"].shape == (5, 2, 6, 5)
    for key in both:
        assert torch.equal(both[key][:, 0], first[key][:, 0]) and torch.equal(both[key][:, 1], second[key][:, 0])
    assert both["reward"][:4].abs().sum() > 0 and not both["reward"][4].any()


def test_every_policy_acts_with_the_learners_exploration():
    envs = [CountdownEnv(teams=2) for _ in range(2)]
    seen = []

    class Spy(RandomPolicy):
        def act(self, view, rec, explore):
            seen.append((self.spec.name, explore))
            return super().act(view, rec, explore)

    learner = make_algorithm(envs[0].teams[0], AlgoConfig(name="q", hidden=8), radius=1.5)
    learner.policy = lambda view, rec, explore: seen.append(("learner", explore)) or torch.full((12, 3), 1 / 3)
    play_episodes(envs, [learner, Spy(envs[0].teams[1])], "cpu", [0, 1], explore=0.3, learners={0: learner})
    assert {e for _, e in seen} == {0.3} and {n for n, _ in seen} == {"learner", "t1"}


@pytest.mark.parametrize("parts", [1, 2])
def test_battle_copies_keep_teams_and_kills_apart(parts):
    torch.manual_seed(1)
    kwargs = {"map_size": 20, "agents_per_team": 8, "max_steps": 25}
    spec = battle.batched_env(**kwargs).teams
    policies = [make_algorithm(s, AlgoConfig(name="mfq", hidden=16), radius=6.0) for s in spec]
    seeds = [0, 1, 2]
    with WorkerCopies("battle", kwargs, 3) as copies:
        results = play_episodes(copies, policies, "cpu", seeds, max_steps=25, parts=parts)
    alone = _single(battle.batched_env(**kwargs), policies, seeds, max_steps=25)
    for a, b in zip(results, alone):
        _same_results(a, b)


@pytest.mark.parametrize("where", ["local", "worker"])
def test_fewer_episodes_than_copies_in_two_parts(where):
    """Two halves played in turn (the second with acting copies of the policies), stepped here
    or in a worker process, over 3 of 4 copies: each plays its single-env episode."""
    torch.manual_seed(3)
    kwargs = {"num_firefighters": 8, "max_steps": 7}
    algo = make_algorithm(firefighter.batched_env(**kwargs).teams[0], AlgoConfig(name="mfq", hidden=16), radius=1.5)
    seeds = [3, 4, 5]
    copies = WorkerCopies("firefighter", kwargs, 4) if where == "worker" else \
        LocalCopies([firefighter.batched_env(**kwargs) for _ in range(4)])
    with copies:
        results = play_episodes(copies, [algo], "cpu", seeds, parts=2)
    assert len(results) == 3
    for a, b in zip(results, _single(firefighter.batched_env(**kwargs), [algo], seeds)):
        _same_results(a, b)


def test_worker_copies_report_errors():
    with pytest.raises(ValueError, match="env_name='chess' is not valid"):
        WorkerCopies("chess", {}, 2)
    with pytest.raises(ValueError, match="num_envs=0"):
        WorkerCopies("firefighter", {}, 0)
    with WorkerCopies("firefighter", {"num_firefighters": 4}, 2) as copies:
        copies.reset([0, 1], [(0, 2)])
        copies.result((0, 2))
        copies.step((0, 2), [np.full(8, 7)], 0)  # Firefighter has 2 actions
        with pytest.raises(RuntimeError, match="worker process failed(.|\n)*actions"):
            copies.result((0, 2))
    with WorkerCopies("firefighter", {"num_firefighters": 4}, 2) as copies:
        copies._process.kill()  # as when the spawned worker cannot import the main module
        copies._process.join()
        with pytest.raises(RuntimeError, match=r"worker process exited \(exit code -9\)(.|\n)*__main__"):
            copies.reset([0, 1], [(0, 2)])
            copies.result((0, 2))


def test_bmf_stacked_view_equals_views_of_each_copy():
    """With k above the team size every agent is a group of its own (no k-means draw), so the
    stacked observation must equal each copy's own: groups and attention stay in a copy."""
    torch.manual_seed(2)
    copies = LocalCopies([firefighter.batched_env(num_firefighters=10) for _ in range(3)])
    algo = make_algorithm(copies.teams[0], AlgoConfig(name="bmf_q", hidden=16, num_groups=12), radius=1.5)
    copies.reset([7, 8, 9], [(0, 3)])
    player = PartPlayer(copies, (0, 3), [algo], torch.device("cpu"), {}, None)
    player.a_prev[0] = torch.nn.functional.one_hot(torch.randint(2, (30,)), 2).float()
    view = player.views(copies.result((0, 3)), 0, np.ones(3, bool))[0]
    stacked = algo.observe(view)
    assert stacked["group"].max() < 12  # records keep each copy's own ids
    for b, env in enumerate(copies.envs):
        rows = slice(10 * b, 10 * (b + 1))
        algo.interaction.grouping.reset_parameters()
        alone = algo.observe(team_view(env.reset(seed=7 + b)[0], view.a_prev[rows], None, torch.device("cpu")))
        assert torch.allclose(stacked["mean_action"][rows], alone["mean_action"], atol=1e-6)
        assert alone["mean_action"][:, 2:].abs().sum() > 0  # inter-group part is not trivial


def test_stacked_view_rows_are_each_copys_arrays_and_select_copies_picks_them():
    envs = [battle.batched_env(map_size=20, agents_per_team=8) for _ in range(3)]
    copies = LocalCopies(envs)
    copies.reset([0, 1, 2], [(0, 3)])
    player = PartPlayer(copies, (0, 3), [RandomPolicy(t) for t in copies.teams], torch.device("cpu"), {}, None)
    view = player.views(copies.result((0, 3)), 4, np.array([True, False, True]))[1]
    steps = [env.reset(seed=seed)[1] for env, seed in zip(envs, [0, 1, 2])]
    assert torch.equal(view.obs, torch.from_numpy(np.concatenate([s.obs() for s in steps])))
    assert torch.equal(view.pos, torch.from_numpy(np.concatenate([s.pos for s in steps])))
    assert view.alive[:8].all() and not view.alive[8:16].any() and view.alive[16:].all()  # copy 1 is not showing
    assert view.num_envs == 3 and view.step == 4 and torch.equal(view.prev_obs, view.obs)
    assert torch.equal(view.batch, torch.arange(3).repeat_interleave(8)) and view.copies == (0, 1, 2)
    rec = {"per_agent": torch.arange(24), "per_group": torch.arange(6)}  # 2 groups per copy
    sub, sub_rec, action = select_copies(view, rec, torch.arange(24), np.array([False, True, True]))
    assert sub.copies == (1, 2) and sub.num_envs == 2 and torch.equal(sub.obs, view.obs[8:])
    assert torch.equal(sub_rec["per_agent"], torch.arange(8, 24)) and torch.equal(sub_rec["per_group"], torch.arange(2, 6))
    assert torch.equal(action, torch.arange(8, 24)) and torch.equal(sub.batch, torch.arange(2).repeat_interleave(8))


def test_play_episodes_errors():
    env = firefighter.batched_env(num_firefighters=6)
    policy = RandomPolicy(env.teams[0])
    with pytest.raises(ValueError, match="got 1 envs and 2 seeds"):
        play_episodes([env], [policy], "cpu", [0, 1])
    with pytest.raises(ValueError, match="same teams"):
        play_episodes([env, firefighter.batched_env(num_firefighters=8)], [policy], "cpu", [0, 1])
    with pytest.raises(ValueError, match="parts=3; expected an integer in 1..2"):
        play_episodes([firefighter.batched_env() for _ in range(2)], [RandomPolicy(firefighter.batched_env().teams[0])],
                      "cpu", [0, 1], parts=3)


def test_acting_copy_shares_weights_and_learning_state_but_not_episode_state():
    algo = make_algorithm(battle.batched_env(map_size=20, agents_per_team=8).teams[0],
                          AlgoConfig(name="bmf_q", hidden=16), radius=6.0)
    algo._setup()
    clone = acting_copy(algo)
    assert clone.buffer is algo.buffer and clone.optimizer is algo.optimizer
    assert clone.interaction.vae_optimizer is algo.interaction.vae_optimizer
    assert clone.interaction.grouping is not algo.interaction.grouping and clone.q is not algo.q
    assert all(a is b for a, b in zip(clone.parameters(), algo.parameters()))
    with torch.no_grad():
        next(algo.q.parameters()).add_(1.0)  # an update of the learner is what the copy acts with
    assert torch.equal(next(clone.q.parameters()), next(algo.q.parameters()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("where", ["local", "worker"])
def test_copies_on_cuda_play_and_record_as_on_cpu(where):
    """The loop on a GPU (observations copied once per step from page-locked buffers, in this
    process or shared with a worker) plays the same greedy episodes and stores the same records
    as on the CPU."""
    torch.manual_seed(0)
    kwargs = {"map_size": 20, "agents_per_team": 8, "max_steps": 12}
    spec = battle.batched_env(**kwargs).teams
    cfg = AlgoConfig(name="mfq", hidden=16, learning_starts=10**9)
    cpu = [make_algorithm(s, cfg, radius=6.0) for s in spec]
    gpu = [copy.deepcopy(p).cuda() for p in cpu]
    copies = WorkerCopies("battle", kwargs, 4) if where == "worker" else \
        LocalCopies([battle.batched_env(**kwargs) for _ in range(4)])
    copies.pin_memory()
    with copies:
        on_gpu = play_episodes(copies, gpu, "cuda", [0, 1, 2, 3], learners={0: gpu[0]}, parts=2)
    on_cpu = play_episodes([battle.batched_env(**kwargs) for _ in range(4)], cpu, "cpu", [0, 1, 2, 3],
                           learners={0: cpu[0]}, parts=2)
    for a, b in zip(on_gpu, on_cpu):
        _same_results(a, b)
    for key, value in cpu[0].buffer.data.items():
        assert torch.allclose(gpu[0].buffer.data[key].cpu().float(), value.float(), atol=1e-5), key
    assert np.array_equal(gpu[0].buffer.next, cpu[0].buffer.next)
