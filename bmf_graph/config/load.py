"""Loading a run configuration.

``load_config(argv)`` builds it from, in order, the dataclass defaults of
:mod:`bmf_graph.config.schema`, the task file ``conf=NAME`` (``conf/NAME.yaml``, shipped with the
package, or a path to a YAML file of your own) and ``key=value`` command-line overrides. OmegaConf
rejects unknown keys and wrong types; :func:`~bmf_graph.config.checks.validate` rejects invalid
values, naming the key and the valid choices.

    python train.py conf=battle algo=mfq seed=3 device=cuda train.episodes=200 algo.num_groups=6
"""
from __future__ import annotations

from functools import reduce
from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bmf_graph.config.checks import RESUME_KEYS, ConfigError, check_resume, validate
from bmf_graph.config.schema import Config


def _conf_dir() -> Path:
    """``conf/`` at the top of the repository in a checkout (editable installs included), else
    the copy an installed wheel carries in the package (``bmf_graph/conf/``)."""
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent / "conf"
    return checkout if (package.parent / "pyproject.toml").is_file() and checkout.is_dir() else package / "conf"


CONF_DIR = _conf_dir()
"""The shipped task files: ``conf=firefighter`` reads ``CONF_DIR / "firefighter.yaml"``."""


SHORTHANDS = {"algo": "algo.name", "env": "env.name"}
"""Command-line shorthands: ``algo=mfq`` sets ``algo.name``, ``env=battle`` sets ``env.name``."""


def _expand(overrides: Sequence[str]) -> tuple[str, list[str]]:
    """Split off ``conf=NAME`` and turn shorthands (``algo=mfq``) into full keys."""
    conf, dotlist = "firefighter", []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        if key == "conf":
            conf = value
        elif key == "resume" and not value.strip():
            raise ConfigError("resume='' is not valid; expected a run folder (resume=runs/NAME)")
        else:
            dotlist.append(f"{SHORTHANDS.get(key, key)}={value}")
    return conf, dotlist


def conf_path(conf: str, conf_dir: Path | str = CONF_DIR) -> Path:
    """The task file of ``conf=``: ``conf_dir/{conf}.yaml`` for a name, the file itself for a
    path ending in ``.yaml`` / ``.yml``."""
    if conf.endswith((".yaml", ".yml")):
        path = Path(conf)
        if not path.is_file():
            raise ConfigError(f"conf={conf!r} is not a file; expected a YAML file or one of {', '.join(conf_names(conf_dir))}")
        return path
    if not conf.strip() or "/" in conf or "\\" in conf or conf.startswith("."):
        raise ConfigError(f"conf={conf!r} is not valid; expected the name of a shipped task file "
                          f"({', '.join(conf_names(conf_dir))}) or a path to a YAML file")
    path = Path(conf_dir) / f"{conf}.yaml"
    if not path.is_file():
        raise ConfigError(f"conf={conf!r} has no file {path.name}; expected one of {', '.join(conf_names(conf_dir))} "
                          f"or a path to a YAML file")
    return path


def conf_names(conf_dir: Path | str = CONF_DIR) -> list[str]:
    """Names of the task files in ``conf_dir`` (the shipped ones by default)."""
    return sorted(p.stem for p in Path(conf_dir).glob("*.yaml"))


def _merge(path: Path, *layers: Any) -> Config:
    """The schema <- ``path`` <- ``layers``; a wrong type or unknown key becomes a
    :class:`ConfigError` naming the key and the value."""
    try:
        base = OmegaConf.load(path)
    except Exception as error:  # noqa: BLE001 - any YAML or OS error: name the file
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"{path} is not a readable configuration ({first})") from None
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), base, *layers))
    except OmegaConfBaseException as error:
        key, value = getattr(error, "full_key", None), getattr(error, "value", None)
        first = str(error).splitlines()[0]
        named = f"{key}={value!r} is not valid: " if key and value is not None else (f"{key}: " if key else "")
        raise ConfigError(f"{named}{first} (in {path} or the command line)") from None


def load_config(overrides: Sequence[str] = (), conf_dir: Path | str = CONF_DIR) -> Config:
    """Defaults <- the task file of ``conf=`` (:func:`conf_path`) <- ``key=value`` overrides,
    validated. With ``resume=RUN`` the base is the run's own ``config.yaml`` and only
    :data:`~bmf_graph.config.checks.RESUME_KEYS` may be given (``train.episodes=N`` extends the run)."""
    conf, dotlist = _expand(overrides)
    resume = next((item.split("=", 1)[1] for item in dotlist if item.startswith("resume=")), None)
    if resume is not None:
        if not (Path(resume) / "config.yaml").is_file():
            raise ConfigError(f"resume={resume!r} is not a run folder (no config.yaml in it)")
        named = [{"conf": Path(conf).stem}] if any(item.startswith("conf=") for item in overrides) else []
        return resume_config(_merge(Path(resume) / "config.yaml", OmegaConf.from_dotlist(dotlist), *named))
    path = conf_path(conf, conf_dir)
    return validate(_merge(path, OmegaConf.from_dotlist(dotlist), {"conf": path.stem}))


def resume_config(cfg: Config) -> Config:
    """The configuration ``resume=cfg.resume`` continues: the run's ``config.yaml`` with
    ``cfg``'s :data:`~bmf_graph.config.checks.RESUME_KEYS`. Any other setting of ``cfg`` that differs from the run's is
    refused (a resumed run keeps its settings, or it would no longer be one run)."""
    run_dir = Path(cfg.resume)
    saved = from_yaml(run_dir / "config.yaml", check=False)
    check_resume(cfg, saved)
    saved.resume = str(run_dir)
    for key in RESUME_KEYS:
        *sections, name = key.split(".")
        setattr(reduce(getattr, sections, saved), name, getattr(reduce(getattr, sections, cfg), name))
    return validate(saved)


def to_yaml(cfg: Config) -> str:
    """The resolved configuration as YAML (written into every run folder)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def from_yaml(path: Path | str, check: bool = True) -> Config:
    """Read a run folder's ``config.yaml`` back against the schema; ``check`` also runs
    :func:`~bmf_graph.config.checks.validate` (off to read a run whose files, e.g. an opponent checkpoint, moved)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; expected a run folder's config.yaml")
    cfg = _merge(path)
    return validate(cfg) if check else cfg
