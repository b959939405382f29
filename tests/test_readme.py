"""The README's Python examples run as written."""
import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), namespace)
    if "critic_input" in namespace:  # the layers example: shapes and attention rows
        assert tuple(namespace["critic_input"].shape) == (64, 42)
        weight, group = namespace["weight"].to_dense(), namespace["group"]
        nonempty = group.bincount(minlength=4) > 0
        if int(nonempty.sum()) > 1:
            assert weight[nonempty].sum(1).allclose(weight.new_ones(int(nonempty.sum())))
