"""Train a team: ``python train.py conf=firefighter [key=value ...]``.

Examples::

    python train.py conf=firefighter
    python train.py conf=battle algo=mfq seed=3 device=cuda train.episodes=200 algo.num_groups=6
    python train.py resume=runs/firefighter__bmf_q__0__20260101-120000
"""
import sys

from bmf_graph.runlock import RunLocked, refuse_locked_resume

if __name__ == "__main__":  # a locked run folder is refused before the heavy imports below
    try:
        refuse_locked_resume(sys.argv[1:])
    except RunLocked as locked:
        print(f"error: {locked}", file=sys.stderr)
        sys.exit(1)

from bmf_graph.algos import NonFiniteLoss  # noqa: E402
from bmf_graph.checkpoint import UnreadableFile  # noqa: E402
from bmf_graph.config import ConfigError, load_config  # noqa: E402
from bmf_graph.files import DiskFull  # noqa: E402
from bmf_graph.trainer import train  # noqa: E402


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
