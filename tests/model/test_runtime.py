"""The process settings for many concurrent fits change no number: a `stan-advi` fit on a simulated
study is bit for bit the same under XLA's defaults, with one XLA thread per computation, and with
its compiled code read back from the persistent cache; and the flags only apply before JAX starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from perceptiongap.model.runtime import SINGLE_THREAD_XLA_FLAGS, configure_jax, default_cache_dir

# Fits the simulated study's networks with stan-advi (2 seeds) in a fresh process and prints
# a hash of every number the fits produce: draws of every site, eta, stop iteration, ELBO trace.
FIT_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    configuration = sys.argv[1]
    if configuration != "original":
        from perceptiongap.model.runtime import configure_jax
        applied = configure_jax(cache_dir=sys.argv[2] if configuration == "cached" else None)
    else:
        applied = False
    import os
    from tests.model.simulate import SUBGROUPS, simulate_study
    from perceptiongap.study import validate_observations
    from perceptiongap.model import build_model_data, fit_stan_advi
    observations, cases, _ = simulate_study(seed=11, n_exams=40)
    observations = validate_observations(observations)
    digest, stops = hashlib.sha256(), []
    for kind in ("networks",):
        data = build_model_data(observations, cases, kind, subgroup_order=SUBGROUPS)
        for seed in (0, 1):
            post = fit_stan_advi(data, seed=seed).posterior
            for name in sorted(post.data_vars):
                digest.update(post[name].values.tobytes())
            digest.update(repr((post.attrs["eta"], post.attrs["iterations"])).encode())
            digest.update(post.attrs["elbo"].tobytes())
            stops.append(int(post.attrs["iterations"]))
    print(json.dumps({"hash": digest.hexdigest(), "stops": stops, "applied": applied,
                      "xla_flags": os.environ.get("XLA_FLAGS", "")}))
""")


def run_fits(configuration: str, cache_dir, repository_root) -> dict:
    environment = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", FIT_SCRIPT, configuration, str(cache_dir)], cwd=repository_root,
                          env=environment, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_single_thread_and_compile_cache_leave_every_number_unchanged(tmp_path, request):
    root = request.config.rootpath
    cache = tmp_path / "jax-cache"
    original = run_fits("original", cache, root)
    single = run_fits("single", cache, root)
    cold = run_fits("cached", cache, root)
    compiled = list(cache.iterdir())
    warm = run_fits("cached", cache, root)  # reads the compiled functions back

    assert not original["applied"] and original["xla_flags"] == ""
    assert single["applied"] and all(flag in single["xla_flags"].split() for flag in SINGLE_THREAD_XLA_FLAGS)
    assert compiled, "the cold run stored no compiled function"
    assert single["hash"] == cold["hash"] == warm["hash"] == original["hash"]
    assert single["stops"] == original["stops"]


def test_flags_are_not_applied_once_jax_has_started(monkeypatch):
    import jax.numpy as jnp

    jnp.zeros(1).block_until_ready()  # the backend is running in this process
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert configure_jax(cache_dir=None) is False
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2"


def test_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PERCEPTIONGAP_JAX_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("PERCEPTIONGAP_JAX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "perceptiongap" / "jax"
