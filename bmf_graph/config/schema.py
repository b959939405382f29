"""The configuration schema: one dataclass per component, with its defaults; the task files
and the command line only override them (:func:`bmf_graph.config.load_config`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

@dataclass
class EnvConfig:
    """The task."""

    name: str = "firefighter"
    """Task: one of ``firefighter``, ``battle``, ``pursuit``, ``vmas`` (continuous actions;
    ``kwargs.scenario`` picks the VMAS scenario, docs/continuous.md)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the task's ``batched_env`` (e.g. ``num_firefighters``, ``map_size``)."""
    radius: float = 1.5
    """Neighbour radius of the agent graph: ``j -> i`` iff ``|pos_i - pos_j| < radius``."""
    learn_teams: list[int] = field(default_factory=lambda: [0])
    """Indices of the teams that learn; the other teams follow ``opponent``."""


@dataclass
class AlgoConfig:
    """The learning algorithm (``docs/method.md``: the method as implemented; ``docs/protocol.md``:
    the Q family's target, exploration and replay ratio)."""

    name: str = "bmf_q"
    """One of ``q, mfq, ac, mfac, gat_mf, bmf_q, bmf_ac``."""
    network: str = "branched"
    """Critic, value and actor network (``bmf_graph/algos/networks.py``, docs/networks.md):
    ``branched`` (MFRL's battle model with a dense view trunk; the context enters through its
    own branch), ``reference`` (MFRL's model exactly, with its conv trunk) or ``mlp`` (v2's
    network: one dense layer on the flat observation, the raw context joined after it)."""
    context_branches: str = "shared"
    """How a context made of parts (BMF's ``[a_intra || a_inter]``) enters ``branched`` and
    ``reference`` networks: ``shared`` (one branch, dense 64 -> 32, over the whole context) or
    ``split`` (each part through its own branch of that shape). One-part contexts (MF, GAT-MF)
    are the same either way."""
    hidden: int = 64
    """Width of the hidden layers of ``network=mlp``, of the agent VAE and of the attention
    projections."""
    lr: float = 1e-4
    """Adam learning rate of the policy / value networks (MFRL: 1e-4)."""
    gamma: float = 0.95
    """Discount factor."""
    max_grad_norm: float = 10.0
    """Gradient clipping (global norm)."""
    # Q family: q, mfq, gat_mf, bmf_q (one learning rule; only the critic input differs)
    target: str = "double_q"
    """Bootstrap of the Q target, the same for every Q method: ``double_q`` (MFRL's code),
    ``y = r + gamma (1 - d) Qbar(o', argmax_a Q(o', a, abar'), abar')``; ``expectation``
    (Yang et al. 2018), ``y = r + gamma (1 - d) sum_a pi(a | o', abar') Qbar(o', a, abar')``
    with ``pi`` the acting policy of ``exploration`` at the current training progress."""
    exploration: str = "epsilon"
    """Acting policy while training: ``epsilon`` (epsilon-greedy over Q, MFRL; ``epsilon_*``
    schedule) or ``boltzmann`` (``softmax(Q / T)``; ``temperature_*`` schedule)."""
    epsilon_start: float = 1.0
    """epsilon at the first episode."""
    epsilon_mid: float = 0.2
    """epsilon at ``epsilon_mid_fraction`` of the episodes (linear from ``epsilon_start``)."""
    epsilon_mid_fraction: float = 0.8
    """Training progress (episode / (episodes - 1)) at which epsilon reaches ``epsilon_mid``."""
    epsilon_end: float = 0.1
    """epsilon at the last episode (linear from ``epsilon_mid``). MFRL: 1 -> 0.2 -> 0.1."""
    epsilon_scope: str = "team"
    """Where epsilon-greedy draws its switch: ``team`` (MFRL: one draw per team and env step;
    the whole team acts uniformly at random or the whole team greedily) or ``agent`` (every
    agent draws its own)."""
    temperature_start: float = 1.0
    """Boltzmann temperature at the start of training."""
    temperature_end: float = 0.1
    """Boltzmann temperature after ``explore_fraction`` of the episodes."""
    explore_fraction: float = 0.6
    """Fraction of the episodes over which the temperature (Boltzmann) or the DDPG noise
    (continuous actions) decays linearly."""
    replay_ratio: float = 2.0
    """Expected number of times each stored agent transition is sampled (MFRL's Battle code:
    2). Every recorded step earns ``replay_ratio * alive agents`` of credit; a gradient step on
    ``batch_steps`` records costs ``batch_steps * mean alive agents per stored record``; every
    ``update_every`` team records the learner takes the gradient steps its credit pays for. With
    ``train.envs`` copies, each copy's steps earn credit: the same gradient steps per env step."""
    buffer_size: int = 128_000
    """Replay capacity in agent transitions (MFRL's ``memory_size``): the last ``buffer_size // N``
    team records are kept, one per env copy and step (2,000 at 64 agents, 125 at 1,024)."""
    sampling: str = "agents"
    """What a minibatch holds: ``agents`` (MFRL: ``batch_size`` agent transitions drawn
    uniformly from all stored ones) or ``team_steps`` (v2: ``batch_steps`` whole team records,
    all alive agents of each)."""
    batch_size: int = 64
    """``sampling=agents``: agent transitions per minibatch (MFRL: 64)."""
    batch_steps: int = 16
    """``sampling=team_steps``: team records (env copy-steps) per minibatch."""
    diagnostics_every: int = 500
    """Gradient steps between two measurements of ``charts/context_effect`` and
    ``charts/dead_units_*`` on a held batch of stored records (0: never)."""
    learning_starts: int = 200
    """Team records stored (env copy-steps, every copy counts) before the first update."""
    update_every: int = 4
    """Q family: team records stored (env copy-steps) between updates (``I_u``); each takes the
    gradient steps that ``replay_ratio`` pays for."""
    updates: int = 1
    """Actor-critic family: gradient steps per episode batch (the Q family's number follows
    from ``replay_ratio``)."""
    tau: float = 0.99
    """Soft target update after every gradient step, ``target <- tau * online + (1 - tau) *
    target`` (MFRL: 0.99, so the target trails the online network by one step)."""
    # Actor-critic family
    critic: str = "q"
    """AC family: ``q`` (paper Eq. 9: a critic ``Q(o, ., context)`` trained like the Q family, with
    replay and a soft target network, evaluating the actor; the actor learns from the
    all-actions advantage) or ``value`` (A2C on episode batches with ``V(o, context)``, MFRL's
    MFAC)."""
    actor_context: bool = False
    """AC family: the actor also reads the critic input, ``pi(a | o, context)`` (the paper's
    released BMF code); otherwise ``pi(a | o)``."""
    gae_lambda: float = 0.95
    """``critic=value``: GAE lambda of the advantage estimate (1.0 = Monte-Carlo returns)."""
    entropy_coef: float = 0.01
    """AC family: entropy bonus weight ``c_H``, the temperature of the policy the actor converges
    to (``pi ~ exp(A / c_H)``); with ``entropy_coef_start``, its value after ``explore_fraction``
    of the episodes."""
    entropy_coef_start: Optional[float] = None
    """AC family: ``c_H`` at the start of training, linear to ``entropy_coef`` over the first
    ``explore_fraction`` of the episodes, as the Boltzmann temperature of the Q family; ``None``:
    ``entropy_coef`` throughout."""
    actor_temperature: bool = True
    """AC family: the actor's outputs are advantages and the entropy weight ``c_H`` divides them
    before the softmax, ``pi = softmax(f / c_H)`` (v3; the same optimum ``pi ~ exp(A / c_H)``, reached
    at ``f = A`` whatever ``c_H``); false: the outputs are the logits (v2, whose Firefighter actors
    lost their hidden units while ``c_H`` was large, docs/networks.md)."""
    value_coef: float = 0.5
    """``critic=value``: value loss weight."""
    actor_lr: float = 1e-4
    """Adam learning rate of the actor of ``critic=q`` and of the continuous (DDPG) forms; the
    critic uses ``lr``. An actor slower than its critic (two timescales, as DDPG, Lillicrap et
    al. 2016) does not chase the critic's early transients (docs/networks.md, section 6).
    ``critic=value`` trains actor and critic with one optimizer at ``lr``."""
    # Continuous actions: the DDPG form of ac, mfac, bmf_ac and gat_mf (docs/continuous.md)
    noise_start: float = 0.5
    """Continuous actions: standard deviation of the Gaussian exploration noise at the start of
    training, as a fraction of the action Box's half-width (noisy actions are clipped to the Box)."""
    noise_end: float = 0.05
    """Continuous actions: the noise's standard deviation after ``explore_fraction`` of the
    episodes (linear from ``noise_start``), kept to the end."""
    # GAT-MF
    dense: bool = False
    """GAT-MF only: full N x N attention masked by adjacency, as the reference code."""
    # BMF
    num_groups: int = 4
    """BMF: k, groups per team."""
    group_interval: int = 5
    """BMF: environment steps between regroupings (``I_g``): groups are formed at steps
    ``t = 1, 1 + I_g, 1 + 2 I_g, ...`` of every episode (and at ``t = 0``, from the first
    observations). Keep it shorter than the task's typical episode."""
    grouping: str = "vae"
    """BMF: ``vae`` (the method), ``ae`` (autoencoder ablation) or ``random`` (BMF-RC)."""
    latent_dim: int = 32
    """BMF: size of the agent representation ``z`` (32 as the paper's released code)."""
    scoring: str = "gatv2"
    """BMF: inter-group attention scores, ``gatv2`` (pairwise), ``gat`` (static, every group
    ranks the others alike) or ``cosine`` (parameter-free cosine weights of the released code)."""
    heads: int = 1
    """BMF: attention heads of the inter-group attention (``gatv2``, ``gat``)."""
    vae_lr: float = 1e-3
    """BMF: Adam learning rate of the agent VAE."""
    beta: float = 1e-3
    """BMF: KL weight of the VAE loss (the KL is summed over latent dimensions)."""
    lambda_rec: float = 1.0
    """BMF: reconstruction weight of the VAE loss (squared error summed over the features of
    ``(o, a)``)."""
    lambda_pred: float = 0.1
    """BMF: value-prediction weight of the VAE loss. 0.1 keeps reconstruction the larger source
    of the encoder's gradient on Firefighter, whose team rewards make the prediction error large
    (docs/method.md lists the measured terms)."""
    vae_every: int = 4
    """BMF: the agent VAE takes a gradient step on every ``vae_every``-th update of the critic
    (on that update's batch, its alive agents); 1 trains it on every update. 4 halves BMF-Q's
    update time with returns as good on a short Battle run (``docs/performance.md``)."""


V2_ALGO = {"network": "mlp", "sampling": "team_steps", "epsilon_scope": "agent", "actor_temperature": False}
"""What the algorithm settings added in v3 meant before they existed: a model file or run
configuration written without them was trained with these (:func:`with_v2_defaults`)."""


def with_v2_defaults(algo: dict[str, Any]) -> dict[str, Any]:
    """An algorithm settings dict read from a file, with :data:`V2_ALGO` for the keys it lacks."""
    return {**{k: v for k, v in V2_ALGO.items() if k not in algo}, **algo}


@dataclass
class OpponentConfig:
    """What the teams that do not learn do."""

    policy: str = "random"
    """``self_play`` (MFRL: an algorithm of the learner's kind with its own initialisation,
    moved toward the learner after each episode the learner wins; Battle), ``random`` or
    ``checkpoint``."""
    checkpoint: Optional[str] = None
    """Model file to load for ``policy=checkpoint``."""
    tau: float = 0.01
    """Self-play: the weight the opponent keeps on its OWN parameters when it is updated,
    ``opponent <- (1 - tau) * learner + tau * opponent`` (MFRL's ``tau = 0.01``: the
    opponent becomes 99 % learner). 0 copies the learner, 1 never changes the opponent."""


@dataclass
class TrainConfig:
    """The training loop."""

    episodes: int = 100
    """Training episodes."""
    max_steps: Optional[int] = None
    """Episode length; ``None`` keeps the task's own limit."""
    save_every: int = 25
    """Episodes between checkpoints (one is always written at the end; with ``envs`` copies a
    checkpoint follows the round of episodes that reaches a multiple of ``save_every``)."""
    state_minutes: float = 0.0
    """Least minutes between two writes of the resumable state ``checkpoints/last.pt`` (networks,
    optimisers and replay memory: about 640 MB on Battle, 2.4 s a write). A checkpoint writes it
    only when that long has passed since the last write or the start; 0 writes it at every
    checkpoint. Model files follow every checkpoint either way, the end always writes it, and a
    resume repeats the episodes played after the last write."""
    envs: int = 16
    """Env copies each round plays at once, one episode each (one metrics row per episode):
    every policy runs one forward pass per team and step for all copies (16: measured on Battle
    64 v 64, see ``docs/performance.md``)."""
    worker: bool = False
    """Step the copies in a worker process and play them in two halves, so that the worker
    steps one half while the networks run on the other (needs ``envs >= 2``)."""
    progress: bool = True
    """Show a progress bar."""
    eval_every: Optional[int] = None
    """Episodes between evaluations of the frozen policy (exploration off, nothing learning; one
    more at the end) into ``eval.csv``; ``None``: 10 % of ``episodes``, rounded up
    (:mod:`bmf_graph.training.evaluation`)."""
    eval_episodes: int = 10
    """Episodes per evaluation, on seeds disjoint from the training episodes'."""


@dataclass
class LoggingConfig:
    """Where metrics go besides ``metrics.csv``, which every run writes (docs/integrations.md)."""

    tensorboard: bool = True
    """TensorBoard events in the run folder."""
    wandb: bool = False
    """Weights & Biases (extra ``[wandb]``); ``WANDB_MODE=offline`` keeps it on disk."""
    mlflow: bool = False
    """MLflow (extra ``[mlflow]``), to ``MLFLOW_TRACKING_URI`` (MLflow's default when unset)."""
    project: str = "bmf_graph"
    """The W&B project and the MLflow experiment the run logs to."""


@dataclass
class Config:
    """A whole run."""

    conf: str = "firefighter"
    """The task file the run started from: a shipped one by name (``firefighter``, ``battle``,
    ``pursuit``: ``conf/NAME.yaml``) or a path to a YAML file (the run keeps its stem)."""
    seed: int = 0
    """Seeds ``random``, numpy, torch and every episode's ``reset(seed=)``."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    runs_dir: str = "runs"
    """Parent folder of run folders."""
    run_name: Optional[str] = None
    """Run folder name, a relative path inside ``runs_dir`` (no ``..``); default
    ``{conf}__{algo}__{seed}__{time}``."""
    resume: Optional[str] = None
    """Run folder to continue exactly where its last checkpoint stopped, with its own
    ``config.yaml``; only :data:`~bmf_graph.config.checks.RESUME_KEYS` may be given with it (``train.episodes=N``
    extends the run)."""
    threads: int = 0
    """torch CPU threads; 0 keeps torch's default."""
    overwrite: bool = False
    """Replace the run folder ``runs_dir/run_name`` if it exists (its files are removed first;
    refused while another process holds it, and for a folder that is not a run folder)."""
    env: EnvConfig = field(default_factory=EnvConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    opponent: OpponentConfig = field(default_factory=OpponentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
