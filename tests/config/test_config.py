import pytest

from bmf_graph.config import from_yaml, load_config, to_yaml
from bmf_graph.config.checks import ALGORITHMS, ConfigError


def test_defaults_and_overrides():
    cfg = load_config(["conf=battle", "algo=mfq", "seed=3", "device=cpu", "train.episodes=200", "algo.num_groups=6"])
    assert (cfg.conf, cfg.env.name, cfg.algo.name, cfg.seed) == ("battle", "battle", "mfq", 3)
    assert cfg.train.episodes == 200 and cfg.algo.num_groups == 6
    assert cfg.opponent.policy == "self_play"  # from conf/battle.yaml


def test_every_conf_file_loads():
    for conf in ("firefighter", "battle", "pursuit"):
        assert load_config([f"conf={conf}"]).env.name == conf


def test_task_protocols():
    """Battle: MFRL's budget and self-play, the released code's rewards; Pursuit: both teams learn."""
    battle = load_config(["conf=battle"])
    assert (battle.train.episodes, battle.env.kwargs["preset"], battle.train.state_minutes) == (2000, "bmf", 10)
    assert (battle.opponent.policy, battle.opponent.tau) == ("self_play", 0.01)
    assert (battle.algo.target, battle.algo.exploration, battle.algo.replay_ratio) == ("double_q", "epsilon", 2.0)
    pursuit = load_config(["conf=pursuit"])
    assert pursuit.env.learn_teams == [0, 1] and (pursuit.train.episodes, pursuit.train.state_minutes) == (500, 10)


def test_yaml_round_trip(tmp_path):
    cfg = load_config(["algo=gat_mf", "algo.dense=true"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg))
    assert from_yaml(path) == cfg


@pytest.mark.parametrize("override, match", [
    (["algo=sarsa"], "algo.name='sarsa' is not valid; expected one of " + ", ".join(ALGORITHMS)),
    (["algo.num_grups=3"], "num_grups"),
    (["seed=abc"], "abc"),
    (["device=tpu"], "device='tpu'"),
    (["algo.grouping=pca"], "algo.grouping='pca'.*vae, ae, random"),
    (["algo.scoring=dot"], "algo.scoring='dot' is not valid; expected one of gatv2, gat, cosine"),
    (["algo.critic=v"], "algo.critic='v' is not valid; expected one of q, value"),
    (["algo.gamma=1.5"], r"algo.gamma=1.5.*\[0, 1\]"),
    (["algo.num_groups=0"], "algo.num_groups=0"),
    (["env.radius=-1"], "env.radius=-1"),
    (["conf=nope"], "conf='nope'.*firefighter"),
    (["env.kwargs.num_housez=3"], "env.kwargs.num_housez"),
    (["opponent.policy=checkpoint"], "opponent.checkpoint"),
    (["opponent.tau=1.5"], r"opponent.tau=1.5.*\[0, 1\]"),
    (["algo.target=max"], "algo.target='max' is not valid; expected one of double_q, expectation"),
    (["algo.exploration=ucb"], "algo.exploration='ucb' is not valid; expected one of epsilon, boltzmann"),
    (["algo.epsilon_end=-0.1"], r"algo.epsilon_end=-0.1.*\[0, 1\]"),
    (["algo.replay_ratio=0"], "algo.replay_ratio=0"),
    (["resume=/nonexistent/run"], "not a run folder"),
    (["noequals"], "key=value"),
])
def test_bad_values_fail_at_start_naming_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(override)
