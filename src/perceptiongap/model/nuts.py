"""``nuts``: exact inference with NumPyro's NUTS, and the CPU devices its parallel chains need.

Two chains of 500 warm-up + 500 draws by default. JAX runs chains in parallel only when it has
one device per chain; on a CPU it has one device unless told otherwise before its backend starts.
:func:`use_host_devices` tells it; :func:`fit_nuts` runs the chains in parallel when the devices
are there and one after another (with a logged warning) when they are not. The draws are the same
either way (chain k uses the same key); only the run time differs.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np

from perceptiongap.model.data import ModelData
from perceptiongap.model.density import FlatModel, device_data, flat_model_for, unconstrained_draws
from perceptiongap.model.evidence import bridge_sampling
from perceptiongap.model.hierarchical import numpyro_model
from perceptiongap.model.keys import fit_key
from perceptiongap.model.posterior_io import to_inference_data
from perceptiongap.model.variants import DEFAULT_MODEL

__all__ = ["NUTSSettings", "fit_nuts", "use_host_devices"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class NUTSSettings:
    """Chains, their lengths, the step-size adaptation's target acceptance probability, and what
    is computed from the draws for model comparison."""

    num_warmup: int = 500
    num_samples: int = 500
    num_chains: int = 2
    target_accept_prob: float = 0.8
    #: Store each breast's log-likelihood (PSIS-LOO) and estimate the evidence (bridge sampling).
    log_likelihood: bool = True
    evidence: bool = True


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


_sampler_cache: dict[tuple, "_Sampler"] = {}
_sampler_lock = threading.Lock()


@dataclass(frozen=True, eq=False)
class _Sampler:
    """A NUTS kernel and its compiled chain, for one variant, settings and array shapes in this process.

    ``run_chain(state, data)`` runs one chain from its initial state: ``num_warmup`` adapting
    transitions, then ``num_samples`` collected ones; it returns the constrained sites (deterministic
    ones included) and the draws' diverging, tree sizes and acceptance probabilities, each with a
    leading (draw,) axis. The data are its arguments, so it compiles once per shape and serves every
    later fit (SBC's replications, a Dask worker's next task). NumPyro's ``MCMC.run`` builds a new
    loop function per run, which JAX compiles again every time (about 3 s of CPU per chain on SBC's
    small study); the transitions are the same calls of the same kernel, so the draws are equal to
    ``MCMC.run``'s (tested).
    """

    kernel: object
    run_chain: Callable
    run_chains_parallel: Callable


def _sampler(model: str, settings: NUTSSettings, shapes: tuple) -> _Sampler:
    from numpyro.infer import NUTS

    key = (model, settings, shapes)
    with _sampler_lock:
        if key in _sampler_cache:
            return _sampler_cache[key]
        # The kernel's step-size heuristic (off by default) would capture the first data set in
        # its closure; without it a transition depends on the data only through its arguments.
        kernel = NUTS(numpyro_model(model), target_accept_prob=settings.target_accept_prob,
                      find_heuristic_step_size=False)

        def run_chain(state, data: dict):
            def transition(current, _):
                following = kernel.sample(current, (), data)
                return following, (following.z, following.diverging, following.num_steps, following.accept_prob)

            warm, _ = jax.lax.scan(lambda current, _: (kernel.sample(current, (), data), None), state, None,
                                   length=settings.num_warmup)
            _, (z, diverging, n_steps, accept) = jax.lax.scan(transition, warm, None, length=settings.num_samples)
            sites = jax.vmap(kernel.postprocess_fn((), data))(z)
            return sites, diverging, n_steps, accept

        sampler = _Sampler(kernel=kernel, run_chain=jax.jit(run_chain),
                           run_chains_parallel=jax.pmap(run_chain, in_axes=(0, None)))
        _sampler_cache[key] = sampler
        return sampler


def _run_chains(sampler: _Sampler, key: jax.Array, arrays: dict, settings: NUTSSettings, chain_method: str):
    """(sites, diverging, n_steps, accept_prob), each (chain, draw, ...): chain k starts from
    ``split(key, num_chains)[k]`` (as NumPyro's MCMC.run), on its own device or one after another."""
    chain_keys = jax.random.split(key, settings.num_chains) if settings.num_chains > 1 else key[None]
    states = [sampler.kernel.init(chain_key, settings.num_warmup, None, (), arrays) for chain_key in chain_keys]
    if chain_method == "parallel" and settings.num_chains > 1:
        stacked = jax.tree.map(lambda *values: jnp.stack(values), *states)
        return sampler.run_chains_parallel(stacked, arrays)
    chains = [sampler.run_chain(state, arrays) for state in states]
    return jax.tree.map(lambda *values: jnp.stack(values), *chains)


def _batched(function: Callable, values: jax.Array, data: dict, batch_size: int = 50) -> jax.Array:
    """``function(value, data)`` for each row of ``values``, in batches (bounded memory)."""
    return jax.lax.map(lambda value: function(value, data), values, batch_size=batch_size)


@functools.lru_cache(maxsize=None)
def _evaluators(flat: FlatModel) -> tuple[Callable, Callable]:
    """Jitted (log density of each row, log-likelihood of each case of each row) for ``flat``."""
    log_density = jax.jit(functools.partial(_batched, flat.log_density))
    case_log_likelihood = jax.jit(functools.partial(_batched, flat.case_log_likelihood))
    return (lambda rows, data: np.asarray(log_density(rows, data)),
            lambda rows, data: np.asarray(case_log_likelihood(rows, data)))


def fit_nuts(
    data: ModelData,
    seed: int | None = None,
    settings: NUTSSettings | None = None,
    *,
    key: jax.Array | None = None,
    progress_bar: bool = False,
    model: str = DEFAULT_MODEL,
) -> az.InferenceData:
    """NUTS on one observer group's model; returns the posterior with its sample statistics.

    Give ``seed`` (an int) or ``key`` (a JAX PRNG key; see :mod:`perceptiongap.model.keys`);
    ``model`` names the variant (:mod:`perceptiongap.model.variants`). The chains run in parallel
    when JAX has a device per chain (see :func:`use_host_devices`; measured on the release's GMIC
    group, two parallel chains took 20 s, one chain alone 29 s), else one after another with a
    logged warning. The posterior's attributes record ``chain_method`` ("parallel" or
    "sequential") and the settings; ``sample_stats`` holds ``diverging``, ``n_steps`` and
    ``acceptance_rate``. With ``settings.log_likelihood`` the posterior holds each breast's
    log-likelihood (group ``log_likelihood``, for leave-one-breast-out); with
    ``settings.evidence`` attributes ``log_marginal_likelihood`` and its ``_error``, by bridge
    sampling (:mod:`perceptiongap.model.evidence`).
    """
    if progress_bar:
        logger.info("fit_nuts draws no progress bar; the stages report progress per fit")
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
    flat = flat_model_for(data, model)
    arrays = device_data(data)
    shapes = tuple((name, None if value is None else tuple(value.shape)) for name, value in sorted(arrays.items()))
    sampler = _sampler(flat.spec.name, settings, shapes)
    with _sampler_lock:  # one run at a time on a shared kernel (its init sets the kernel's state)
        samples, diverging, n_steps, accept_prob = _run_chains(sampler, key, arrays, settings, chain_method)
    sites = {name: np.asarray(samples[name]) for name in flat.spec.posterior_dims}
    sample_stats = {
        "diverging": np.asarray(diverging),
        "n_steps": np.asarray(n_steps),
        "acceptance_rate": np.asarray(accept_prob),
    }
    attrs = {"num_warmup": settings.num_warmup, "num_samples": settings.num_samples,
             "num_chains": settings.num_chains, "chain_method": chain_method, **key_attrs}
    pointwise = None
    if settings.log_likelihood or settings.evidence:
        theta = unconstrained_draws(flat, sites)  # (chain, draw, dim)
        log_density, case_log_likelihood = _evaluators(flat)
        rows = jnp.asarray(theta.reshape(-1, flat.dim))
        if settings.log_likelihood:
            pointwise = case_log_likelihood(rows, arrays).reshape(*theta.shape[:2], data.n_cases)
        if settings.evidence:
            evidence = bridge_sampling(
                lambda values: log_density(jnp.asarray(values, dtype=rows.dtype), arrays), theta,
                rng=np.random.default_rng(np.asarray(jax.random.key_data(jax.random.fold_in(key, 1))).ravel()))
            attrs.update(log_marginal_likelihood=evidence.log_marginal_likelihood,
                         log_marginal_likelihood_error=evidence.error)
    return to_inference_data(data, sites, inference="nuts", seed=seed, sample_stats=sample_stats, attrs=attrs,
                             model=flat.spec.name, log_likelihood=pointwise)
