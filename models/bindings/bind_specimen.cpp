// Python face of the specimen models (ptypilot/sim/specimen.hpp), so that training data in
// models/ is generated from exactly the atoms and potentials the simulated detector uses.
// Atoms cross the boundary as an (n, 3) float64 array of [y_A, x_A, Z].
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "numpy_convert.hpp"
#include "ptypilot/specimen.hpp"

namespace py = pybind11;
namespace sim = ptypilot::sim;

namespace {

using AtomArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

py::array_t<double> to_array(const std::vector<sim::Atom>& atoms) {
  py::array_t<double> array({static_cast<py::ssize_t>(atoms.size()), py::ssize_t{3}});
  auto out = array.mutable_unchecked<2>();
  for (py::ssize_t i = 0; i < out.shape(0); ++i) {
    const sim::Atom& atom = atoms[static_cast<std::size_t>(i)];
    out(i, 0) = atom.y_A;
    out(i, 1) = atom.x_A;
    out(i, 2) = atom.Z;
  }
  return array;
}

// Z travels as a float64 column, so anything that is not a whole number was not made by
// build_specimen and is rejected rather than rounded.
std::vector<sim::Atom> to_atoms(const AtomArray& array) {
  if (array.ndim() != 2 || array.shape(1) != 3) {
    throw std::invalid_argument("atoms must be an (n, 3) array of [y_A, x_A, Z]");
  }
  auto in = array.unchecked<2>();
  std::vector<sim::Atom> atoms;
  atoms.reserve(static_cast<std::size_t>(in.shape(0)));
  for (py::ssize_t i = 0; i < in.shape(0); ++i) {
    const double y_A = in(i, 0);
    const double x_A = in(i, 1);
    const double z = in(i, 2);
    if (!std::isfinite(y_A) || !std::isfinite(x_A)) {
      throw std::invalid_argument("atoms: row " + std::to_string(i) + " has a non-finite position");
    }
    if (!(z >= 1 && z <= 118) || z != std::floor(z)) {
      throw std::invalid_argument("atoms: row " + std::to_string(i) +
                                  " has Z that is not a whole number in [1, 118]");
    }
    atoms.push_back({y_A, x_A, static_cast<int>(z)});
  }
  return atoms;
}

}  // namespace

void bind_specimen(py::module_& m) {
  m.def(
      "build_specimen",
      [](const std::string& kind, std::uint64_t seed, double height_A, double width_A,
         int vacancies, bool random_rotation, bool random_translation) {
        sim::SpecimenConfig config;
        config.kind = sim::parse_specimen_kind(kind);
        config.seed = seed;
        config.vacancies = vacancies;
        config.random_rotation = random_rotation;
        config.random_translation = random_translation;
        std::vector<sim::Atom> atoms;
        {
          py::gil_scoped_release release;
          atoms = sim::build_specimen(config, height_A, width_A);
        }
        return to_array(atoms);
      },
      py::arg("kind"), py::arg("seed"), py::arg("height_A"), py::arg("width_A"),
      py::arg("vacancies") = 3, py::arg("random_rotation") = true,
      py::arg("random_translation") = true,
      "Atoms of a specimen ('mos2', 'graphene', 'dwcnt', 'mos2-flake', 'mos2-holes',\n"
      "'nanoparticles' or 'mos2-grain-boundary'; the last four sized on the whole field as FOV)\n"
      "covering [0, height_A] x [0, width_A] plus a 5 A margin, as an (n, 3) float64 array of\n"
      "[y_A, x_A, Z]. The same\n"
      "seed (a non-negative int) always gives the same atoms. MoS2 lists each S2 column as two\n"
      "S atoms at one position. Raises ValueError for an unknown kind, a non-positive field or\n"
      "more vacancies than atoms in the field.");

  m.def(
      "projected_potential_VA",
      [](const AtomArray& atoms, int rows, int cols, double pixel_A) {
        const std::vector<sim::Atom> list = to_atoms(atoms);
        ptypilot::RealImage potential;
        {
          py::gil_scoped_release release;
          potential = sim::projected_potential_VA(list, rows, cols, pixel_A);
        }
        return ptypilot::bindings::to_numpy(potential);
      },
      py::arg("atoms"), py::arg("rows"), py::arg("cols"), py::arg("pixel_A"),
      "Projected potential v_z in V*A as a (rows, cols) float32 array; pixel (i, j) is the point\n"
      "(y, x) = (i * pixel_A, j * pixel_A). Kirkland's parameterisation, computed in Fourier\n"
      "space and band-limited to 2/3 of the Nyquist frequency (smooth roll-off from 0.6 of it).\n"
      "atoms is an (n, 3) array of [y_A, x_A, Z] as returned by build_specimen.\n"
      "Raises ValueError for a malformed atom array, a bad grid or an element without parameters.");

  m.def("electron_scattering_factor_A", &sim::electron_scattering_factor_A, py::arg("Z"),
        py::arg("q"),
        "Kirkland's electron scattering factor f_e(q) in Angstrom, q in 1/Angstrom (no 2 pi).\n"
        "Available for Z in {1, 6, 7, 8, 16, 42, 79}; other Z raise ValueError.");

  m.def("atom_projected_potential_VA", &sim::atom_projected_potential_VA, py::arg("Z"),
        py::arg("r_A"),
        "Kirkland's analytic projected potential of one atom at distance r_A > 0, in V*A.");
}
