// The release's network model (METHOD §5), written for the Stan oracle of
// benchmarks/stan_oracle. Its numerical form follows the release's Stan program
// (nyukat/perception_comparison @ 5d7deb0, perception_comparison/probabilistic_inference.py,
// PGM_DNNS): theta = inv_logit(mu + gamma + nu + b) in double precision, one
// soft-label statement `target += lmultiply(y, theta) + lmultiply(1 - y, 1 - theta)` per observed
// (network, severity, breast), priors `~ normal(0, 1)`,
// gamma[1] = 0 and gamma[s + 1] = delta[1] + ... + delta[s]. The data come in the cell layout of
// perceptiongap.model.ModelData (one entry per observed cell) instead of the release's masked
// grid; the set of terms is the same.
data {
  int<lower=1> n_cases;
  int<lower=1> n_observers;
  int<lower=2> n_severities;
  int<lower=1> n_subgroups;
  int<lower=0> n_cells;
  array[n_cases] int<lower=1, upper=n_subgroups> case_subgroup;
  array[n_cells] int<lower=1, upper=n_cases> cell_case;
  array[n_cells] int<lower=1, upper=n_severities> cell_severity;
  array[n_cells] int<lower=1, upper=n_observers> cell_observer;
  array[n_cells] real<lower=0, upper=1> prediction;
}
parameters {
  array[n_cases] real mu;
  array[n_severities - 1, n_subgroups] real delta;
  array[n_observers, n_subgroups] real nu;
  array[n_subgroups] real b;
}
transformed parameters {
  array[n_severities, n_subgroups] real gamma;
  for (g in 1:n_subgroups) {
    gamma[1, g] = 0;
    for (s in 1:(n_severities - 1)) {
      gamma[s + 1, g] = sum(delta[1:s, g]);
    }
  }
}
model {
  for (n in 1:n_cases) {
    mu[n] ~ normal(0, 1);
  }
  for (g in 1:n_subgroups) {
    for (s in 1:(n_severities - 1)) {
      delta[s, g] ~ normal(0, 1);
    }
    for (r in 1:n_observers) {
      nu[r, g] ~ normal(0, 1);
    }
    b[g] ~ normal(0, 1);
  }
  for (i in 1:n_cells) {
    int n = cell_case[i];
    int g = case_subgroup[n];
    real theta = inv_logit(mu[n] + gamma[cell_severity[i], g] + nu[cell_observer[i], g] + b[g]);
    target += lmultiply(prediction[i], theta) + lmultiply(1 - prediction[i], 1 - theta);
  }
}
