// TorchScriptPolicy: the only translation unit of ptypilot that includes LibTorch, built alone
// into the plugin libptypilot_torch_policy.so (daemon/CMakeLists.txt), which make_policy()
// dlopens. Every c10::Error (and any other exception LibTorch throws) is converted here: into a
// start-up exception that names the file, or, in propose(), into a kInternal Status with
// LibTorch's message, on which the session ends in error.
//
// The plugin holds no copy of the daemon: SparseGridPolicy, log::write and the rest come from the
// program that loads it (built with ENABLE_EXPORTS), so there is one log sink and one of every
// static. Only ptypilot_make_torchscript_policy is exported (hidden visibility otherwise).
#include "ptypilot/policy/torchscript_policy.hpp"

// Not <torch/script.h>: these few headers parse in two thirds of its time.
#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <exception>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "ptypilot/policy/baseline_policies.hpp"
#include "ptypilot/policy/lattice_flank_policy.hpp"
#include "ptypilot/wire/log.hpp"

namespace ptypilot {
namespace {

constexpr int kSchemaVersion = 1;
constexpr const char* kSchemaKind = "ptypilot-gru-policy";
// The learned flank scorer (models/ptypilot/flank_scorer.py): lattice-flank's moves chosen by a
// network (LatticeFlankPolicy with a FlankMoveScorer).
constexpr const char* kFlankScorerKind = "ptypilot-flank-scorer";
// A patch wider than this (129 px, about 20 A at the object's pixel) is no longer local.
constexpr int kMaxPatchHalfPx = 64;
constexpr double kFovTolerance_A = 1e-6;
// The TorchScript extra file in which models/ptypilot/export.py records the session the model was
// trained for (models/POLICY_CONTRACT.md, "trained_for.json").
constexpr const char* kTrainedForFile = "trained_for.json";
constexpr const char* kSessionDiffers = "torchscript_policy_session_differs";
// Geometry comes from configs and presets, typed or computed the same way on both sides: only
// rounding may differ.
constexpr double kGeometryRelativeTolerance = 1e-6;
// The session's dose is measured from its frames (Session: declared electrons per frame, or the
// counts where a detector declares none, which misses what scatters past the detector's edge), so
// it gets a margin; 10 % in dose is 5 % in the signal-to-noise ratio of a pattern.
constexpr double kDoseRelativeTolerance = 0.10;

// What LibTorch says, without the C++ stack trace it appends to c10::Error::what().
std::string torch_message(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e))
    return c10_error->what_without_backtrace();
  return e.what();
}

std::string shape_of(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes() << " " << t.scalar_type();
  return out.str();
}

std::string number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

struct Impl {
  std::string path;  // as given, for messages
  PolicyLimits limits;
  torch::jit::Module module;
  std::string schema;
  std::string kind;               // schema() "kind": kSchemaKind or kFlankScorerKind
  int patch_half_px = 0;          // kFlankScorerKind: the half width of its features' patch
  at::Tensor initial_hidden;      // [L, 1, H], as initial_hidden() returned it
  at::Tensor hidden;              // the session's current state
  at::Tensor previous_positions;  // [K, 2] float32, filled in place by every call
  // The K positions this policy proposed last, clamped and snapped to the raster, repeats kept:
  // the model's input at the next call. Training fed exactly these (models/ptypilot/data.py),
  // not the visited positions, which lack the ones Safety dropped as repeats.
  std::vector<Vec2> last_proposal;
  std::vector<Vec2> last_output;  // forward()'s positions as it returned them, normalised
  // The budget the model was trained for (schema training.total_positions; 0 when absent): what
  // a model without the trained_for record can still be checked against.
  int trained_total_positions = 0;
  // The trained_for record (null for a model exported before it existed). A session unlike it
  // runs (torchscript_policy.hpp says why it is not refused), with a warning once per session
  // for the geometry, at its start, and once for the dose, when the first frames have told it.
  nlohmann::json trained_for;
  bool geometry_checked = false;
  bool dose_checked = false;
  // schema() "first_sub_sequence": how the model was trained to begin (absent: "sparse-grid").
  std::string first_sub_sequence = "sparse-grid";

  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument("policy model " + path + " " + what);
  }

  void load() {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
      throw std::invalid_argument("policy model " + path +
                                  ": no such file (policy.model_path; export one with "
                                  "`python3 -m ptypilot.export`)");
    if (std::filesystem::is_directory(path, ec))
      throw std::invalid_argument("policy model " + path + ": is a directory, not a file");
    torch::jit::ExtraFilesMap extra{{kTrainedForFile, ""}};
    try {
      module = torch::jit::load(path, at::kCPU, extra);
    } catch (const std::exception& e) {
      fail("is not a TorchScript module that LibTorch " + std::to_string(TORCH_VERSION_MAJOR) +
           "." + std::to_string(TORCH_VERSION_MINOR) + " can load: " + torch_message(e));
    }
    if (const std::string& text = extra[kTrainedForFile]; !text.empty()) {
      try {
        trained_for = nlohmann::json::parse(text);
      } catch (const nlohmann::json::exception& e) {
        fail(std::string("has a ") + kTrainedForFile + " that is not JSON: " + e.what());
      }
      if (!trained_for.is_object()) fail(std::string("has a ") + kTrainedForFile + " that is not a JSON object");
    }
    module.eval();
    require_methods({"schema", "forward"});
  }

  void require_methods(std::initializer_list<const char*> methods) const {
    for (const char* method : methods)
      if (!module.find_method(method))
        fail(std::string("has no method ") + method +
             "() (see models/POLICY_CONTRACT.md; was it exported with @torch.jit.export?)");
  }

  void check_schema() {
    try {
      schema = module.get_method("schema")({}).toStringRef();
    } catch (const std::exception& e) {
      fail("schema() failed or did not return a string: " + torch_message(e));
    }
    nlohmann::json s;
    try {
      s = nlohmann::json::parse(schema);
    } catch (const nlohmann::json::exception& e) {
      fail(std::string("schema() is not JSON: ") + e.what());
    }
    if (!s.is_object()) fail("schema() is not a JSON object");
    if (s.contains("training") && s["training"].is_object() &&
        s["training"].contains("total_positions") &&
        s["training"]["total_positions"].is_number_integer())
      trained_total_positions = s["training"]["total_positions"].get<int>();
    auto number_at = [&](const char* key) {
      if (!s.contains(key) || !s[key].is_number())
        fail(std::string("schema() has no number \"") + key + "\"");
      return s[key].get<double>();
    };
    const double version = number_at("schema_version");
    if (version != kSchemaVersion)
      fail("has schema_version " + number(version) + "; this daemon reads version " +
           std::to_string(kSchemaVersion) + " only (re-export it with this version of ptypilot)");
    if (!s.contains("kind") || !s["kind"].is_string() ||
        (s["kind"] != kSchemaKind && s["kind"] != kFlankScorerKind))
      fail("is of kind " + (s.contains("kind") ? s["kind"].dump() : std::string("(none)")) +
           ", expected \"" + kSchemaKind + "\" or \"" + kFlankScorerKind + "\"");
    kind = s["kind"].get<std::string>();
    if (kind == kFlankScorerKind) {
      const double half = number_at("patch_half_px");
      if (half != std::floor(half) || half < 0 || half > kMaxPatchHalfPx)
        fail("has patch_half_px " + number(half) + "; expected a whole number in [0, " +
             std::to_string(kMaxPatchHalfPx) + "]");
      patch_half_px = static_cast<int>(half);
      const double channels = number_at("feature_channels");
      if (channels != kFlankFeatureChannels)
        fail("scores " + number(channels) + " feature channels; this daemon makes " +
             std::to_string(kFlankFeatureChannels) + " (lattice_flank_policy.hpp)");
    }
    const double k = number_at("sub_sequence_size");
    if (k != limits.sub_sequence_size)
      fail("expects sub-sequences of " + number(k) + " positions, the session asks for " +
           std::to_string(limits.sub_sequence_size) +
           " (session.sub_sequence_size must match the model)");
    if (s.contains("first_sub_sequence")) {
      const nlohmann::json& first = s["first_sub_sequence"];
      if (!first.is_string() ||
          (first != "sparse-grid" && first != "survey" && first != "centre-out"))
        fail("begins with first_sub_sequence " + first.dump() +
             "; this daemon knows \"sparse-grid\", \"survey\" and \"centre-out\" "
             "(models/POLICY_CONTRACT.md)");
      first_sub_sequence = first.get<std::string>();
    }
    const double height = number_at("fov_height_A");
    const double width = number_at("fov_width_A");
    if (std::abs(height - limits.fov_height_A) > kFovTolerance_A ||
        std::abs(width - limits.fov_width_A) > kFovTolerance_A)
      fail("was trained for a FOV of " + number(height) + " x " + number(width) +
           " A, the session scans " + number(limits.fov_height_A) + " x " +
           number(limits.fov_width_A) + " A (session.raster: (rows - 1) * step_A)");
  }

  void check_initial_hidden() {
    try {
      initial_hidden = module.get_method("initial_hidden")({}).toTensor();
    } catch (const std::exception& e) {
      fail("initial_hidden() failed or did not return a tensor: " + torch_message(e));
    }
    if (initial_hidden.dim() != 3 || initial_hidden.size(1) != 1 ||
        initial_hidden.scalar_type() != at::kFloat)
      fail("initial_hidden() returned " + shape_of(initial_hidden) + ", expected [L, 1, H] Float");
    hidden = initial_hidden;
    previous_positions = at::zeros({limits.sub_sequence_size, 2}, at::kFloat);
  }

  static bool close(double a, double b, double relative) {
    return std::abs(a - b) <= relative * std::max(std::abs(a), std::abs(b));
  }

  // Each quantity of `session` the record holds and the session does not share:
  // {name: {"trained": ..., "session": ...}}. A quantity the record lacks is not compared.
  nlohmann::json differences(std::initializer_list<std::pair<const char*, double>> session,
                             double relative) const {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [name, value] : session) {
      if (!trained_for.contains(name) || !trained_for[name].is_number()) continue;
      const double trained = trained_for[name].get<double>();
      if (!close(trained, value, relative)) out[name] = {{"trained", trained}, {"session", value}};
    }
    return out;
  }

  static void report(const PolicyContext& context, SessionWarning warning) {
    if (context.warnings != nullptr) {
      context.warnings->push_back(std::move(warning));
      return;
    }
    log::warn(warning.code, {{"message", warning.message},
                             {"detail", nlohmann::json::parse(warning.detail_json)}});
  }

  void report_differences(const PolicyContext& context, const nlohmann::json& found,
                          const std::string& what) const {
    if (found.empty()) return;
    std::string list;
    for (const auto& [name, d] : found.items())
      list += (list.empty() ? "" : ", ") + name + " " + number(d["trained"].get<double>()) +
              " (trained) vs " + number(d["session"].get<double>()) + " (session)";
    report(context, {kSessionDiffers,
                     "model " + path + " was trained for another " + what + ": " + list +
                         "; it runs, but outside what it learned (train one for this session)",
                     nlohmann::json{{"model", path}, {"differences", found}}.dump()});
  }

  // At the session's first proposal: its geometry and budget against the record.
  void check_geometry(const PolicyContext& context) {
    geometry_checked = true;
    if (trained_for.is_null()) {
      report(context,
             {"torchscript_policy_not_checkable",
              "model " + path + " has no record of the geometry and dose it was trained for (" +
                  kTrainedForFile + ", written by exports since ptypilot recorded it), so this " +
                  "session cannot be checked against it; add it with `python3 -m ptypilot.export " +
                  "--add-record " + path + "` or re-export the model",
              nlohmann::json{{"model", path}, {"missing", kTrainedForFile}}.dump()});
      // The budget is in the schema of every export, so that much can still be checked.
      if (trained_total_positions > 0 && context.total_positions != trained_total_positions) {
        nlohmann::json found;
        found["total_positions"] = {{"trained", trained_total_positions},
                                    {"session", context.total_positions}};
        report_differences(context, found, "position budget");
      }
      return;
    }
    const ProbeConfig& probe = limits.probe;
    report_differences(
        context,
        differences({{"energy_keV", probe.energy_keV},
                     {"semiangle_mrad", probe.semiangle_mrad},
                     {"defocus_A", probe.defocus_A},
                     {"Cs_mm", probe.Cs_mm},
                     {"window_px", double(probe.window_px)},
                     {"detector_pixel_mrad", probe.detector_pixel_mrad},
                     {"raster_rows", double(context.raster.rows)},
                     {"raster_cols", double(context.raster.cols)},
                     {"step_A", context.raster.step_A},
                     {"sub_sequence_size", double(limits.sub_sequence_size)},
                     {"total_positions", double(context.total_positions)}},
                    kGeometryRelativeTolerance),
        "geometry");
  }

  // Once the first frames are in: the session's dose against the record.
  void check_dose(const PolicyContext& context) {
    dose_checked = true;
    if (trained_for.is_null()) return;  // said once already, at the start
    report_differences(context,
                       differences({{"dose_e_per_A2", context.dose_e_per_A2}},
                                   kDoseRelativeTolerance),
                       "dose");
  }

  // forward() once on a flat potential, so that a file whose forward() does not follow the
  // contract fails at start-up, not in the middle of a session. It also takes LibTorch's
  // one-time costs (the graph executor's first runs) out of the first real call.
  void dry_run() {
    try {
      c10::InferenceMode guard;
      const at::Tensor potential = at::zeros({32, 32}, at::kFloat);
      for (int i = 0; i < 2; ++i) {
        auto [positions, new_hidden] = run(potential);
        if (positions.sizes() != at::IntArrayRef{limits.sub_sequence_size, 2})
          fail("forward() returned positions " + shape_of(positions) + ", expected [" +
               std::to_string(limits.sub_sequence_size) + ", 2]");
        if (new_hidden.sizes() != initial_hidden.sizes())
          fail("forward() returned a hidden state " + shape_of(new_hidden) + ", expected " +
               shape_of(initial_hidden));
      }
    } catch (const std::invalid_argument&) {
      throw;
    } catch (const std::exception& e) {
      fail("forward() failed on a test input: " + torch_message(e));
    }
  }

  // The flank scorer's forward(features [n, C, P, P]) -> scores [n, 9] as float32.
  at::Tensor score(const at::Tensor& features) {
    c10::IValue out = module.forward({features});
    if (!out.isTensor()) throw std::runtime_error("forward() did not return a tensor");
    at::Tensor scores = out.toTensor().to(at::kFloat).contiguous();
    if (scores.sizes() != at::IntArrayRef{features.size(0), kFlankMoves})
      throw std::runtime_error("forward() returned scores " + shape_of(scores) + ", expected [" +
                               std::to_string(features.size(0)) + ", " +
                               std::to_string(kFlankMoves) + "]");
    return scores;
  }

  // The flank scorer's dry run: forward() on two blank patches, for the reasons of dry_run().
  void dry_run_scorer() {
    try {
      c10::InferenceMode guard;
      const int side = 2 * patch_half_px + 1;
      for (int i = 0; i < 2; ++i) score(at::zeros({2, kFlankFeatureChannels, side, side}, at::kFloat));
    } catch (const std::exception& e) {
      fail("forward() failed on a test input: " + torch_message(e));
    }
  }

  // forward(previous_positions, potential, hidden) -> (positions as float32, new hidden).
  std::pair<at::Tensor, at::Tensor> run(const at::Tensor& potential) {
    c10::IValue out = module.forward({previous_positions, potential, hidden});
    if (!out.isTuple()) throw std::runtime_error("forward() did not return a tuple");
    const auto& elements = out.toTupleRef().elements();
    if (elements.size() != 2 || !elements[0].isTensor() || !elements[1].isTensor())
      throw std::runtime_error("forward() did not return (Tensor, Tensor)");
    return {elements[0].toTensor().to(at::kFloat).contiguous(), elements[1].toTensor()};
  }
};

// The file at model_path, loaded and its schema checked against the session's limits.
std::shared_ptr<Impl> load_model(const std::filesystem::path& model_path, const PolicyLimits& limits) {
  auto impl = std::make_shared<Impl>();
  impl->path = model_path.string();
  impl->limits = limits;
  if (limits.sub_sequence_size <= 0 || !(limits.fov_height_A > 0) || !(limits.fov_width_A > 0))
    throw std::invalid_argument("policy model " + impl->path +
                                ": the session's sub_sequence_size and FOV must be positive "
                                "(got " +
                                std::to_string(limits.sub_sequence_size) + ", " +
                                number(limits.fov_height_A) + " x " + number(limits.fov_width_A) +
                                " A)");
  impl->load();
  impl->check_schema();
  return impl;
}

class LoadedTorchScriptPolicy final : public TorchScriptPolicy {
 public:
  explicit LoadedTorchScriptPolicy(std::shared_ptr<Impl> impl);

  void reset(std::uint64_t seed) override;
  Status propose(const PolicyContext& context, std::vector<Vec2>* positions) override;
  const std::string& schema_json() const override { return impl_->schema; }
  std::span<const Vec2> last_output() const override { return impl_->last_output; }
  double hidden_norm() const override;

 private:
  std::shared_ptr<Impl> impl_;
  // Sub-sequence 0 and the fallback without a potential: the sparse grid's first K, a survey of
  // the FOV, or lattice-flank's central patch, as the schema says the model was trained to begin.
  std::unique_ptr<Policy> first_;
};

LoadedTorchScriptPolicy::LoadedTorchScriptPolicy(std::shared_ptr<Impl> impl)
    : impl_(std::move(impl)) {
  impl_->require_methods({"initial_hidden"});
  if (impl_->first_sub_sequence == "survey")
    first_ = std::make_unique<SurveyPolicy>();
  else if (impl_->first_sub_sequence == "centre-out")
    first_ = std::make_unique<LatticeFlankPolicy>();  // without a potential: its pattern, unmoved
  else
    first_ = std::make_unique<SparseGridPolicy>();
  impl_->check_initial_hidden();
  impl_->dry_run();
  impl_->hidden = impl_->initial_hidden;
  log::info("torchscript_policy_loaded",
            {{"model", impl_->path}, {"schema", nlohmann::json::parse(impl_->schema)}});
}

void LoadedTorchScriptPolicy::reset(std::uint64_t seed) {
  first_->reset(seed);
  impl_->hidden = impl_->initial_hidden;
  impl_->last_proposal.clear();
  impl_->last_output.clear();
  impl_->geometry_checked = false;
  impl_->dose_checked = false;
}

double LoadedTorchScriptPolicy::hidden_norm() const {
  try {
    return impl_->hidden.abs().sum().item<double>();
  } catch (const std::exception&) {
    return std::nan("");
  }
}

Status LoadedTorchScriptPolicy::propose(const PolicyContext& context,
                                       std::vector<Vec2>* positions) {
  positions->clear();
  if (context.count <= 0) return Status::Ok();
  const Potential* potential = context.potential;
  Impl& p = *impl_;
  if (!p.geometry_checked) p.check_geometry(context);
  if (!p.dose_checked && context.dose_e_per_A2 > 0) p.check_dose(context);
  if (context.sub_sequence == 0 || potential == nullptr || potential->phase_rad.empty() ||
      context.visited_A.empty()) {
    if (Status s = first_->propose(context, positions); !s.ok()) return s;
    p.last_proposal = *positions;
    return Status::Ok();
  }
  if (p.last_proposal.empty()) {
    // A session that this policy did not start (the first proposal came from elsewhere): the
    // positions visited last are the best stand-in for its previous proposal.
    const auto tail = context.visited_A.last(
        std::min<std::size_t>(context.visited_A.size(), p.limits.sub_sequence_size));
    p.last_proposal.assign(tail.begin(), tail.end());
  }

  const int k = p.limits.sub_sequence_size;
  std::string error;
  try {
    // previous_positions: the last proposal, normalised by the FOV; its first position repeated
    // in front when it had fewer than K (a short first sub-sequence).
    auto positions_in = p.previous_positions.accessor<float, 2>();
    const std::size_t have = p.last_proposal.size();
    for (int i = 0; i < k; ++i) {
      const std::ptrdiff_t from = static_cast<std::ptrdiff_t>(have) - k + i;
      const Vec2& v = p.last_proposal[static_cast<std::size_t>(std::max<std::ptrdiff_t>(0, from))];
      positions_in[i][0] = static_cast<float>(v.y / p.limits.fov_height_A);
      positions_in[i][1] = static_cast<float>(v.x / p.limits.fov_width_A);
    }

    // potential: the phase over the FOV, object pixels from fov_origin_A, clipped to the image.
    const ObjectGrid& grid = potential->grid;
    const RealImage& phase = potential->phase_rad;
    if (!(grid.pixel_A > 0) || !std::isfinite(grid.pixel_A) ||
        !std::isfinite(grid.fov_origin_A.y) || !std::isfinite(grid.fov_origin_A.x) ||
        !std::isfinite(grid.fov_height_A) || !std::isfinite(grid.fov_width_A) ||
        std::abs(grid.fov_origin_A.y) + grid.fov_height_A > 1e6 * grid.pixel_A ||
        std::abs(grid.fov_origin_A.x) + grid.fov_width_A > 1e6 * grid.pixel_A)
      throw std::runtime_error("the potential's object grid is not usable (pixel_A " +
                               number(grid.pixel_A) + ", FOV origin " +
                               number(grid.fov_origin_A.y) + ", " + number(grid.fov_origin_A.x) +
                               " A)");
    const int row0 = std::clamp(static_cast<int>(std::lround(grid.fov_origin_A.y / grid.pixel_A)),
                                0, phase.rows());
    const int col0 = std::clamp(static_cast<int>(std::lround(grid.fov_origin_A.x / grid.pixel_A)),
                                0, phase.cols());
    const int rows = std::min(static_cast<int>(std::lround(grid.fov_height_A / grid.pixel_A)) + 1,
                              phase.rows() - row0);
    const int cols = std::min(static_cast<int>(std::lround(grid.fov_width_A / grid.pixel_A)) + 1,
                              phase.cols() - col0);
    if (rows <= 0 || cols <= 0)
      throw std::runtime_error("the potential's FOV crop is empty (object " +
                               std::to_string(phase.rows()) + " x " + std::to_string(phase.cols()) +
                               " px)");
    float* corner =
        const_cast<float*>(phase.data()) + static_cast<std::ptrdiff_t>(row0) * phase.cols() + col0;
    at::Tensor crop;
    std::pair<at::Tensor, at::Tensor> result;
    {
      c10::InferenceMode guard;
      crop = at::from_blob(corner, {rows, cols}, {phase.cols(), 1}, at::kFloat)
                 .clone(at::MemoryFormat::Contiguous);
      result = p.run(crop);
    }
    const at::Tensor& out = result.first;
    if (out.sizes() != at::IntArrayRef{k, 2})
      throw std::runtime_error("forward() returned positions " + shape_of(out) + ", expected [" +
                               std::to_string(k) + ", 2]");
    if (result.second.sizes() != p.initial_hidden.sizes())
      throw std::runtime_error("forward() returned a hidden state " + shape_of(result.second) +
                               ", expected " + shape_of(p.initial_hidden));
    p.hidden = result.second;

    std::vector<Vec2> proposed;
    proposed.reserve(static_cast<std::size_t>(k));
    const float* xy = out.data_ptr<float>();
    p.last_output.resize(static_cast<std::size_t>(k));
    for (int i = 0; i < k; ++i) p.last_output[static_cast<std::size_t>(i)] = {xy[2 * i], xy[2 * i + 1]};
    const double step = context.raster.step_A;
    const auto snap = [step](double v_A, double extent_A) {
      return step > 0 ? std::clamp(std::round(v_A / step) * step, 0.0, extent_A) : v_A;
    };
    for (int i = 0; i < k; ++i) {
      // std::clamp keeps a NaN a NaN, which Safety counts as non-finite and drops.
      const double y = std::clamp(static_cast<double>(xy[2 * i]), 0.0, 1.0);
      const double x = std::clamp(static_cast<double>(xy[2 * i + 1]), 0.0, 1.0);
      proposed.push_back({snap(y * p.limits.fov_height_A, p.limits.fov_height_A),
                          snap(x * p.limits.fov_width_A, p.limits.fov_width_A)});
    }
    p.last_proposal = proposed;
    proposed.resize(static_cast<std::size_t>(std::min(k, context.count)));
    *positions = std::move(proposed);
    return Status::Ok();
  } catch (const std::exception& e) {
    error = torch_message(e);
  } catch (...) {
    error = "unknown exception";
  }
  // Not logged here: the daemon logs the session's error ("session_error") with this message,
  // and one failure should make one log line.
  return {StatusCode::kInternal, "model " + p.path + " failed on sub-sequence " +
                                     std::to_string(context.sub_sequence) + ": " + error};
}

// The flank scorer's network as LatticeFlankPolicy's FlankMoveScorer.
class TorchFlankScorer final : public FlankMoveScorer {
 public:
  explicit TorchFlankScorer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  int patch_half_px() const override { return impl_->patch_half_px; }

  Status score(std::span<const float> features, std::span<const Vec2> nodes_A,
               std::vector<std::array<float, kFlankMoves>>* scores) override {
    const long n = static_cast<long>(nodes_A.size()), side = 2 * impl_->patch_half_px + 1;
    if (features.size() != static_cast<std::size_t>(n * kFlankFeatureChannels * side * side))
      return {StatusCode::kInternal, "model " + impl_->path + ": features of the wrong size"};
    std::string error;
    try {
      c10::InferenceMode guard;
      // from_blob does not write through its pointer; the const_cast only satisfies its type.
      const at::Tensor x = at::from_blob(const_cast<float*>(features.data()),
                                         {n, kFlankFeatureChannels, side, side}, at::kFloat);
      const at::Tensor out = impl_->score(x);
      const float* v = out.data_ptr<float>();
      scores->resize(static_cast<std::size_t>(n));
      for (long k = 0; k < n; ++k)
        for (int m = 0; m < kFlankMoves; ++m) (*scores)[k][m] = v[k * kFlankMoves + m];
      return Status::Ok();
    } catch (const std::exception& e) {
      error = torch_message(e);
    } catch (...) {
      error = "unknown exception";
    }
    return {StatusCode::kInternal, "model " + impl_->path + " failed: " + error};
  }

 private:
  std::shared_ptr<Impl> impl_;
};

// lattice-flank with the file's network choosing the moves (lattice_flank_policy.hpp), and the
// same checks of the session against the file's trained_for record as the GRU's.
class FlankScorerPolicy final : public TorchScriptPolicy {
 public:
  explicit FlankScorerPolicy(std::shared_ptr<Impl> impl)
      : impl_(std::move(impl)), flank_(LatticeFlankOptions{}, std::make_shared<TorchFlankScorer>(impl_)) {
    impl_->dry_run_scorer();
    log::info("torchscript_policy_loaded",
              {{"model", impl_->path}, {"schema", nlohmann::json::parse(impl_->schema)}});
  }

  void reset(std::uint64_t seed) override {
    flank_.reset(seed);
    impl_->geometry_checked = false;
    impl_->dose_checked = false;
  }

  Status propose(const PolicyContext& context, std::vector<Vec2>* positions) override {
    if (!impl_->geometry_checked) impl_->check_geometry(context);
    if (!impl_->dose_checked && context.dose_e_per_A2 > 0) impl_->check_dose(context);
    Status s = flank_.propose(context, positions);
    if (!s.ok())
      s = Status(s.code(), s.message() + " (sub-sequence " + std::to_string(context.sub_sequence) + ")");
    return s;
  }

  const std::string& schema_json() const override { return impl_->schema; }
  std::span<const Vec2> last_output() const override { return {}; }
  double hidden_norm() const override { return 0.0; }  // it keeps no state between calls

 private:
  std::shared_ptr<Impl> impl_;
  LatticeFlankPolicy flank_;
};

}  // namespace
}  // namespace ptypilot

extern "C" ptypilot::Policy* ptypilot_make_torchscript_policy(
    const char* model_path, const ptypilot::PolicyLimits* limits) {
  if (model_path == nullptr || limits == nullptr)
    throw std::invalid_argument("ptypilot_make_torchscript_policy: null model path or limits");
  std::shared_ptr<ptypilot::Impl> impl = ptypilot::load_model(model_path, *limits);
  if (impl->kind == ptypilot::kFlankScorerKind) return new ptypilot::FlankScorerPolicy(std::move(impl));
  return new ptypilot::LoadedTorchScriptPolicy(std::move(impl));
}
