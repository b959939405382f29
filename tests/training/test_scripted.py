"""Battle's scripted yardstick team: its action layout against magent2, its choices on hand-built
views, and its strength against a random team."""
import numpy as np
import torch

from bmf_graph.experiments import evaluate
from bmf_graph.algos.base import TeamView
from bmf_graph.envs import make_env
from bmf_graph.training.players import SCRIPTED, load_policy
from bmf_graph.training.scripted import ATTACK_BASE, ATTACKS, MOVES, ScriptedBattleTeam


def test_move_and_attack_ids_match_magent2():
    env = make_env("battle", {"map_size": 20, "agents_per_team": 1, "random_sides": False, "preset": "bmf"})
    try:
        for k, (dx, dy) in enumerate(MOVES.tolist()):
            start = env.reset(seed=0)[0].pos.copy()
            moved = env.step([np.array([k]), np.array([6])])[0][0].pos
            assert (moved - start)[0].tolist() == [dx, dy], k
        for k, (dx, dy) in enumerate(ATTACKS.tolist()):
            env.reset(seed=0)  # red at (5, 9), blue at (13, 9): walk red next to blue, at (12, 9)
            for a in (8, 8, 8, 7):
                env.step([np.array([a]), np.array([6])])
            reward = env.step([np.array([ATTACK_BASE + k]), np.array([6])])[0][0].reward[0]
            assert (reward > 0) == ((dx, dy) == (1, 0)), (k, reward)  # a hit pays, a miss costs
    finally:
        env.close()


def spec_and_view(enemies, hp=None, pos=((10.0, 10.0),), size=13):
    """A team of ``len(pos)`` agents; ``enemies[i]``: (dx, dy) offsets agent ``i`` sees."""
    n, r = len(pos), size // 2
    grid = torch.zeros(n, size, size, 7)
    for i, seen in enumerate(enemies):
        for k, (dx, dy) in enumerate(seen):
            grid[i, r + dy, r + dx, 4] = 1.0
            grid[i, r + dy, r + dx, 5] = 1.0 if hp is None else hp[i][k]
    feature = torch.zeros(n, 34)
    feature[:, -2:] = torch.tensor(pos) / 40.0
    obs = torch.cat([grid.reshape(n, -1), feature], 1)
    spec = make_env("battle", {"map_size": 20, "agents_per_team": 1}).teams[0]
    view = TeamView(obs=obs, pos=torch.tensor(pos), alive=torch.ones(n, dtype=torch.bool),
                    a_prev=torch.zeros(n, 21), prev_obs=obs)
    return ScriptedBattleTeam(spec), view


def test_attacks_the_weakest_adjacent_enemy():
    team, view = spec_and_view([[(1, 0)]])
    assert team.act(view, {}, None).tolist() == [ATTACK_BASE + ATTACKS.tolist().index([1, 0])]
    team, view = spec_and_view([[(1, 0), (-1, 1), (3, 3)]], hp=[[0.9, 0.2, 0.1]])
    assert team.act(view, {}, None).tolist() == [ATTACK_BASE + ATTACKS.tolist().index([-1, 1])]


def test_moves_toward_the_nearest_enemy_the_team_sees():
    # agent 0 sees nothing; agent 1, four cells right of it, sees an enemy 3 cells further right
    team, view = spec_and_view([[], [(3, 0)]], pos=((10.0, 10.0), (14.0, 10.0)))
    actions = team.act(view, {}, None).tolist()
    assert MOVES[actions[0]].tolist() == [2, 0]  # toward (17, 10), two cells a step
    assert MOVES[actions[1]].tolist() == [2, 0]  # ends next to it, never onto it
    team, view = spec_and_view([[(1, 1)], []], pos=((10.0, 10.0), (30.0, 30.0)))
    assert team.act(view, {}, None)[0] >= ATTACK_BASE


def test_advances_to_the_centre_when_no_enemy_is_seen():
    team, view = spec_and_view([[]], pos=((5.0, 20.0),))  # map 40 (features = pos / 40): centre (20, 20)
    assert MOVES[team.act(view, {}, None)[0]].tolist() == [2, 0]
    assert team.policy(view, {}, None).sum(1).tolist() == [1.0]


def test_is_a_source_and_beats_random_in_nine_of_ten_games():
    assert isinstance(load_policy(SCRIPTED, make_env("battle", {"map_size": 20}).teams[1]), ScriptedBattleTeam)
    result = evaluate.head_to_head([SCRIPTED], games=20, env_kwargs={"map_size": 20}, include_random=True)
    scripted = result["table"]["overall"][0]
    assert scripted["player"] == "scripted" and scripted["games"] == 20
    assert scripted["wins"] >= 18
