"""How the process runs JAX for many small fits at once: one XLA thread per computation, compiled code kept.

``perceptiongap reproduce`` runs its ADVI fits several at a time, one per core, in threads. Each
fit's computations are small (one log density over ~65,000 cells), so XLA's own intra-op thread
pool has nothing to gain from splitting them again across the same cores; keeping each on its
thread made no measurable difference to CPU time on the busy 2-core machine
(``benchmarks/stan_advi_speed.py``: 38.9 against 39.7 s CPU), and is kept as the setting for many
concurrent fits. JAX's persistent compilation cache keeps each compiled function on disk, so a
later run skips the compiles (about 8 s CPU per model shape of ``stan-advi``: 22.4 against 35.9 s
CPU for two shapes x 4 seeds). Neither changes a number: the benchmark and
``tests/model/test_runtime.py`` check every fit bit for bit.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SINGLE_THREAD_XLA_FLAGS", "configure_jax", "default_cache_dir"]

#: XLA flags that keep each computation on the thread that runs it.
SINGLE_THREAD_XLA_FLAGS = ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1")


def default_cache_dir() -> Path:
    """``$PERCEPTIONGAP_JAX_CACHE``, else ``$XDG_CACHE_HOME/perceptiongap/jax`` (``~/.cache/...``)."""
    explicit = os.environ.get("PERCEPTIONGAP_JAX_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "perceptiongap" / "jax"


def configure_jax(cache_dir: str | Path | None = None, *, single_thread: bool = True) -> bool:
    """Set the process up for many concurrent fits; returns whether the XLA flags took effect.

    Call before the first JAX computation: XLA reads its flags when its CPU backend starts, so
    once it has started only the cache can still be switched on (and False is returned).
    ``cache_dir`` (None: no persistent cache) holds compiled functions; every compile worth
    keeping (over 0.2 s) is stored. Flags the user already put in ``XLA_FLAGS`` are kept.
    """
    import jax
    from jax._src import xla_bridge

    applied = False
    if single_thread and not xla_bridge.backends_are_initialized():
        present = os.environ.get("XLA_FLAGS", "").split()
        names = {flag.split("=")[0] for flag in present}
        extra = [flag for flag in SINGLE_THREAD_XLA_FLAGS if flag.split("=")[0] not in names]
        os.environ["XLA_FLAGS"] = " ".join(present + extra)
        applied = True
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(cache_dir))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    return applied
