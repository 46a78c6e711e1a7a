"""``nuts``: exact inference with NumPyro's NUTS, and the CPU devices its parallel chains need.

Two chains of 500 warm-up + 500 draws by default. JAX runs chains in parallel only when it has
one device per chain; on a CPU it has one device unless told otherwise before its backend starts.
:func:`use_host_devices` tells it; :func:`fit_nuts` runs the chains in parallel when the devices
are there and one after another (with a logged warning) when they are not. The draws are the same
either way (chain k uses the same key); only the run time differs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import arviz as az
import jax
import numpy as np

from perceptiongap.model.data import ModelData
from perceptiongap.model.density import device_data, flat_model_for
from perceptiongap.model.keys import fit_key
from perceptiongap.model.posterior_io import SITE_DIMS, to_inference_data

__all__ = ["NUTSSettings", "fit_nuts", "use_host_devices"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class NUTSSettings:
    """Chains, their lengths and the step-size adaptation's target acceptance probability."""

    num_warmup: int = 500
    num_samples: int = 500
    num_chains: int = 2
    target_accept_prob: float = 0.8


def _backend_started() -> bool:
    from jax._src import xla_bridge  # JAX offers no public query for this

    return bool(xla_bridge.backends_are_initialized())


def use_host_devices(n: int) -> bool:
    """Ask JAX for ``n`` CPU devices, so that :func:`fit_nuts` can run ``n`` chains in parallel.

    Call it once, before any JAX computation in the process (importing JAX is fine, running
    anything on it is not): JAX fixes its devices when its backend starts, and later calls cannot
    change them. It sets XLA's host device count (:func:`numpyro.set_host_device_count`), which
    affects CPU devices only. ``perceptiongap.fit`` and the command line call it for you; call it
    yourself at the top of a script or notebook that calls :func:`fit_nuts` directly::

        from perceptiongap.model import use_host_devices
        use_host_devices(2)      # first thing, before any fit
        ...
        posterior = fit_nuts(data, seed=0)   # chains in parallel; attrs["chain_method"] == "parallel"

    Returns True when JAX will have (or already has) at least ``n`` devices; False when its
    backend had already started with fewer, in which case a warning is logged and NUTS runs its
    chains one after another.
    """
    import numpyro

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of devices must be a positive int, got {n!r}")
    if _backend_started():
        have = jax.local_device_count()
        if have < n:
            logger.warning(
                "JAX has already started with %d device(s); use_host_devices(%d) must run before any JAX work, "
                "so NUTS chains will run one after another", have, n,
            )
        return have >= n
    numpyro.set_host_device_count(n)
    return True


def fit_nuts(
    data: ModelData,
    seed: int | None = None,
    settings: NUTSSettings | None = None,
    *,
    key: jax.Array | None = None,
    progress_bar: bool = False,
) -> az.InferenceData:
    """NUTS on one observer group's model; returns the posterior with its sample statistics.

    Give ``seed`` (an int) or ``key`` (a JAX PRNG key; see :mod:`perceptiongap.model.keys`).
    The chains run in parallel when JAX has a device per chain (see :func:`use_host_devices`;
    measured on the release's GMIC group, two parallel chains took 20 s, one chain alone 29 s),
    else one after another with a logged warning. The posterior's attributes record
    ``chain_method`` ("parallel" or "sequential") and the settings; ``sample_stats`` holds
    ``diverging``, ``n_steps`` and ``acceptance_rate``.
    """
    from numpyro.infer import MCMC, NUTS

    from perceptiongap.model.hierarchical import perception_model

    settings = NUTSSettings() if settings is None else settings
    key, seed, key_attrs = fit_key(seed, key)
    devices = jax.local_device_count()
    chain_method = "parallel" if devices >= settings.num_chains else "sequential"
    if chain_method == "sequential" and settings.num_chains > 1:
        logger.warning(
            "NUTS runs its %d chains one after another: JAX has %d device(s); call "
            "perceptiongap.model.use_host_devices(%d) before any JAX work to run them in parallel",
            settings.num_chains, devices, settings.num_chains,
        )
    model = flat_model_for(data)
    mcmc = MCMC(
        NUTS(perception_model, target_accept_prob=settings.target_accept_prob),
        num_warmup=settings.num_warmup,
        num_samples=settings.num_samples,
        num_chains=settings.num_chains,
        chain_method=chain_method,
        progress_bar=progress_bar,
    )
    mcmc.run(key, **device_data(data), **model.static, extra_fields=("diverging", "num_steps", "accept_prob"))
    samples = mcmc.get_samples(group_by_chain=True)
    sites = {name: np.asarray(samples[name]) for name in SITE_DIMS}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    sample_stats = {
        "diverging": np.asarray(extra["diverging"]),
        "n_steps": np.asarray(extra["num_steps"]),
        "acceptance_rate": np.asarray(extra["accept_prob"]),
    }
    return to_inference_data(
        data, sites, inference="nuts", seed=seed, sample_stats=sample_stats,
        attrs={"num_warmup": settings.num_warmup, "num_samples": settings.num_samples,
               "num_chains": settings.num_chains, "chain_method": chain_method, **key_attrs},
    )
