"""Bridges to other MARL libraries (extra ``[benchmarl]``; docs/integrations.md).

- :mod:`bmf_graph.integrations.torchrl`: :class:`BMFNet`, the dense BMF block on
  ``[*, n, F]`` observations, and :func:`bmf_module`, its TensorDict module.
- :mod:`bmf_graph.integrations.benchmarl`: :class:`BMFConfig`, a BenchMARL ``ModelConfig``.

Each submodule imports its library when imported itself, so ``bmf_graph`` runs without them.
"""
