"""The PyG examples of docs/integrations.md run as written and give what the page says."""
import pathlib
import re

import torch

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "integrations.md"


def test_integration_page_pyg_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    pyg = [b for b in blocks if "benchmarl" not in b]
    assert len(pyg) == 3
    scope = {}
    exec(compile("\n".join(pyg), str(DOC), "exec"), scope)
    assert scope["mean"].shape == (32, 10, 5) and scope["inter"].shape == (32, 10, 5)
    edge_index, batch = scope["batch"].edge_index, scope["batch"].batch
    assert torch.equal(batch[edge_index[0]], batch[edge_index[1]])
