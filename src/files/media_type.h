// Media types of stored files: which uploads pycell accepts and what each file is, judged by its
// content (libmagic) as well as by its name — a file called report.csv that is really an ELF
// binary is refused.
//
// The accepted input types follow Microsoft Foundry's code interpreter list, plus xls and parquet:
// c, cpp, cs, css, csv, doc, docx, gif, go, html, java, jpeg/jpg, js, json, md, parquet, pdf, php,
// pkl, png, pptx, py, rb, sh, tar, tex, ts, txt, xls, xlsx, xml, zip, (and similar text formats).
//
// Thread-safety: every function may be called from any thread.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace pycell::files {

// For an upload: the media type to record for `filename` whose content starts with `head` (the
// first KiBs), or InvalidArgument with a message that names the extension or the mismatch and
// lists what is accepted. The name must have an accepted extension, and the content must agree
// with it (text for text formats, a ZIP container for docx/xlsx/pptx/zip, the right signature for
// images, pdf, parquet, xls, tar …).
Result<std::string> CheckUploadType(std::string_view filename, std::string_view head);

// For an output file a cell wrote: the best media type from its name and content; never fails
// ("application/octet-stream" when nothing better is known).
std::string GuessMediaType(std::string_view filename, std::string_view head);

}  // namespace pycell::files
