"""The release's likelihood as its Stan programs evaluate it: Stan Math's inv_logit, bernoulli and
lmultiply, saturation included, checked cell by cell against plain-Python double arithmetic that
follows Stan Math's C++ (Python floats, like C++ doubles, keep subnormals)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceptiongap.model.density import flat_model
from perceptiongap.model.release_numerics import (
    LOG_EPSILON,
    release_log_likelihood,
    release_saturation,
    saturation_bounds,
    stan_inv_logit,
    theta_one_threshold,
)

DBL_EPSILON = 2.0**-52


def stan_inv_logit_cpp(a: float) -> float:
    """Stan Math 4.9 ``prim/fun/inv_logit.hpp``, line for line."""
    if a < 0:
        exp_a = math.exp(a)
        if a < math.log(DBL_EPSILON):
            return exp_a
        return exp_a / (1 + exp_a)
    return 1 / (1 + math.exp(-a))


def lmultiply(a: float, b: float) -> float:
    if a == 0 and b == 0:
        return 0.0
    return a * (math.log(b) if b > 0 else -math.inf)


def stan_cell(logit: float, y: float, form: str) -> tuple[float, float]:
    """(value, d value / d logit) of one cell with Stan's reverse-mode arithmetic (inf and NaN kept)."""
    theta = stan_inv_logit_cpp(logit)
    with np.errstate(all="ignore"):
        t = np.float64(theta)
        if form == "bernoulli":
            value = (math.log(theta) if theta > 0 else -math.inf) if y == 1 else (
                math.log1p(-theta) if theta < 1 else -math.inf)
            d_theta = np.float64(1.0) / t if y == 1 else np.float64(1.0) / (t - 1.0)
        else:
            value = lmultiply(y, theta) + lmultiply(1 - y, 1 - theta)
            d_theta = np.float64(y) / t - np.float64(1 - y) / (np.float64(1.0) - t)
        return value, float(d_theta * t * (np.float64(1.0) - t))


def test_inv_logit_is_stan_maths_branch_for_branch():
    logits = np.concatenate([np.linspace(-50, 50, 2001), [-36.05, -36.03, 0.0, -1e-300, 36.7, 36.75, 40.0]])
    with jax.enable_x64(True):
        ours = np.asarray(stan_inv_logit(jnp.asarray(logits)))
    expected = np.array([stan_inv_logit_cpp(a) for a in logits])
    np.testing.assert_allclose(ours, expected, rtol=4 * DBL_EPSILON, atol=0)
    assert LOG_EPSILON == pytest.approx(-36.0437, abs=1e-4)


def test_theta_reaches_exactly_one_at_the_threshold_as_in_cpp():
    threshold = theta_one_threshold()
    below = np.nextafter(threshold, 0.0)
    assert threshold == pytest.approx(53 * math.log(2), abs=1e-12)  # exp(-logit) = 2^-53
    assert stan_inv_logit_cpp(threshold) == 1.0 and stan_inv_logit_cpp(below) < 1.0
    with jax.enable_x64(True):
        at = np.asarray(stan_inv_logit(jnp.asarray([below, threshold])))
    assert at[0] < 1.0 and at[1] == 1.0


def random_cells(seed: int, form: str, scale: float):
    rng = np.random.default_rng(seed)
    n_observers, n_severities, n_cases = 3, 4, 25
    effects = (rng.normal(0, scale, n_cases), rng.normal(0, scale, (n_severities, n_cases)),
               rng.normal(0, scale, (n_observers, n_cases)))
    shape = (n_observers, n_severities, n_cases)
    prediction = rng.integers(0, 2, shape).astype(float) if form == "bernoulli" else rng.uniform(1e-7, 1 - 1e-5, shape)
    observed = rng.random(shape) < 0.8
    return effects, prediction, observed


def expected_sum(effects, prediction, observed, form):
    case_bias, severity_effect, observer_effect = effects
    value, d_logit = 0.0, np.zeros(prediction.shape)
    for r, s, n in zip(*np.nonzero(observed)):
        logit = case_bias[n] + severity_effect[s, n] + observer_effect[r, n]
        v, d = stan_cell(float(logit), float(prediction[r, s, n]), form)
        value += v
        d_logit[r, s, n] = d
    return value, d_logit


@pytest.mark.parametrize("form", ["bernoulli", "soft_label"])
@pytest.mark.parametrize("scale", [1.0, 25.0], ids=["moderate logits", "saturating logits"])
def test_value_and_gradient_follow_stans_arithmetic_cell_by_cell(form, scale):
    effects, prediction, observed = random_cells(3, form, scale)
    value, d_logit = expected_sum(effects, prediction, observed, form)
    expected_d_case = d_logit.sum(axis=(0, 1))
    with jax.enable_x64(True):
        bounds = jnp.asarray(saturation_bounds(prediction, observed, form))
        args = (jnp.asarray(prediction), jnp.asarray(observed), None, bounds)

        def total(case_bias, severity_effect, observer_effect):
            return release_log_likelihood(case_bias, severity_effect, observer_effect, *args, form=form)

        ours_value, ours_grads = jax.value_and_grad(total, argnums=(0, 1, 2))(*map(jnp.asarray, effects))
        finite_value, finite_gradient = release_saturation(*map(jnp.asarray, effects), None, bounds)
    if scale == 25.0:
        assert not math.isfinite(value), "the saturating case must saturate some cell"
    if math.isfinite(value):
        assert float(ours_value) == pytest.approx(value, rel=1e-12)
    else:
        assert float(ours_value) == -math.inf
    assert bool(finite_value) == math.isfinite(value)
    stan_gradient_finite = bool(np.all(np.isfinite(d_logit)))
    assert bool(finite_gradient) == stan_gradient_finite
    assert bool(np.all(np.isfinite(np.asarray(ours_grads[0])))) == stan_gradient_finite
    if stan_gradient_finite:
        np.testing.assert_allclose(np.asarray(ours_grads[0]), expected_d_case, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("form, y, logit, value_finite, gradient_finite", [
    # soft label: theta = 1 breaks a label below 1 (value and gradient), theta = 0 a label above 0
    ("soft_label", 0.3, 36.0, True, True),
    ("soft_label", 0.3, 36.74, False, False),
    ("soft_label", 1.0, 40.0, True, False),  # lmultiply(0, 0) = 0, but its partial is 0 / 0
    ("soft_label", 0.3, -720.0, True, False),  # y / theta overflows before theta underflows
    ("soft_label", 0.3, -700.0, True, True),
    ("soft_label", 0.3, -746.0, False, False),
    ("soft_label", 0.0, -746.0, True, False),
    # Bernoulli: only a disagreeing label breaks the value; 1 / theta overflows below -709.78
    ("bernoulli", 1.0, 40.0, True, True),
    ("bernoulli", 0.0, 40.0, False, False),
    ("bernoulli", 0.0, -800.0, True, True),
    ("bernoulli", 1.0, -720.0, True, False),
    ("bernoulli", 1.0, -800.0, False, False),
])
def test_saturation_of_single_cells(form, y, logit, value_finite, gradient_finite):
    value, d_logit = stan_cell(logit, y, form)
    assert (math.isfinite(value), math.isfinite(d_logit)) == (value_finite, gradient_finite), "the C++ reference"
    prediction, observed = np.array([[[y]]]), np.array([[[True]]])
    with jax.enable_x64(True):
        bounds = jnp.asarray(saturation_bounds(prediction, observed, form))
        effects = (jnp.asarray([logit]), jnp.zeros((1, 1)), jnp.zeros((1, 1)))
        ours_value, ours_grad = jax.value_and_grad(
            lambda c: release_log_likelihood(c, *effects[1:], jnp.asarray(prediction), jnp.asarray(observed), None,
                                             bounds, form=form))(effects[0])
        checked = release_saturation(*effects, None, bounds)
    assert math.isfinite(float(ours_value)) == value_finite
    assert bool(np.isfinite(ours_grad).all()) == gradient_finite
    assert (bool(checked[0]), bool(checked[1])) == (value_finite, gradient_finite)
    if value_finite:
        assert float(ours_value) == pytest.approx(value, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("form, y", [("soft_label", 0.3), ("bernoulli", 0.0)])
def test_the_value_breaks_exactly_at_the_threshold(form, y):
    threshold = theta_one_threshold()
    logits = np.array([np.nextafter(threshold, 0.0), threshold])
    prediction, observed = np.full((1, 1, 2), y), np.ones((1, 1, 2), dtype=bool)
    with jax.enable_x64(True):
        bounds = jnp.asarray(saturation_bounds(prediction, observed, form))
        values = [float(release_log_likelihood(jnp.asarray(np.where(np.arange(2) == i, logits, 0.0)), jnp.zeros((1, 2)),
                                               jnp.zeros((1, 2)), jnp.asarray(prediction),
                                               jnp.asarray(observed & (np.arange(2) == i)), None, bounds, form=form))
                  for i in range(2)]
    assert math.isfinite(values[0]) and values[1] == -math.inf
    assert math.isfinite(stan_cell(float(logits[0]), y, form)[0]) and stan_cell(float(logits[1]), y, form)[0] == -math.inf


def test_an_unobserved_cell_never_saturates_the_sum():
    prediction, observed = np.array([[[0.5, 0.5]]]), np.array([[[True, False]]])
    with jax.enable_x64(True):
        bounds = jnp.asarray(saturation_bounds(prediction, observed, "soft_label"))
        value = release_log_likelihood(jnp.asarray([0.0, 100.0]), jnp.zeros((1, 2)), jnp.zeros((1, 2)),
                                       jnp.asarray(prediction), jnp.asarray(observed), None, bounds, form="soft_label")
    assert float(value) == pytest.approx(math.log(0.5), rel=1e-12)


@pytest.mark.parametrize("form", ["bernoulli", "soft_label"])
def test_release_form_equals_the_stable_form_away_from_saturation(form):
    """Same model, two numerical forms: in double precision they agree where neither saturates."""
    rng = np.random.default_rng(8)
    n_observers, n_severities, n_cases, n_subgroups = 3, 4, 20, 2
    shape = (n_observers, n_severities, n_cases)
    prediction = rng.integers(0, 2, shape).astype(float) if form == "bernoulli" else rng.uniform(0.01, 0.99, shape)
    observed = rng.random(shape) < 0.9
    with jax.enable_x64(True):
        data = {"prediction": jnp.asarray(prediction), "observed": jnp.asarray(observed), "severity_index": None,
                "case_subgroup": jnp.asarray(rng.integers(0, n_subgroups, n_cases)),
                "saturation_bounds": jnp.asarray(saturation_bounds(prediction, observed, form))}
        stable = flat_model(n_cases, n_observers, n_severities, n_subgroups)
        release = flat_model(n_cases, n_observers, n_severities, n_subgroups, likelihood_form=form)
        theta = jnp.asarray(rng.normal(0, 1.5, stable.dim))
        release_value, release_grad = jax.value_and_grad(release.log_density)(theta, data)
        stable_value, stable_grad = jax.value_and_grad(stable.log_density)(theta, data)
    assert float(release_value) == pytest.approx(float(stable_value), rel=1e-12)
    np.testing.assert_allclose(np.asarray(release_grad), np.asarray(stable_grad), rtol=1e-10, atol=1e-12)


def _cells(form, rng, n_observers=3, n_severities=4, n_cases=20, n_subgroups=2):
    shape = (n_observers, n_severities, n_cases)
    prediction = rng.integers(0, 2, shape).astype(float) if form == "bernoulli" else rng.uniform(0.01, 0.99, shape)
    observed = rng.random(shape) < 0.9
    return {"prediction": jnp.asarray(prediction), "observed": jnp.asarray(observed), "severity_index": None,
            "case_subgroup": jnp.asarray(rng.integers(0, n_subgroups, n_cases)),
            "saturation_bounds": jnp.asarray(saturation_bounds(prediction, observed, form))}


@pytest.mark.parametrize("form", ["bernoulli", "soft_label"])
def test_the_release_variant_under_release_numerics_is_the_stan_programs_density_written_out(form):
    """The density derived from the release's spec is, to the bit, N(0, 1) priors on b, mu, delta, nu plus the
    release's likelihood statement of b[g] + mu[n] + cumsum(delta)[s, g] + nu[r, g] (what stan-advi used before
    model variants existed)."""
    from jax.scipy.stats import norm

    from perceptiongap.model.spec import case_effects, severity_effects

    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        data = _cells(form, rng)
        model = flat_model(20, 3, 4, 2, "release", likelihood_form=form)
        theta = jnp.asarray(rng.normal(0, 1.5, model.dim))
        p = model.unravel(theta)
        effects = case_effects(p["b"], p["mu"], severity_effects(p["delta"]), p["nu"], data["case_subgroup"])
        written = (sum(jnp.sum(norm.logpdf(p[site])) for site in ("b", "mu", "delta", "nu"))
                   + release_log_likelihood(*effects, data["prediction"], data["observed"], None,
                                            data["saturation_bounds"], form=form))
        assert float(model.log_density(theta, data)) == float(written)


@pytest.mark.parametrize("form", ["bernoulli", "soft_label"])
def test_observer_slopes_under_release_numerics_equals_its_stable_form_away_from_saturation(form):
    """A variant whose severity effect differs by observer takes the release's statements too, gradient included."""
    rng = np.random.default_rng(4)
    with jax.enable_x64(True):
        data = _cells(form, rng)
        data["severity_mm"] = jnp.asarray([0.0, 1.0, 2.0, 4.0])
        data["subgroup_label_counts"] = jnp.ones((2, 2))
        stable = flat_model(20, 3, 4, 2, "observer_slopes")
        release = flat_model(20, 3, 4, 2, "observer_slopes", likelihood_form=form)
        theta = jnp.asarray(rng.normal(0, 1.0, stable.dim))
        release_value, release_grad = jax.value_and_grad(release.log_density)(theta, data)
        stable_value, stable_grad = jax.value_and_grad(stable.log_density)(theta, data)
        value_finite, gradient_finite = release.saturation(theta, data)
    assert bool(value_finite) and bool(gradient_finite)
    assert float(release_value) == pytest.approx(float(stable_value), rel=1e-12)
    np.testing.assert_allclose(np.asarray(release_grad), np.asarray(stable_grad), rtol=1e-10, atol=1e-12)
