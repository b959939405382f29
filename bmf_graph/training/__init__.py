"""Training: the trainer and its one episode loop (:mod:`~bmf_graph.training.trainer`,
:mod:`~bmf_graph.training.rollout`), the teams' players, frozen-policy evaluation during training,
and the run folder's files (checkpoints, model files, metrics, locks, resume checks, limits).

    from bmf_graph.config import load_config
    from bmf_graph.training.trainer import train
    run_dir = train(load_config(["conf=firefighter", "train.episodes=20"]))

Nothing is imported here, so that :mod:`bmf_graph.algos` can be imported without the trainer.
"""
