"""Copies of one task stepped together, in this process or in a worker process.

The episode loop (:func:`bmf_graph.training.rollout.play_episodes`) sees ``E`` copies as one
:class:`EnvCopies`: reset the first ``M <= E`` of them, then step any *part* (copies
``start .. stop-1``) and read that part's arrays back as one :class:`PartStep`. The observations of a team's agents
in every copy are rows of one ``[E * N, O]`` buffer (copy ``e`` owns rows ``e*N .. e*N+N-1``);
each step writes the next observations into the other of two such buffers (the parity of the
step), so the previous step's observations stay readable while the next are written.

:class:`LocalCopies` steps the copies in the calling process. :class:`WorkerCopies` steps them
in one worker process that writes the observations into shared memory, so while the worker
steps one part the caller can run the policies of another (``play_episodes(..., parts=2)``).
A copy whose episode ended is not stepped again; its arrays keep its final state.
:meth:`EnvCopies.pin_memory` page-locks the observation buffers, so that copying them to a GPU
runs without waiting.
"""
from __future__ import annotations

import multiprocessing as mp
import traceback
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

import bmf_graph.envs
from bmf_graph.envs.base import BatchedEnv, TeamSpec, TeamStep

__all__ = ["PartStep", "EnvCopies", "LocalCopies", "WorkerCopies"]

Part = tuple[int, int]


@dataclass
class PartStep:
    """The arrays of copies ``start .. stop-1`` after their reset or step (``P`` copies, ``T``
    teams); observations are rows of :meth:`EnvCopies.obs` in buffer ``parity``."""

    parity: int
    pos: list[np.ndarray]
    """Per team ``[P * N, 2]`` float32."""
    alive: list[np.ndarray]
    """Per team ``[P * N]`` bool: alive after the copy's last step (an ended copy keeps its final
    state; the episode loop masks it)."""
    rewards: list[np.ndarray]
    """Per team ``[P * N]`` float32: each agent's reward of this step (0 for copies not stepped)."""
    survivors: np.ndarray
    """``[P, T]`` agents alive at the last step of each copy."""
    reward: np.ndarray
    """``[P, T]`` team rewards of this step (0 for copies that had ended already)."""
    kills: np.ndarray
    """``[P, T]`` kills of this step."""
    terminated: np.ndarray
    """``[P]`` the copy's episode terminated (now or before)."""
    ended: np.ndarray
    """``[P]`` the copy's episode ended (now or before)."""


class EnvCopies:
    """``num_envs`` copies of one task: ``reset``, then ``step`` / ``result`` per part."""

    teams: tuple[TeamSpec, ...]
    max_steps: int
    num_envs: int
    buffers: list[np.ndarray]
    """Per team ``[2, E * N, O]`` float32 observation buffers (parity, row, feature)."""

    def obs(self, team: int, part: Part, parity: int) -> np.ndarray:
        """``[P * N, O]`` observations of ``team`` in the copies of ``part`` (a view)."""
        n = self.teams[team].num_agents
        return self.buffers[team][parity, part[0] * n:part[1] * n]

    def reset(self, seeds: Sequence[int | None], parts: Sequence[Part]) -> None:
        """Reset copy ``e`` with ``seeds[e]`` for ``e < len(seeds)`` (the others stay idle); the
        first :meth:`result` of each part follows."""
        raise NotImplementedError

    def step(self, part: Part, actions: Sequence[np.ndarray], t: int) -> None:
        """Start step ``t`` of the copies in ``part`` (``actions`` per team, ``[P * N]``); their
        next observations go to buffer ``(t + 1) % 2``."""
        raise NotImplementedError

    def result(self, part: Part) -> PartStep:
        """The arrays of ``part`` after its last reset or step (waits for the worker)."""
        raise NotImplementedError

    def pin_memory(self) -> None:
        """Page-lock the observation buffers (CUDA host registration), so their copies to a GPU
        run asynchronously; a no-op without CUDA or when already pinned."""
        import torch  # not at module level: the worker process never needs it

        if not torch.cuda.is_available() or getattr(self, "_pinned", False):
            return
        cudart = torch.cuda.cudart()
        for buffer in self.buffers:
            error = cudart.cudaHostRegister(buffer.ctypes.data, buffer.nbytes, 1)  # 1: cudaHostRegisterPortable
            if int(error) != 0:
                raise RuntimeError(f"EnvCopies.pin_memory: cudaHostRegister failed with CUDA error {int(error)}")
        self._pinned = True

    def _unpin(self) -> None:
        if getattr(self, "_pinned", False):
            import torch

            for buffer in self.buffers:
                torch.cuda.cudart().cudaHostUnregister(buffer.ctypes.data)
            self._pinned = False

    def close(self) -> None:
        self._unpin()

    def __enter__(self) -> "EnvCopies":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _check_teams(envs: Sequence[BatchedEnv]) -> tuple[TeamSpec, ...]:
    if len(envs) < 1:
        raise ValueError("EnvCopies: got no envs; expected at least one")
    teams = envs[0].teams
    if any(env.teams != teams for env in envs):
        raise ValueError("EnvCopies: every env must have the same teams (copies of one task)")
    return teams


def _buffer_shape(team: TeamSpec, num_envs: int) -> tuple[int, int, int]:
    """(parity, row, feature) of a team's observation buffer."""
    return 2, num_envs * team.num_agents, team.obs_dim


class LocalCopies(EnvCopies):
    """Copies stepped in this process, one after another.

    Args:
        envs: the copies (same teams).
        buffers: per team ``[2, E * N, O]`` float32 arrays to write observations into (shared
            memory in a worker); ``None``: new ones.
    """

    def __init__(self, envs: Sequence[BatchedEnv], buffers: list[np.ndarray] | None = None):
        self.teams, self.envs = _check_teams(envs), list(envs)
        self.num_envs, self.max_steps = len(envs), envs[0].max_steps
        self.buffers = buffers if buffers is not None else \
            [np.zeros(_buffer_shape(t, self.num_envs), np.float32) for t in self.teams]
        self._steps: list[list[TeamStep]] = []
        self._ended = np.zeros(self.num_envs, dtype=bool)
        self._terminated = np.zeros(self.num_envs, dtype=bool)
        self._results: dict[Part, PartStep] = {}

    def reset(self, seeds: Sequence[int | None], parts: Sequence[Part]) -> None:
        if not 1 <= len(seeds) <= self.num_envs:
            raise ValueError(f"EnvCopies.reset: got {len(seeds)} seeds for {self.num_envs} copies; "
                             f"expected 1..{self.num_envs}")
        if any(not 0 <= start < stop <= len(seeds) for start, stop in parts):
            raise ValueError(f"EnvCopies.reset: parts {list(parts)} must lie within the {len(seeds)} copies reset")
        self._steps = []
        for e, (env, seed) in enumerate(zip(self.envs, seeds)):
            self._steps.append(env.reset(seed=seed))
            self._write(e, 0)
        self._ended[:], self._terminated[:] = False, False
        self._ended[len(seeds):] = True
        for part in parts:
            zeros = np.zeros((part[1] - part[0], len(self.teams)))
            self._results[part] = self._collect(part, 0, np.zeros(part[1] - part[0], bool), zeros, zeros)

    def step(self, part: Part, actions: Sequence[np.ndarray], t: int) -> None:
        start, stop = part
        parity = (t + 1) % 2
        reward, kills = np.zeros((stop - start, len(self.teams))), np.zeros((stop - start, len(self.teams)))
        per_copy = [np.asarray(a).reshape(stop - start, -1) for a in actions]
        stepped = ~self._ended[start:stop]
        for e in range(start, stop):
            if self._ended[e]:
                continue
            self._steps[e], term, trunc, info = self.envs[e].step([a[e - start] for a in per_copy])
            self._write(e, parity)
            reward[e - start] = [s.team_reward() for s in self._steps[e]]
            kills[e - start] = np.asarray(info.get("kills", np.zeros(len(self.teams))), dtype=float)
            self._terminated[e], self._ended[e] = term, term or trunc
        self._results[part] = self._collect(part, parity, stepped, reward, kills)

    def result(self, part: Part) -> PartStep:
        return self._results.pop(part)

    def _write(self, e: int, parity: int) -> None:
        for buffer, step in zip(self.buffers, self._steps[e]):
            n = step.alive.shape[0]
            step.obs(out=buffer[parity, e * n:(e + 1) * n])

    def _collect(self, part: Part, parity: int, stepped: np.ndarray, reward: np.ndarray,
                 kills: np.ndarray) -> PartStep:
        copies, teams = slice(*part), range(len(self.teams))
        steps, ended = self._steps[copies], self._ended[copies].copy()
        return PartStep(parity=parity,
                        pos=[np.concatenate([s[i].pos for s in steps]) for i in teams],
                        alive=[np.concatenate([s[i].alive for s in steps]) for i in teams],
                        rewards=[np.concatenate([s[i].reward if on else np.zeros_like(s[i].reward)
                                                 for s, on in zip(steps, stepped)]).astype(np.float32)
                                 for i in teams],
                        survivors=np.array([[int(t.alive.sum()) for t in s] for s in steps]),
                        reward=reward, kills=kills, terminated=self._terminated[copies].copy(), ended=ended)

    def close(self) -> None:
        super().close()
        for env in self.envs:
            env.close()


class WorkerCopies(EnvCopies):
    """``num_envs`` copies of ``make_env(env_name, env_kwargs)`` stepped in one worker process.

    Requests go through a pipe and are served in order; observations come back through shared
    memory, the other arrays through the pipe. :meth:`step` returns at once, so the caller
    works while the worker steps. Use as a context manager, or :meth:`close` it.
    """

    def __init__(self, env_name: str, env_kwargs: Mapping[str, Any] | None, num_envs: int):
        if int(num_envs) < 1:
            raise ValueError(f"WorkerCopies: num_envs={num_envs!r}; expected an integer >= 1")
        probe = bmf_graph.envs.make_env(env_name, env_kwargs)  # the teams, and a clear error for a bad task
        self.teams, self.max_steps, self.num_envs = probe.teams, probe.max_steps, int(num_envs)
        probe.close()
        context = mp.get_context("spawn")  # no fork of a process that may run torch threads
        shared = [context.RawArray("f", int(np.prod(_buffer_shape(t, self.num_envs)))) for t in self.teams]
        self.buffers = _shared_buffers(shared, self.teams, self.num_envs)
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, env_name, dict(env_kwargs or {}),
                                                             self.num_envs, shared), daemon=True)
        self._process.start()
        child.close()
        self._results: dict[Part, PartStep] = {}

    def reset(self, seeds: Sequence[int | None], parts: Sequence[Part]) -> None:
        self._send(("reset", list(seeds), list(parts)))

    def step(self, part: Part, actions: Sequence[np.ndarray], t: int) -> None:
        self._send(("step", part, [np.asarray(a) for a in actions], t))

    def result(self, part: Part) -> PartStep:
        while part not in self._results:
            try:
                kind, payload = self._conn.recv()
            except (EOFError, OSError):
                raise self._exited() from None
            if kind == "error":
                raise RuntimeError(f"WorkerCopies: the worker process failed:\n{payload}")
            self._results.update(payload)
        return self._results.pop(part)

    def _send(self, request: tuple) -> None:
        try:
            self._conn.send(request)
        except OSError:  # BrokenPipeError, ConnectionResetError: the worker is gone
            raise self._exited() from None

    def _exited(self) -> RuntimeError:
        self._process.join(timeout=5)
        return RuntimeError(f"WorkerCopies: the worker process exited (exit code {self._process.exitcode}) "
                            "without answering. It is spawned and imports the main module first, so a "
                            "script that creates WorkerCopies must do so under `if __name__ == \"__main__\":`")

    def close(self) -> None:
        super().close()
        if self._process.is_alive():
            try:
                self._conn.send(("close",))
            except (BrokenPipeError, OSError):
                pass
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.terminate()
        self._conn.close()


def _shared_buffers(shared: list, teams: Sequence[TeamSpec], num_envs: int) -> list[np.ndarray]:
    """Numpy views of the shared observation buffers (the same memory in both processes)."""
    return [np.frombuffer(raw, np.float32).reshape(_buffer_shape(t, num_envs)) for raw, t in zip(shared, teams)]


def _serve(conn: Any, env_name: str, env_kwargs: dict, num_envs: int, shared: list) -> None:
    """The worker: :class:`LocalCopies` over shared buffers, one request at a time."""
    copies = None
    try:
        envs = [bmf_graph.envs.make_env(env_name, env_kwargs) for _ in range(num_envs)]
        copies = LocalCopies(envs, _shared_buffers(shared, envs[0].teams, num_envs))
        while True:
            request = conn.recv()
            if request[0] == "close":
                break
            if request[0] == "reset":
                _, seeds, parts = request
                copies.reset(seeds, [tuple(p) for p in parts])
                conn.send(("result", {tuple(p): copies.result(tuple(p)) for p in parts}))
            else:
                _, part, actions, t = request
                copies.step(part, actions, t)
                conn.send(("result", {part: copies.result(part)}))
    except (EOFError, KeyboardInterrupt):
        pass
    except Exception:  # reported to the caller, who raises it
        conn.send(("error", traceback.format_exc()))
    finally:
        if copies is not None:
            copies.close()
        conn.close()
