"""Train a team from a checkout: ``python train.py conf=firefighter [key=value ...]``.

The same command as ``bmf-train`` (:mod:`bmf_graph.cli.train`); ``--help`` lists every setting.
"""
import sys

from bmf_graph.training.runlock import RunLocked, refuse_locked_resume

if __name__ == "__main__":  # a locked run folder is refused before the heavy imports below
    try:
        refuse_locked_resume(sys.argv[1:])
    except RunLocked as locked:
        print(f"error: {locked}", file=sys.stderr)
        sys.exit(1)

from bmf_graph.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
