#include "notebook/notebook.h"

#include <gtest/gtest.h>

#include "notebook/compare.h"

namespace pycell::notebook {
namespace {

using Json = nlohmann::json;

Json Record(const std::string& stdout_text, Json outputs = Json::array()) {
  return {{"id", "exec_01"},       {"status", "ok"}, {"code", "print(1)"}, {"execution_count", 3},
          {"stdout", stdout_text}, {"stderr", ""},   {"outputs", outputs}, {"error", nullptr}};
}

TEST(NotebookTest, ACellIsTheRecordInJupytersShape) {
  Json record = Record("1\n", Json::array({{{"output_type", "execute_result"},
                                            {"data", {{"text/plain", "2"}}},
                                            {"metadata", Json::object()}}}));
  record["stderr"] = "careful\n";
  record["error"] = {{"ename", "ValueError"}, {"evalue", "x"}, {"traceback", {"a", "b"}}};
  Json cell = CellFromExecution(record);
  EXPECT_EQ(cell["cell_type"], "code");
  EXPECT_EQ(cell["source"], "print(1)");
  EXPECT_EQ(cell["execution_count"], 3);
  ASSERT_EQ(cell["outputs"].size(), 4u);
  EXPECT_EQ(cell["outputs"][0],
            Json({{"output_type", "stream"}, {"name", "stdout"}, {"text", "1\n"}}));
  EXPECT_EQ(cell["outputs"][1]["execution_count"], 3);
  EXPECT_EQ(cell["outputs"][2]["name"], "stderr");
  EXPECT_EQ(cell["outputs"][3]["ename"], "ValueError");
  EXPECT_EQ(cell["metadata"]["pycell"]["id"], "exec_01");
}

TEST(NotebookTest, HostileRecordsStillMakeAWellFormedNotebook) {
  std::vector<Json> records = {
      Json::object(),
      {{"id", "../../etc"}, {"code", 7}, {"outputs", "not a list"}, {"error", "boom"}},
      {{"id", std::string(100, 'a')},
       {"outputs", Json::array({1, "x", nullptr})},
       {"artifacts", Json::array({"x", {{"path", "/mnt/data/a"}, {"secret", 1}}})}},
  };
  Json notebook = MakeNotebook({{"session_id", "sess_1"}}, records);
  EXPECT_EQ(notebook["nbformat"], 4);
  ASSERT_EQ(notebook["cells"].size(), 3u);
  EXPECT_EQ(notebook["cells"][0]["id"], "cell-1");
  EXPECT_EQ(notebook["cells"][1]["id"], "cell-2");  // "/" and "." are not allowed in ids.
  EXPECT_EQ(notebook["cells"][2]["id"], "cell-3");  // Over 64 characters.
  EXPECT_EQ(notebook["cells"][1]["source"], "");
  EXPECT_TRUE(notebook["cells"][1]["outputs"].empty());
  EXPECT_TRUE(notebook["cells"][2]["outputs"].empty());
  EXPECT_EQ(notebook["cells"][2]["metadata"]["pycell"]["artifacts"],
            Json::array({{{"path", "/mnt/data/a"}}}));
}

TEST(CompareTest, TheSameRunHasNoDifferences) {
  CellComparison same = CompareExecutions(Record("42\n"), Record("42\n"));
  EXPECT_TRUE(same.differences.empty());
  EXPECT_TRUE(same.images_to_decode.empty());
}

TEST(CompareTest, TextDiffersAndTimesGetANote) {
  CellComparison random = CompareExecutions(Record("0.123\n"), Record("0.456\n"));
  ASSERT_EQ(random.differences.size(), 1u);
  EXPECT_EQ(random.differences[0].what, "stdout");
  EXPECT_TRUE(random.notes.empty());
  CellComparison time = CompareExecutions(Record("1795868072.5\n"), Record("1795868073.1\n"));
  ASSERT_EQ(time.notes.size(), 1u);
  CellComparison address =
      CompareExecutions(Record("<object at 0x7f3a2b1c>\n"), Record("<object at 0x7f99aa00>\n"));
  EXPECT_EQ(address.notes.size(), 1u);
}

TEST(CompareTest, StatusErrorAndOutputsAreCompared) {
  Json a = Record("");
  Json b = Record("");
  b["status"] = "error";
  b["error"] = {{"ename", "KeyError"}, {"evalue", "'x'"}};
  b["outputs"] = Json::array({{{"output_type", "display_data"}, {"data", {{"text/html", "<b>"}}}}});
  CellComparison c = CompareExecutions(a, b);
  std::vector<std::string> what;
  for (const Difference& d : c.differences) what.push_back(d.what);
  EXPECT_EQ(what, (std::vector<std::string>{"status", "error", "outputs[0]"}));
}

TEST(CompareTest, ImagesWithOtherBytesAreLeftToPixelsAndOnlyBase64ReachesPython) {
  auto image = [](const std::string& png) {
    return Json::array({{{"output_type", "display_data"}, {"data", {{"image/png", png}}}}});
  };
  CellComparison c =
      CompareExecutions(Record("", image("iVBORw0KGgo=")), Record("", image("iVBORw0KGgp=")));
  EXPECT_TRUE(c.differences.empty());
  ASSERT_EQ(c.images_to_decode.size(), 1u);
  EXPECT_EQ(c.images_to_decode[0].where, "outputs[0].image/png");
  std::string code = PixelComparisonCode(c.images_to_decode);
  EXPECT_NE(code.find("('iVBORw0KGgo=', 'iVBORw0KGgp=')"), std::string::npos);

  CellComparison hostile = CompareExecutions(Record("", image("a'); import os; os.system('x")),
                                             Record("", image("iVBORw0KGgo=")));
  EXPECT_TRUE(hostile.images_to_decode.empty());
  ASSERT_EQ(hostile.differences.size(), 1u);
  EXPECT_EQ(hostile.differences[0].what, "outputs[0].image/png");
}

}  // namespace
}  // namespace pycell::notebook
