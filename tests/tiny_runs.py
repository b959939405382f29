"""Settings for training runs of a few seconds, shared by the tests that need real runs."""

TINY = {
    "firefighter": ["env.kwargs.num_firefighters=12", "env.kwargs.max_steps=12"],
    "battle": ["env.kwargs.map_size=20", "env.kwargs.agents_per_team=8", "env.kwargs.max_steps=10"],
    "pursuit": ["env.kwargs.map_size=20", "env.kwargs.num_predators=6", "env.kwargs.num_prey=8",
                "env.kwargs.max_steps=10", "algo.batch_size=64"],
}
"""Task overrides: small maps and teams, short episodes (Pursuit's 256-row minibatches would
outnumber a two-episode run's 120 predator transitions, so no update would happen)."""

FAST = ["train.progress=false", "algo.learning_starts=4", "algo.update_every=2", "algo.batch_steps=4",
        "algo.buffer_size=768", "algo.hidden=16", "algo.num_groups=3", "algo.group_interval=3", "threads=1",
        "train.envs=1", "train.state_minutes=0"]
"""Algorithm overrides: updates from the first steps, small networks and replay; one episode per
round (tests of several copies per round set ``train.envs``); the run state at every checkpoint
(Battle's and Pursuit's confs space it by minutes)."""


def interrupted_run(runs_dir, monkeypatch, stop_at, cfg):
    """The folder of a run of ``cfg`` (in ``runs_dir``) stopped by a KeyboardInterrupt when
    ``stop_at`` episodes are done."""
    from bmf_graph.training.trainer import Trainer, train

    original = Trainer.run_round

    def stop(self, *a, **k):
        if self.episode == stop_at:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(Trainer, "run_round", stop)
    try:
        train(cfg)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the run was not interrupted")
    monkeypatch.setattr(Trainer, "run_round", original)
    return next(p for p in runs_dir.iterdir() if p.is_dir())
