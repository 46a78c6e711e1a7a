"""Stan's ADVI: its decision rules on hand-made ELBO sequences, its dropped-draw accounting on a tiny
model whose logits saturate (hand-computed), a known optimum, Stan's stop rule, determinism, and
double precision that stays inside the fit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import math
import threading

from perceptiongap.model import ConvergedADVISettings, build_model_data, fit_advi, fit_stan_advi
from perceptiongap.model.density import flat_model
from perceptiongap.model.release_numerics import saturation_bounds
from perceptiongap.model.stan_advi import (
    FAILED_ELBO,
    ADVIError,
    StanADVISettings,
    _advance,
    _elbo,
    _fresh_state,
    _gradient,
    choose_eta,
    relative_change,
    stan_meanfield_advi,
    stan_stop,
    upper_median,
)

from .simulate import SUBGROUPS


def test_stan_advi_finds_a_gaussian_exactly():
    """Known answer: for a standard normal target the optimum is mean 0, log sd 0."""

    def log_density(theta, data):
        return -0.5 * jnp.sum((theta - data["centre"]) ** 2)

    centre = jnp.linspace(-1.0, 1.0, 8)
    settings = StanADVISettings(tol_rel_obj=1e-4, max_iterations=20_000)
    result = stan_meanfield_advi(log_density, 8, {"centre": centre}, jax.random.PRNGKey(0), settings)
    # One gradient draw per step leaves some noise in each coordinate; on average it is exact.
    np.testing.assert_allclose(result.mean, np.asarray(centre), atol=0.2)
    np.testing.assert_allclose(result.log_sd, 0.0, atol=0.2)
    assert abs(np.mean(result.mean - np.asarray(centre))) < 0.05
    assert abs(np.mean(result.log_sd)) < 0.05


def relative_changes(elbo: np.ndarray) -> np.ndarray:
    """Stan's: |(previous - current) / current|, with previous = 0 before the first evaluation (so 1)."""
    previous = np.concatenate([[0.0], elbo[:-1]])
    return np.abs((previous - elbo) / elbo)


def assert_stopped_by_stan_rule(attrs, settings=StanADVISettings()):
    """The trace ends at the first evaluation whose buffer mean or median is below tol_rel_obj."""
    changes = relative_changes(np.asarray(attrs["elbo"]))
    window = settings.buffer_size

    def met(i):
        buffer = np.sort(changes[max(0, i - window + 1): i + 1])
        upper_median = buffer[len(buffer) // 2]  # Stan's median: no averaging of the middle pair
        return np.mean(buffer) < settings.tol_rel_obj or upper_median < settings.tol_rel_obj

    assert attrs["converged"] == 1
    assert met(len(changes) - 1)
    assert not any(met(i) for i in range(len(changes) - 1))
    np.testing.assert_array_equal(attrs["elbo_iteration"], settings.eval_elbo * np.arange(1, len(changes) + 1))


def test_stan_advi_stops_by_its_relative_tolerance_rule(study):
    observations, cases, _ = study
    data = build_model_data(observations, cases, "networks", subgroup_order=SUBGROUPS)
    posterior = fit_stan_advi(data, seed=4)
    assert_stopped_by_stan_rule(posterior.posterior.attrs)
    assert posterior.posterior.sizes["draw"] == 1000


def test_same_seed_same_numbers(study):
    observations, cases, _ = study
    data = build_model_data(observations, cases, "readers", subgroup_order=SUBGROUPS)
    first = fit_stan_advi(data, seed=1)
    second = fit_stan_advi(data, seed=1)
    np.testing.assert_array_equal(first.posterior["gamma"].values, second.posterior["gamma"].values)
    assert first.posterior.attrs["seed"] == 1


def test_settings_are_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        StanADVISettings(10_000)  # settings are given by name only
    settings = StanADVISettings(max_iterations=500)
    with pytest.raises(AttributeError):
        settings.max_iterations = 1


# --- the step-size choice, on hand-made ELBO sequences ----------------------------------------------------------


class Trials:
    """A stand-in for the eta trials: returns hand-made ELBO values and records which etas ran."""

    def __init__(self, elbos: dict[float, float]):
        self.elbos, self.ran = elbos, []

    def __call__(self, eta: float) -> float:
        self.ran.append(eta)
        return self.elbos[eta]


ETAS = (100.0, 10.0, 1.0, 0.1, 0.01)


def test_eta_stops_at_the_first_worse_elbo_and_takes_the_previous_eta():
    trials = Trials({100.0: -50.0, 10.0: -40.0, 1.0: -45.0, 0.1: -1.0, 0.01: -1.0})
    assert choose_eta(-100.0, trials, ETAS) == 10.0
    assert trials.ran == [100.0, 10.0, 1.0]  # 0.1 and 0.01 are never tried


def test_eta_goes_on_after_a_worse_elbo_while_the_previous_one_did_not_beat_the_start():
    trials = Trials({100.0: -300.0, 10.0: -400.0, 1.0: -90.0, 0.1: -95.0, 0.01: -1.0})
    assert choose_eta(-100.0, trials, ETAS) == 1.0
    assert trials.ran == [100.0, 10.0, 1.0, 0.1]


def test_failed_trials_count_as_the_lowest_double_as_on_the_release():
    """What Stan did on every release fit: eta = 100 and 10 fail, 1 beats the start, 0.1 is worse."""
    trials = Trials({100.0: FAILED_ELBO, 10.0: FAILED_ELBO, 1.0: -2000.0, 0.1: -9000.0, 0.01: -1.0})
    assert choose_eta(-10000.0, trials, ETAS) == 1.0
    assert trials.ran == [100.0, 10.0, 1.0, 0.1]
    assert FAILED_ELBO == -1.7976931348623157e308 and math.isfinite(FAILED_ELBO)


def test_eta_takes_the_last_step_size_when_it_beats_the_start():
    trials = Trials({100.0: -500.0, 10.0: -400.0, 1.0: -300.0, 0.1: -200.0, 0.01: -99.0})
    assert choose_eta(-100.0, trials, ETAS) == 0.01
    assert trials.ran == list(ETAS)


@pytest.mark.parametrize("last", [-100.0, -101.0], ids=["equal to the start", "below the start"])
def test_eta_fails_when_no_step_size_beats_the_start(last):
    trials = Trials({100.0: -500.0, 10.0: -400.0, 1.0: -300.0, 0.1: -200.0, 0.01: last})
    with pytest.raises(ADVIError, match="all proposed step sizes failed"):
        choose_eta(-100.0, trials, ETAS)


def test_eta_comparisons_are_strict():
    """An ELBO equal to the previous one is not worse: the trials go on."""
    trials = Trials({100.0: -50.0, 10.0: -50.0, 1.0: -60.0, 0.1: -1.0, 0.01: -1.0})
    assert choose_eta(-100.0, trials, ETAS) == 10.0
    assert trials.ran == [100.0, 10.0, 1.0]


# --- the stop rule ------------------------------------------------------------------------------------------------


def test_the_first_relative_change_is_exactly_one():
    assert relative_change(0.0, -1234.5) == 1.0
    assert relative_change(-1000.0, -1010.0) == pytest.approx(10.0 / 1010.0)


def test_stan_median_is_the_upper_middle_element():
    assert upper_median([0.3, 0.1]) == 0.3
    assert upper_median([0.3, 0.1, 0.2]) == 0.2
    assert upper_median([0.4, 0.1, 0.3, 0.2]) == 0.3


@pytest.mark.parametrize("changes, stops", [
    ([1.0, 0.009, 0.008], True),  # median 0.009 < 0.01 (mean 0.34 is not)
    ([1.0, 0.02, 0.005, 0.004], False),  # upper median 0.02; the average of the middle pair (0.0125) would not stop it
    ([0.012, 0.009], False),  # upper median 0.012, mean 0.0105
    ([0.01, 0.01, 0.01], False),  # strict: equal to the tolerance is not below it
    ([0.011, 0.003, 0.015, 0.002, 0.0095], True),  # mean 0.0081 < 0.01, median 0.0095 < 0.01
])
def test_stop_when_the_buffer_mean_or_upper_median_is_below_the_tolerance(changes, stops):
    assert stan_stop(changes, 0.01) is stops


def test_the_buffer_holds_ten_evaluations_with_stans_defaults():
    assert StanADVISettings().buffer_size == 10
    assert StanADVISettings(max_iterations=100).buffer_size == 2


# --- dropped and rejected draws, on a tiny model whose logits saturate --------------------------------------------


Y = 0.5


def stan_inv_logit(a: float) -> float:
    if a < 0:
        return math.exp(a) if a < math.log(2.0**-52) else math.exp(a) / (1 + math.exp(a))
    return 1 / (1 + math.exp(-a))


def hand_log_density(c: float) -> float:
    """The tiny model at theta = c * (1, 1, 1, 1): four N(0, 1) priors; logits 3c (severity 0, b + mu + nu)
    and 4c (severity 1, plus delta), label 0.5: lmultiply(y, theta) + lmultiply(1 - y, 1 - theta)."""
    value = 4 * (-0.5 * c * c - 0.5 * math.log(2 * math.pi))
    for logit in (3 * c, 4 * c):
        theta = stan_inv_logit(logit)
        value += Y * math.log(theta) + (1 - Y) * (math.log(1 - theta) if theta < 1 else -math.inf)
    return value


@pytest.fixture(scope="module")
def tiny():
    """One network, one breast, two severities, one subgroup, in double precision: D = 4 parameters."""
    with jax.enable_x64(True):
        prediction, observed = np.full((1, 2, 1), Y), np.ones((1, 2, 1), dtype=bool)
        model = flat_model(1, 1, 2, 1, likelihood_form="soft_label")
        data = {"prediction": jnp.asarray(prediction), "observed": jnp.asarray(observed), "severity_index": None,
                "case_subgroup": jnp.asarray([0]),
                "saturation_bounds": jnp.asarray(saturation_bounds(prediction, observed, "soft_label"))}
    assert model.dim == 4
    return model, data


def rows(*cs: float) -> jnp.ndarray:
    return jnp.asarray([[c] * 4 for c in cs], dtype=jnp.float64)


def test_hand_model_saturates_where_stan_does():
    assert math.isfinite(hand_log_density(9.0)) and hand_log_density(9.2) == -math.inf  # 4 * 9.2 > 36.74


@pytest.mark.parametrize("check", ["saturation check", "evaluated"])
def test_elbo_drops_non_finite_draws_and_divides_by_the_finite_ones(tiny, check):
    model, data = tiny
    saturation = model.saturation if check == "saturation check" else None
    with jax.enable_x64(True):
        mean, log_sd = jnp.zeros(4), jnp.zeros(4)
        # Draws in order: bad, ok, bad | ok, ok: the first three finite are 1.0, 0.5 and 2.0, two dropped.
        elbo, dropped, ok = _elbo(model.log_density, saturation, mean, log_sd, rows(10.0, 1.0, 10.0, 0.5, 2.0), data)
    entropy = 0.5 * 4 * (1 + math.log(2 * math.pi))
    expected = (hand_log_density(1.0) + hand_log_density(0.5) + hand_log_density(2.0)) / 3 + entropy
    assert bool(ok) and int(dropped) == 2
    assert float(elbo) == pytest.approx(expected, rel=1e-12)


def test_elbo_without_drops_is_the_plain_mean(tiny):
    model, data = tiny
    with jax.enable_x64(True):
        elbo, dropped, ok = _elbo(model.log_density, model.saturation, jnp.zeros(4), jnp.zeros(4),
                                  rows(1.0, -1.0, 0.25, 10.0, 10.0), data)
    expected = sum(map(hand_log_density, (1.0, -1.0, 0.25))) / 3 + 0.5 * 4 * (1 + math.log(2 * math.pi))
    assert bool(ok) and int(dropped) == 0 and float(elbo) == pytest.approx(expected, rel=1e-12)


def test_elbo_fails_at_as_many_drops_as_draws(tiny):
    model, data = tiny
    with jax.enable_x64(True):
        _, dropped, ok = _elbo(model.log_density, model.saturation, jnp.zeros(4), jnp.zeros(4),
                               rows(10.0, 10.0, 1.0, 10.0, 1.0), data)
    assert not bool(ok) and int(dropped) == 3


def hand_gradient(c: float) -> tuple[list[float], list[float]]:
    """(g_mean, g_log_sd) sorted, at theta = c * (1, 1, 1, 1) with omega = 0 (so z = theta)."""
    residuals = [Y - stan_inv_logit(3 * c), Y - stan_inv_logit(4 * c)]
    shared = -c + residuals[0] + residuals[1]  # b, mu and nu enter both logits
    delta = -c + residuals[1]
    g_mean = sorted([shared, shared, shared, delta])
    return g_mean, sorted(g * c + 1.0 for g in g_mean)


@pytest.mark.parametrize("check", ["saturation check", "evaluated"])
def test_gradient_redraws_until_finite_and_counts_the_rejections(tiny, check):
    model, data = tiny
    saturation = model.saturation if check == "saturation check" else None
    with jax.enable_x64(True):
        fresh_draws = rows(10.0, 12.0, 1.5)
        g_mean, g_log_sd, rejected, ok = _gradient(model.log_density, saturation, jnp.zeros(4), jnp.zeros(4),
                                                   rows(10.0), lambda attempt: fresh_draws[attempt], data)
    expected_mean, expected_log_sd = hand_gradient(1.5)
    assert bool(ok) and int(rejected) == 3
    np.testing.assert_allclose(np.sort(np.asarray(g_mean)), expected_mean, rtol=1e-12)
    np.testing.assert_allclose(np.sort(np.asarray(g_log_sd)), expected_log_sd, rtol=1e-12)


def test_gradient_fails_at_ten_rejections_and_is_zero(tiny):
    model, data = tiny
    with jax.enable_x64(True):
        g_mean, g_log_sd, rejected, ok = _gradient(model.log_density, model.saturation, jnp.zeros(4), jnp.zeros(4),
                                                   rows(10.0), lambda attempt: rows(10.0)[0], data)
    assert not bool(ok) and int(rejected) == 10
    assert np.all(np.asarray(g_mean) == 0.0) and np.all(np.asarray(g_log_sd) == 0.0)  # the entropy's +1 too


def test_a_failed_gradient_is_zero_in_the_eta_trials_and_ends_the_main_loop(tiny):
    """Every draw saturates around mean 20: the trials run on with zero steps; the main loop stops at once."""
    model, data = tiny
    with jax.enable_x64(True):
        state = _fresh_state(jnp.full(4, 20.0), jnp.full(4, -3.0))
        args = (model.log_density, model.saturation, state, 1.0, 5, jax.random.PRNGKey(0), data)
        trial, _ = _advance(*args, True, 5, 1, 10)
        main, (_, _, elbo_ok) = _advance(*args, False, 5, 1, 10)
    assert int(trial[4]) == 5 and int(trial[6]) == 5 and int(trial[5]) == 50
    np.testing.assert_array_equal(np.asarray(trial[0]), np.full(4, 20.0))  # zero gradient, zero step
    assert int(main[4]) == 1 and int(main[6]) == 1 and int(main[5]) == 10
    assert not bool(elbo_ok)


# --- precision ----------------------------------------------------------------------------------------------------


def test_stan_advi_runs_in_double_precision_and_leaves_the_process_in_single(study):
    observations, cases, _ = study
    data = build_model_data(observations, cases, "readers", subgroup_order=SUBGROUPS)
    posterior = fit_stan_advi(data, seed=2, settings=StanADVISettings(max_iterations=300))
    attrs = posterior.posterior.attrs
    assert attrs["numerics"] == "release" and attrs["eta"] in StanADVISettings().eta_sequence
    assert jnp.zeros(1).dtype == jnp.float32
    for name in ("main_elbo_draws_dropped", "main_gradient_draws_rejected", "adapt_elbo_draws_dropped",
                 "adapt_gradient_draws_rejected", "adapt_gradients_zeroed"):
        assert int(attrs[name]) >= 0, name


def test_an_advi_fit_beside_a_stan_advi_fit_in_another_thread_is_unchanged(study):
    """x64 is switched on for the stan-advi thread only: advi's numbers are those of a fit run alone."""
    observations, cases, _ = study
    data = build_model_data(observations, cases, "networks", subgroup_order=SUBGROUPS)
    settings = ConvergedADVISettings(max_iterations=2_000)
    alone = fit_advi(data, seed=5, settings=settings)
    results = {}

    def stan_side():
        results["stan"] = fit_stan_advi(data, seed=5, settings=StanADVISettings(max_iterations=2_000))

    thread = threading.Thread(target=stan_side)
    thread.start()
    beside = fit_advi(data, seed=5, settings=settings)
    thread.join()
    assert beside.posterior["gamma"].dtype == np.float32
    np.testing.assert_array_equal(alone.posterior["gamma"].values, beside.posterior["gamma"].values)
    np.testing.assert_array_equal(alone.posterior.attrs["elbo"], beside.posterior.attrs["elbo"])
    assert results["stan"].posterior.attrs["numerics"] == "release"
