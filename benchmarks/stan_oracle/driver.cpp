// Stan's own mean-field ADVI on one of the release's models: a small driver around
// stan::services::experimental::advi::meanfield (Stan's headers from the `httpstan` wheel).
//
// Built by `oracle.py build` with -DORACLE_MODEL_HPP="<stanc output>". Usage:
//
//   driver DATA.json SEED OUT_PREFIX [iter grad_samples elbo_samples eta adapt_engaged
//                                     adapt_iter tol_rel_obj eval_elbo output_samples init_radius]
//   driver --gradient DATA.json IN.f64 OUT.f64
//
// The second form evaluates Stan's log density (propto=false, all constants) and its gradient at
// parameter vectors given in the order of Stan's output columns (float64 rows of num_params_r), and
// writes rows [log density, gradient in the same column order]: `oracle.py check` compares them with
// perceptiongap's density.
//
// The defaults are PyStan 2's `vb` defaults, as the release called it. Writes
//   OUT_PREFIX.names     one column name per line (lp__, log_p__, log_g__, then the parameters)
//   OUT_PREFIX.draws     float64, row-major (1 + output_samples) x n_names: Stan's first row is the
//                        mean of the approximation, then the draws
//   OUT_PREFIX.elbo.csv  one row per ELBO evaluation of the main loop, with the draws Stan dropped
//   OUT_PREFIX.json      eta, the stop iteration, return code, and per phase the number of log
//                        density evaluations and how many of them were not finite
//   OUT_PREFIX.log       Stan's messages
//
// With the environment variable ORACLE_TRACE=PATH it also writes every point at which Stan evaluates
// the log density in the initialisation and the main loop, in order: records of int32 phase,
// int32 autodiff (1 = gradient draw, 0 = ELBO draw or initial point), float64 log density, then the
// point (num_params_r float64, unconstrained order); the first record (phase -1) gives instead the
// output column of each unconstrained coordinate. `oracle.py replay` re-runs our update rule on it.
//
// Counting: the model class is wrapped so that every log density Stan evaluates is counted, by
// phase (the phase is read off Stan's own log messages). Evaluations in double precision are the
// ELBO draws (calc_ELBO drops and redraws a non-finite one); evaluations with autodiff variables
// are the gradient draws (calc_grad drops and redraws one whose gradient is not finite).

#include <stan/callbacks/interrupt.hpp>
#include <stan/callbacks/logger.hpp>
#include <stan/callbacks/writer.hpp>
#include <stan/io/empty_var_context.hpp>
#include <stan/io/json/json_data.hpp>
#include <stan/model/log_prob_grad.hpp>
#include <stan/services/experimental/advi/meanfield.hpp>

#include ORACLE_MODEL_HPP

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace oracle {

enum Phase { INIT = 0, ADAPT = 1, MAIN = 2, OUTPUT = 3, N_PHASES = 4 };
const char* const PHASE_NAMES[N_PHASES] = {"init", "adapt", "main", "output"};

struct Counts {
  long double_calls = 0;     // log density in double precision (ELBO draws, output log_p)
  long double_bad = 0;       // ... not finite, or threw
  long var_calls = 0;        // log density with autodiff (gradient draws)
  long var_bad_value = 0;    // ... whose value was not finite, or threw
};

Phase phase = INIT;
Counts by_phase[N_PHASES];
Counts since_evaluation;  // main loop, since the previous ELBO evaluation

std::ofstream* trace = nullptr;

template <typename T>
void trace_point(bool is_var, double value, const T& params) {
  if (trace == nullptr || (phase != INIT && phase != MAIN)) return;
  const int header[2] = {static_cast<int>(phase), is_var ? 1 : 0};
  trace->write(reinterpret_cast<const char*>(header), sizeof(header));
  trace->write(reinterpret_cast<const char*>(&value), sizeof(value));
  for (size_t i = 0; i < static_cast<size_t>(params.size()); ++i) {
    const double x = stan::math::value_of(params[i]);
    trace->write(reinterpret_cast<const char*>(&x), sizeof(x));
  }
}

inline void count(bool is_var, bool finite) {
  for (Counts* c : {&by_phase[phase], &since_evaluation}) {
    if (is_var) {
      ++c->var_calls;
      c->var_bad_value += !finite;
    } else {
      ++c->double_calls;
      c->double_bad += !finite;
    }
  }
}

// The stanc-generated model with every log_prob call counted. Both overloads are redeclared
// (a declaration in the derived class hides the base's overloads).
template <class Base>
class counted_model : public Base {
 public:
  using Base::Base;

  template <bool propto, bool jacobian, typename T>
  T log_prob(Eigen::Matrix<T, -1, 1>& params_r, std::ostream* msgs = nullptr) const {
    return counted(params_r, [&] { return Base::template log_prob<propto, jacobian, T>(params_r, msgs); });
  }

  template <bool propto, bool jacobian, typename T>
  T log_prob(std::vector<T>& params_r, std::vector<int>& params_i, std::ostream* msgs = nullptr) const {
    return counted(params_r, [&] { return Base::template log_prob<propto, jacobian, T>(params_r, params_i, msgs); });
  }

 private:
  template <class P, class F>
  static auto counted(const P& params, F&& evaluate) -> decltype(evaluate()) {
    using T = decltype(evaluate());
    constexpr bool is_var = !std::is_same<T, double>::value;
    try {
      T lp = evaluate();
      count(is_var, std::isfinite(stan::math::value_of(lp)));
      trace_point(is_var, stan::math::value_of(lp), params);
      return lp;
    } catch (...) {
      count(is_var, false);
      trace_point(is_var, std::numeric_limits<double>::quiet_NaN(), params);
      throw;
    }
  }
};

// Stan's messages to a file; the phase follows the messages advi.hpp logs at each step.
class phase_logger : public stan::callbacks::logger {
 public:
  explicit phase_logger(std::ostream& out) : out_(out) {}
  void debug(const std::string& m) override { line("debug", m); }
  void debug(const std::stringstream& m) override { line("debug", m.str()); }
  void info(const std::string& m) override { line("info", m); }
  void info(const std::stringstream& m) override { line("info", m.str()); }
  void warn(const std::string& m) override { line("warn", m); }
  void warn(const std::stringstream& m) override { line("warn", m.str()); }
  void error(const std::string& m) override { line("error", m); }
  void error(const std::stringstream& m) override { line("error", m.str()); }
  void fatal(const std::string& m) override { line("fatal", m); }
  void fatal(const std::stringstream& m) override { line("fatal", m.str()); }

 private:
  void line(const char* level, const std::string& m) {
    if (m.find("Begin eta adaptation") != std::string::npos) phase = ADAPT;
    if (m.find("Begin stochastic gradient ascent") != std::string::npos) {
      phase = MAIN;
      since_evaluation = Counts();
    }
    if (m.find("Drawing a sample of size") != std::string::npos) phase = OUTPUT;
    out_ << "[" << level << "] " << m << "\n";
  }
  std::ostream& out_;
};

// The main loop's ELBO trace (iter, seconds, ELBO), each row with what Stan evaluated since the
// previous row: the ELBO's dropped draws and the gradient draws.
class elbo_writer : public stan::callbacks::writer {
 public:
  explicit elbo_writer(std::ostream& out) : out_(out) {
    out_ << "iteration,seconds,elbo,elbo_draws_evaluated,elbo_draws_dropped,"
            "gradient_draws_evaluated,gradient_draws_nonfinite_value\n";
  }
  using stan::callbacks::writer::operator();
  void operator()(const std::vector<double>& row) override {
    out_ << std::setprecision(17) << static_cast<long>(row.at(0)) << "," << row.at(1) << "," << row.at(2)
         << "," << since_evaluation.double_calls << "," << since_evaluation.double_bad << ","
         << since_evaluation.var_calls << "," << since_evaluation.var_bad_value << "\n";
    out_.flush();
    last_iteration = static_cast<long>(row.at(0));
    since_evaluation = Counts();
  }
  long last_iteration = 0;

 private:
  std::ostream& out_;
};

// Parameter output: names to a text file, rows as raw float64, comment lines (eta) kept.
class draws_writer : public stan::callbacks::writer {
 public:
  draws_writer(std::ostream& names, std::ostream& values) : names_(names), values_(values) {}
  using stan::callbacks::writer::operator();
  void operator()(const std::vector<std::string>& names) override {
    for (const auto& name : names) names_ << name << "\n";
    n_columns = names.size();
  }
  void operator()(const std::vector<double>& row) override {
    values_.write(reinterpret_cast<const char*>(row.data()), row.size() * sizeof(double));
    ++n_rows;
  }
  void operator()(const std::string& message) override {
    const std::string key = "eta = ";
    if (message.rfind(key, 0) == 0) eta = message.substr(key.size());
  }
  std::string eta = "";
  size_t n_columns = 0;
  long n_rows = 0;

 private:
  std::ostream& names_;
  std::ostream& values_;
};

}  // namespace oracle

// Log density and gradient at given points (see the header comment).
int gradient_mode(const std::string& data_path, const std::string& in_path, const std::string& out_path) {
  std::ifstream data_stream(data_path);
  if (!data_stream) {
    std::cerr << "error: " << data_path << ": cannot open\n";
    return 2;
  }
  stan::json::json_data data(data_stream);
  stan_model model(data, 0, &std::cerr);
  const size_t n = model.num_params_r();
  // Output columns and unconstrained coordinates are the same reals in another order (every
  // parameter is unconstrained): unconstraining the column indices gives the permutation.
  Eigen::VectorXd column_index(n), unconstrained_index;
  for (size_t i = 0; i < n; ++i) column_index(i) = static_cast<double>(i);
  model.unconstrain_array(column_index, unconstrained_index);
  std::ifstream in(in_path, std::ios::binary);
  std::ofstream out(out_path, std::ios::binary);
  std::vector<double> row(n), result(n + 1);
  while (in.read(reinterpret_cast<char*>(row.data()), n * sizeof(double))) {
    Eigen::VectorXd constrained = Eigen::Map<Eigen::VectorXd>(row.data(), n), unconstrained, gradient;
    model.unconstrain_array(constrained, unconstrained);
    result[0] = stan::model::log_prob_grad<false, true>(model, unconstrained, gradient, &std::cerr);
    for (size_t i = 0; i < n; ++i) result[1 + static_cast<size_t>(unconstrained_index(i))] = gradient(i);
    out.write(reinterpret_cast<const char*>(result.data()), result.size() * sizeof(double));
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--gradient") return gradient_mode(argv[2], argv[3], argv[4]);
  if (argc < 4) {
    std::cerr << "usage: " << argv[0] << " DATA.json SEED OUT_PREFIX [iter grad_samples elbo_samples eta "
              << "adapt_engaged adapt_iter tol_rel_obj eval_elbo output_samples init_radius]\n";
    return 2;
  }
  const std::string data_path = argv[1];
  const unsigned int seed = static_cast<unsigned int>(std::stoul(argv[2]));
  const std::string prefix = argv[3];
  auto arg = [&](int i, const char* fallback) { return std::string(argc > i ? argv[i] : fallback); };
  // PyStan 2's vb() defaults (pystan/misc.py, _get_valid_stan_args), as the release ran them.
  const int max_iterations = std::stoi(arg(4, "10000"));
  const int grad_samples = std::stoi(arg(5, "1"));
  const int elbo_samples = std::stoi(arg(6, "100"));
  const double eta = std::stod(arg(7, "1.0"));
  const bool adapt_engaged = std::stoi(arg(8, "1")) != 0;
  const int adapt_iterations = std::stoi(arg(9, "50"));
  const double tol_rel_obj = std::stod(arg(10, "0.01"));
  const int eval_elbo = std::stoi(arg(11, "100"));
  const int output_samples = std::stoi(arg(12, "1000"));
  const double init_radius = std::stod(arg(13, "2.0"));
  const unsigned int chain = 1;  // PyStan 2's vb() passes chain_id=1

  std::ifstream data_stream(data_path);
  if (!data_stream) {
    std::cerr << "error: " << data_path << ": cannot open\n";
    return 2;
  }
  stan::json::json_data data(data_stream);
  std::ofstream trace_file;
  if (const char* trace_path = std::getenv("ORACLE_TRACE")) {
    trace_file.open(trace_path, std::ios::binary);
    oracle::trace = &trace_file;
  }
  std::ofstream log(prefix + ".log");
  oracle::phase_logger logger(log);
  using model_t = oracle::counted_model<stan_model>;
  model_t model(data, seed, &log);
  if (oracle::trace != nullptr) {
    // First record (phase -1): for each unconstrained coordinate, its index among the parameter
    // columns of the output (every parameter is unconstrained, so the two orders are a permutation).
    const size_t n = model.num_params_r();
    Eigen::VectorXd column_index(n), unconstrained_index;
    for (size_t i = 0; i < n; ++i) column_index(i) = static_cast<double>(i);
    model.unconstrain_array(column_index, unconstrained_index);
    const int header[2] = {-1, 0};
    const double count = static_cast<double>(n);
    trace_file.write(reinterpret_cast<const char*>(header), sizeof(header));
    trace_file.write(reinterpret_cast<const char*>(&count), sizeof(count));
    trace_file.write(reinterpret_cast<const char*>(unconstrained_index.data()), n * sizeof(double));
  }

  std::ofstream names(prefix + ".names");
  std::ofstream values(prefix + ".draws", std::ios::binary);
  std::ofstream elbo(prefix + ".elbo.csv");
  oracle::draws_writer parameter_writer(names, values);
  oracle::elbo_writer diagnostic_writer(elbo);
  stan::callbacks::writer init_writer;
  stan::callbacks::interrupt interrupt;
  stan::io::empty_var_context init;

  auto start = std::chrono::steady_clock::now();
  int code = stan::services::experimental::advi::meanfield(
      model, init, seed, chain, init_radius, grad_samples, elbo_samples, max_iterations, tol_rel_obj, eta,
      adapt_engaged, adapt_iterations, eval_elbo, output_samples, interrupt, logger, init_writer,
      parameter_writer, diagnostic_writer);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::ofstream summary(prefix + ".json");
  summary << std::setprecision(17) << "{\n  \"return_code\": " << code << ",\n  \"seed\": " << seed
          << ",\n  \"eta\": " << (parameter_writer.eta.empty() ? "null" : parameter_writer.eta)
          << ",\n  \"iterations\": " << diagnostic_writer.last_iteration << ",\n  \"seconds\": " << seconds
          << ",\n  \"n_columns\": " << parameter_writer.n_columns << ",\n  \"n_rows\": " << parameter_writer.n_rows
          << ",\n  \"settings\": {\"max_iterations\": " << max_iterations << ", \"grad_samples\": " << grad_samples
          << ", \"elbo_samples\": " << elbo_samples << ", \"eta\": " << eta
          << ", \"adapt_engaged\": " << (adapt_engaged ? "true" : "false")
          << ", \"adapt_iterations\": " << adapt_iterations << ", \"tol_rel_obj\": " << tol_rel_obj
          << ", \"eval_elbo\": " << eval_elbo << ", \"output_samples\": " << output_samples
          << ", \"init_radius\": " << init_radius << ", \"chain\": " << chain << "},\n  \"counts\": {";
  for (int p = 0; p < oracle::N_PHASES; ++p) {
    const auto& c = oracle::by_phase[p];
    summary << (p ? ", " : "") << "\"" << oracle::PHASE_NAMES[p] << "\": {\"double_calls\": " << c.double_calls
            << ", \"double_nonfinite\": " << c.double_bad << ", \"var_calls\": " << c.var_calls
            << ", \"var_nonfinite_value\": " << c.var_bad_value << "}";
  }
  summary << "}\n}\n";
  return code;
}
