"""Train a team from a checkout: ``python train.py conf=firefighter [key=value ...]``.

The same command as ``bmf-train`` (:mod:`bmf_graph.cli.train`); ``--help`` lists every setting.
"""
import sys

from bmf_graph.cli.train import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
