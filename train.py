"""Train a team: ``python train.py conf=firefighter [key=value ...]``.

Examples::

    python train.py conf=firefighter
    python train.py conf=battle algo=mfq seed=3 device=cuda train.episodes=200 algo.num_groups=6
    python train.py resume=runs/firefighter__bmf_q__0__20260101-120000
"""
import sys

from bmf_graph.algos import NonFiniteLoss
from bmf_graph.checkpoint import UnreadableFile
from bmf_graph.config import ConfigError, load_config
from bmf_graph.files import DiskFull
from bmf_graph.runlock import RunLocked
from bmf_graph.trainer import train


def main(argv: list[str]) -> int:
    try:
        cfg = load_config(argv)
        run_dir = train(cfg)
    except (ConfigError, NonFiniteLoss, FileExistsError, FileNotFoundError, RunLocked, DiskFull,
            UnreadableFile) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError) else 1
    print(f"run folder: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
