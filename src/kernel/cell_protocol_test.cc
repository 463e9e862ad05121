#include "kernel/cell_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pycell::kernel {
namespace {

constexpr int64_t kId = 424242;

struct Cell {
  ExecuteOptions options;
  KernelRun run;
  CellProtocol protocol{kId, 3, options};
  Status Send(const std::string& frame, size_t fds = 0, double elapsed_ms = 100) {
    return protocol.OnFrame(frame, fds, elapsed_ms, &run, {});
  }
};

std::string Done(const std::string& extra = "") {
  return R"({"type":"done","id":424242,"status":"ok","execution_count":4,"duration_ms":5)" + extra +
         "}";
}

TEST(CellProtocolTest, AWellFormedCellIsTaken) {
  Cell cell;
  ASSERT_TRUE(cell.Send(R"({"type":"display","data":{"text/plain":"hi"},"metadata":{}})").ok());
  ASSERT_TRUE(cell.Send(R"({"type":"result","data":{"application/json":{"a":[1,2]}},)"
                        R"("metadata":{},"execution_count":4})")
                  .ok());
  ASSERT_TRUE(cell.Send(R"({"type":"error","ename":"E","evalue":"v","traceback":["a","b"]})").ok());
  ASSERT_TRUE(cell.Send(Done()).ok());
  EXPECT_TRUE(cell.protocol.done());
  ASSERT_EQ(cell.run.outputs.size(), 2u);
  EXPECT_EQ(cell.run.outputs[1].bundle.data[0].second, R"({"a":[1,2]})");
  ASSERT_TRUE(cell.run.error.has_value());
  EXPECT_EQ(cell.run.error->traceback.size(), 2u);
  EXPECT_EQ(cell.run.execution_count, 4);
  EXPECT_EQ(cell.run.status, RunStatus::kOk);
}

// Issue 16 rows 1 and 11: each of these ended the server (an uncaught type_error) or put lies in
// the record. Each is now a violation, and nothing throws.
TEST(CellProtocolTest, WrongTypesAndForgeriesAreViolations) {
  const std::vector<std::string> frames = {
      R"({"type":1})",
      R"([1,2])",
      R"("done")",
      R"(not json)",
      R"({"type":"done","id":424242,"status":1,"execution_count":4,"duration_ms":5})",
      R"({"type":"done","id":424242,"status":null,"execution_count":4,"duration_ms":5})",
      R"({"type":"done","id":424242,"status":"ok","execution_count":"x","duration_ms":5})",
      R"({"type":"done","id":424242,"status":"ok","execution_count":999999,"duration_ms":5})",
      R"({"type":"done","id":424242,"status":"ok","execution_count":4,"duration_ms":1e300})",
      R"({"type":"done","id":424242,"status":"ok","execution_count":4,"duration_ms":-1})",
      R"({"type":"done","id":424242,"status":"maybe","execution_count":4,"duration_ms":5})",
      R"({"type":"done","status":"ok","execution_count":4,"duration_ms":5})",
      R"({"type":"done","id":1,"status":"ok","execution_count":4,"duration_ms":5})",
      R"({"type":"done","id":"424242","status":"ok","execution_count":4,"duration_ms":5})",
      R"({"type":"error","ename":1,"evalue":"v","traceback":[]})",
      R"({"type":"error","ename":"E","evalue":[1],"traceback":[]})",
      R"({"type":"error","ename":"E","evalue":"v","traceback":[1]})",
      R"({"type":"error","ename":"E","evalue":"v"})",
      R"({"type":"display","data":[1]})",
      R"({"type":"display"})",
      R"({"type":"display","data":{},"metadata":7})",
      R"({"type":"result","data":{},"execution_count":"x"})",
      R"({"type":"ready"})",
      R"({"type":"forked","pid":5,"fds":[1,2,3,4]})",
      R"({"type":"shutdown"})",
  };
  for (const std::string& frame : frames) {
    Cell cell;
    Status s = cell.Send(frame);
    EXPECT_TRUE(IsProtocolViolation(s)) << frame << " -> " << s.ToString();
  }
}

TEST(CellProtocolTest, DeepNestingIsRefusedWithoutRecursion) {
  Cell cell;
  std::string deep = R"({"type":"display","data":{"application/json":)" +
                     std::string(1000000, '[') + std::string(1000000, ']') + "}}";
  Status s = cell.Send(deep);
  EXPECT_TRUE(IsProtocolViolation(s)) << s.ToString();
  EXPECT_NE(s.message().find("nesting"), std::string::npos) << s.message();
}

TEST(CellProtocolTest, DescriptorsAreAViolation) {
  Cell cell;
  EXPECT_TRUE(IsProtocolViolation(cell.Send(R"({"type":"display","data":{}})", 1)));
}

TEST(CellProtocolTest, AnythingAfterTheCompletionIsAViolation) {
  Cell cell;
  ASSERT_TRUE(cell.Send(Done()).ok());
  EXPECT_TRUE(IsProtocolViolation(cell.Send(Done())));
  Cell other;
  ASSERT_TRUE(other.Send(Done()).ok());
  EXPECT_TRUE(IsProtocolViolation(other.Send(R"({"type":"display","data":{}})")));
}

TEST(CellProtocolTest, AnEmptyCellKeepsTheCount) {
  Cell cell;
  EXPECT_TRUE(
      cell.Send(
              R"({"type":"done","id":424242,"status":"ok","execution_count":3,"duration_ms":0.5})")
          .ok());
  EXPECT_EQ(cell.run.execution_count, 3);
}

// Issue 16 row 10: a million empty displays held the server at 1.35 GB. Outputs past the budget
// are read and dropped; frames past the limit end the session.
TEST(CellProtocolTest, OutputsAndFramesAreBounded) {
  Cell cell;
  cell.options.max_outputs = 5;
  cell.options.max_frames = 20;
  CellProtocol protocol(kId, 3, cell.options);
  const std::string empty = R"({"type":"display","data":{},"metadata":{}})";
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(protocol.OnFrame(empty, 0, 1, &cell.run, {}).ok());
  EXPECT_EQ(cell.run.outputs.size(), 5u);
  EXPECT_TRUE(cell.run.outputs_truncated);
  EXPECT_TRUE(IsProtocolViolation(protocol.OnFrame(empty, 0, 1, &cell.run, {})));
}

TEST(CellProtocolTest, RunnerTimeCannotExceedTheHostsMeasure) {
  Cell cell;
  Status s = cell.Send(
      R"({"type":"done","id":424242,"status":"ok","execution_count":4,"duration_ms":5000})", 0,
      /*elapsed_ms=*/100);
  EXPECT_TRUE(IsProtocolViolation(s)) << s.ToString();
}

}  // namespace
}  // namespace pycell::kernel
