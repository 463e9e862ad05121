// ExecutionRecord's stored form read back (FromJson): every field survives the round trip, and
// hostile or damaged text gives an error or defaults, never an exception.
#include "session/execution.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace pycell::session {
namespace {

ExecutionRecord FullRecord() {
  ExecutionRecord r;
  r.id = "exec_01";
  r.session_id = "sess_01";
  r.code = "import pandas as pd\ndf";
  r.code_sha256 = std::string(64, 'a');
  r.status = "timeout";
  r.timeout_action = "interrupted";
  r.stdout_text = "out \xe2\x9c\x93\n";
  r.stderr_text = "err\n";
  r.stdout_truncated = true;
  kernel::Output display{kernel::Output::Kind::kDisplay, {}};
  display.bundle.data = {{"text/plain", "<Figure>"}, {"image/png", "iVBORw0KGgo="}};
  display.bundle.metadata_json = R"({"image/png":{"width":640}})";
  kernel::Output result{kernel::Output::Kind::kResult, {}};
  result.bundle.data = {{"text/plain", "{'a': 1}"},
                        {"application/json", R"({"a":[1,2.5,null]})"},
                        {"application/vnd.custom+json", "not json at all"}};
  r.outputs = {display, result};
  r.outputs_truncated = true;
  r.outputs_file = ExecutionRecord::OutputsFile{"file_09", 12345, std::string(64, 'b'), 7};
  r.error = kernel::CellError{"KeyboardInterrupt", "", {"\x1b[31mTraceback\x1b[0m", "line 2"}};
  r.execution_count = 42;
  r.started_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796000000123));
  r.duration_ms = 12.5;
  r.runner_ms = 3.25;
  r.cpu_ms = 7.75;
  r.peak_memory_bytes = 1 << 20;
  r.files = {{"out.csv", 10, true}, {"dir/b%FF.txt", 3, false}};
  r.session_end_reason = "memory";
  r.interrupted_by = "server_shutdown";
  r.protocol_violation = "two completions";
  r.artifacts = {{"file_02", "out.csv", "out.csv", 10, std::string(64, 'c'), "text/csv"}};
  r.artifacts_skipped = {{"big.bin", "too large"}};
  return r;
}

TEST(ExecutionRecordTest, FromJsonReadsBackEveryField) {
  ExecutionRecord full = FullRecord();
  std::string stored = full.ToJson();
  auto back_read = ExecutionRecord::FromJson(stored);
  ASSERT_OK(back_read);
  ExecutionRecord back = std::move(*back_read);
  EXPECT_EQ(back.ToJson(), stored);
  EXPECT_EQ(back.id, "exec_01");
  EXPECT_EQ(back.files[1].path, "dir/b%FF.txt");
  EXPECT_FALSE(back.files[1].created);
  EXPECT_EQ(back.artifacts[0].path, "out.csv");
  EXPECT_EQ(back.outputs[1].kind, kernel::Output::Kind::kResult);
  EXPECT_EQ(back.outputs_file->count, 7u);
  EXPECT_EQ(back.error->traceback.size(), 2u);
  EXPECT_EQ(back.started_at, full.started_at);

  // Unmeasured counters and a skipped outputs file come back as such.
  ExecutionRecord sparse;
  sparse.id = "exec_02";
  sparse.status = "ok";
  sparse.cpu_measured = false;
  sparse.peak_memory_measured = false;
  sparse.unmeasured_reason = "no cgroup";
  sparse.outputs_file_skipped = "quota";
  std::string text = sparse.ToJson();
  auto sparse_back_read = ExecutionRecord::FromJson(text);
  ASSERT_OK(sparse_back_read);
  ExecutionRecord sparse_back = std::move(*sparse_back_read);
  EXPECT_EQ(sparse_back.ToJson(), text);
  EXPECT_FALSE(sparse_back.cpu_measured);
  EXPECT_FALSE(sparse_back.outputs_file.has_value());
}

TEST(ExecutionRecordTest, FromJsonRefusesOrDefaultsWhatIsDamaged) {
  EXPECT_FALSE(ExecutionRecord::FromJson("").ok());
  EXPECT_FALSE(ExecutionRecord::FromJson("[1,2]").ok());
  EXPECT_FALSE(ExecutionRecord::FromJson(R"({"status":"ok"})").ok());  // No id.
  EXPECT_FALSE(ExecutionRecord::FromJson(std::string(100000, '[')).ok());
  // Every field of the wrong type: the record keeps its defaults, nothing throws.
  std::string wrong = R"({"id":"exec_1","status":7,"outputs":{"a":1},"error":"boom",
      "files":[1,"x",{"path":3,"bytes":-5}],"artifacts":[null],"outputs_file":[],
      "cpu_ms":"fast","execution_count":1e300,"started_at":"yesterday","stdout":[1],
      "artifacts_skipped":"none"})";
  auto r_read = ExecutionRecord::FromJson(wrong);
  ASSERT_OK(r_read);
  ExecutionRecord r = std::move(*r_read);
  EXPECT_EQ(r.status, "");
  EXPECT_TRUE(r.outputs.empty());
  EXPECT_FALSE(r.error.has_value());
  EXPECT_EQ(r.files.size(), 3u);
  EXPECT_EQ(r.files[2].bytes, 0u);
  EXPECT_FALSE(r.cpu_measured);
  EXPECT_FALSE(r.outputs_file.has_value());
  EXPECT_EQ(r.stdout_text, "");
  (void)r.ToJson();
  // Outputs whose data is not an object, or whose values are not strings, are kept empty.
  auto o_read = ExecutionRecord::FromJson(
      R"({"id":"exec_1","outputs":[{"data":[1]},{"data":{"text/plain":5,"application/json":{"x":[]}}}]})");
  ASSERT_OK(o_read);
  ExecutionRecord o = std::move(*o_read);
  ASSERT_EQ(o.outputs.size(), 2u);
  EXPECT_TRUE(o.outputs[0].bundle.data.empty());
  ASSERT_EQ(o.outputs[1].bundle.data.size(), 1u);
  EXPECT_EQ(o.outputs[1].bundle.data[0].second, R"({"x":[]})");
}

// A cell can display an application/json value sent as text, nested as deep as its bytes allow.
// Writing such a value out recurses once per level: it must stay text, not end the server.
TEST(ExecutionRecordTest, ADeeplyNestedJsonOutputStaysText) {
  ExecutionRecord r;
  r.id = "exec_deep";
  const std::string deep = std::string(2000000, '[') + std::string(2000000, ']');
  kernel::Output output{kernel::Output::Kind::kDisplay, {}};
  output.bundle.data = {{"application/json", deep}, {"application/x+json", "[[1]]"}};
  r.outputs = {output};
  std::string stored = r.ToJson();
  auto parsed = nlohmann::json::parse(stored, nullptr, false);
  ASSERT_TRUE(parsed.is_object());
  EXPECT_TRUE(parsed["outputs"][0]["data"]["application/json"].is_string());
  EXPECT_EQ(parsed["outputs"][0]["data"]["application/x+json"], nlohmann::json::parse("[[1]]"));
  auto back = ExecutionRecord::FromJson(stored);
  ASSERT_OK(back);
  EXPECT_EQ(back->ToJson(), stored);
  EXPECT_FALSE(OutputToJson(output, 1).empty());
}

}  // namespace
}  // namespace pycell::session
