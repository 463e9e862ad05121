// Notebooks: a session's cells as a Jupyter notebook (nbformat 4.5), with provenance. The
// execution records are already in Jupyter's output model (MIME bundles), so a cell is a
// translation of one record: its code becomes the source, its stdout and stderr become stream
// outputs, its displays and result become display_data / execute_result, and its error an error
// output. What the notebook format has no field for (ids, timings, resource use, artifacts with
// their SHA-256) goes into the cell's metadata under "pycell".
//
// Order within a cell: the records keep stdout, stderr and the rich outputs apart, not their
// interleaving, so a cell's outputs are stdout, then the rich outputs, then stderr, then the error.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

namespace pycell::notebook {

// One code cell from one execution record (the API's execution object).
nlohmann::json CellFromExecution(const nlohmann::json& execution);

// The notebook of `executions` (oldest first). `provenance` becomes metadata.pycell (session,
// principal, agent/thread/run ids, input files with their SHA-256, …).
nlohmann::json MakeNotebook(const nlohmann::json& provenance,
                            const std::vector<nlohmann::json>& executions);

}  // namespace pycell::notebook
