// Every byte a MultipartParser sees comes from a client, in chunks the network chose. So each
// body here is parsed whole, a byte at a time, split at every point and in random pieces, and the
// answers must agree; hostile bodies must fail with a message, never crash.
#include "files/multipart.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace pycell::files {
namespace {

constexpr char kBoundary[] = "----pycellBoundary7MA4YWxk";

struct Part {
  PartHeaders headers;
  std::string data;
  bool ended = false;
};

// What a parse produced: the parts (data joined) and how it ended.
struct Outcome {
  std::vector<Part> parts;
  Status status;
  size_t largest_piece = 0;
  size_t pieces = 0;
};

// Describes an outcome in one string, so that two parses compare with a readable diff.
std::string Describe(const Outcome& outcome) {
  std::string text;
  for (const Part& part : outcome.parts) {
    text += "[name=" + part.headers.name + " filename=" + part.headers.filename +
            (part.headers.has_filename ? "(set)" : "(unset)") +
            " type=" + part.headers.content_type + " data=" + part.data +
            (part.ended ? " end]" : " open]");
  }
  return text + " -> " + outcome.status.ToString();
}

MultipartCallbacks Recorder(Outcome* outcome) {
  MultipartCallbacks callbacks;
  callbacks.on_part_begin = [outcome](const PartHeaders& headers) {
    outcome->parts.push_back(Part{headers, "", false});
    return Status::Ok();
  };
  callbacks.on_part_data = [outcome](std::string_view data) {
    EXPECT_FALSE(data.empty());
    EXPECT_FALSE(outcome->parts.empty());
    if (outcome->parts.empty()) return Status::Internal("data before a part");
    EXPECT_FALSE(outcome->parts.back().ended);
    outcome->parts.back().data += data;
    outcome->largest_piece = std::max(outcome->largest_piece, data.size());
    ++outcome->pieces;
    return Status::Ok();
  };
  callbacks.on_part_end = [outcome] {
    EXPECT_FALSE(outcome->parts.empty());
    if (!outcome->parts.empty()) outcome->parts.back().ended = true;
    return Status::Ok();
  };
  return callbacks;
}

// Parses `body` fed in pieces whose sizes `next_size` picks; stops at the first error.
template <typename NextSize>
Outcome ParseWith(std::string_view body, NextSize next_size, MultipartLimits limits = {},
                  std::string boundary = kBoundary) {
  Outcome outcome;
  MultipartParser parser(boundary, Recorder(&outcome), limits);
  while (!body.empty()) {
    size_t size = std::min(body.size(), std::max<size_t>(1, next_size()));
    outcome.status = parser.Feed(body.substr(0, size));
    if (!outcome.status.ok()) return outcome;
    body.remove_prefix(size);
  }
  outcome.status = parser.Finish();
  return outcome;
}

Outcome ParseWhole(std::string_view body, MultipartLimits limits = {}) {
  return ParseWith(
      body, [&] { return body.size(); }, limits);
}

// Parses `body` whole, then a byte at a time, split in two at every point (for bodies under
// 2 KiB) and in random pieces; every way must give the whole parse's outcome, which it returns.
Outcome ParseEveryWay(std::string_view body, MultipartLimits limits = {}) {
  Outcome whole = ParseWhole(body, limits);
  std::string expected = Describe(whole);
  EXPECT_EQ(Describe(ParseWith(
                body, [] { return 1; }, limits)),
            expected)
      << "byte at a time";
  if (body.size() < 2048) {
    for (size_t split = 1; split < body.size(); ++split) {
      bool first = true;
      auto sizes = [&] {
        size_t size = first ? split : body.size();
        first = false;
        return size;
      };
      EXPECT_EQ(Describe(ParseWith(body, sizes, limits)), expected) << "split at " << split;
    }
  }
  std::mt19937 generator(7);
  for (int run = 0; run < 20; ++run) {
    size_t most = 1 + generator() % 64;
    auto sizes = [&] { return 1 + generator() % most; };
    EXPECT_EQ(Describe(ParseWith(body, sizes, limits)), expected) << "random run " << run;
  }
  return whole;
}

std::string FieldPart(const std::string& name, const std::string& value) {
  return std::string("--") + kBoundary + "\r\nContent-Disposition: form-data; name=\"" + name +
         "\"\r\n\r\n" + value + "\r\n";
}

std::string FilePart(const std::string& filename, const std::string& type,
                     const std::string& data) {
  return std::string("--") + kBoundary +
         "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename +
         "\"\r\nContent-Type: " + type + "\r\n\r\n" + data + "\r\n";
}

std::string Close() { return std::string("--") + kBoundary + "--\r\n"; }

// Data that looks like the delimiter's beginnings, CRs and dashes everywhere.
std::string TrickyData() {
  return std::string("line one\r\nline two\r\n\r\n--not the boundary\r\n--") +
         std::string(kBoundary).substr(0, 10) + "\r\r\n-\r\n--" +
         std::string(kBoundary).substr(0, std::string(kBoundary).size() - 1) + "X\r\n" +
         std::string("\0binary\xff\0", 9) + "\r";
}

void ExpectInvalid(const Outcome& outcome, const std::string& words) {
  EXPECT_TRUE(outcome.status.IsInvalidArgument()) << outcome.status.ToString();
  EXPECT_NE(outcome.status.message().find(words), std::string::npos)
      << "\"" << outcome.status.message() << "\" should mention \"" << words << "\"";
}

TEST(MultipartBoundaryTest, ReadsQuotedAndUnquotedBoundaries) {
  EXPECT_EQ(*MultipartParser::BoundaryFromContentType("multipart/form-data; boundary=abc123"),
            "abc123");
  EXPECT_EQ(*MultipartParser::BoundaryFromContentType(
                "Multipart/Form-Data ; charset=utf-8; BOUNDARY=\"----x y'()+_,-./:=?\""),
            "----x y'()+_,-./:=?");
  EXPECT_EQ(*MultipartParser::BoundaryFromContentType("multipart/form-data;boundary=----=_Part_0;"),
            "----=_Part_0");
  EXPECT_EQ(*MultipartParser::BoundaryFromContentType("multipart/form-data; boundary=\"" +
                                                      std::string(70, 'b') + "\""),
            std::string(70, 'b'));
}

TEST(MultipartBoundaryTest, RefusesWhatIsNotAValidFormDataBoundary) {
  struct Case {
    std::string content_type;
    std::string words;
  };
  for (const Case& c : std::vector<Case>{
           {"application/json", "not multipart/form-data"},
           {"multipart/mixed; boundary=abc", "not multipart/form-data"},
           {"", "not multipart/form-data"},
           {"multipart/form-data", "no boundary"},
           {"multipart/form-data; charset=utf-8", "no boundary"},
           {"multipart/form-data; boundary=\"\"", "1 to 70"},
           {"multipart/form-data; boundary=" + std::string(71, 'b'), "1 to 70"},
           {"multipart/form-data; boundary=\"abc ", "no closing quote"},
           {"multipart/form-data; boundary=\"abc \"", "ends with a space"},
           {"multipart/form-data; boundary=\"a\rb\"", "does not allow"},
           {"multipart/form-data; boundary=a;boundary=b", "repeated"},
           {"multipart/form-data; boundary=abc junk", "expected ';'"},
           {"multipart/form-data; boundary", "name=value"},
           {"multipart/form-data; boundary=", "empty value"},
       }) {
    Result<std::string> boundary = MultipartParser::BoundaryFromContentType(c.content_type);
    ASSERT_FALSE(boundary.ok()) << c.content_type;
    EXPECT_TRUE(boundary.status().IsInvalidArgument());
    EXPECT_NE(boundary.status().message().find(c.words), std::string::npos)
        << boundary.status().message() << " for " << c.content_type;
  }
}

TEST(MultipartParserTest, ParsesFieldsAndFilesInAnyChunking) {
  std::string tricky = TrickyData();
  std::string body = FieldPart("purpose", "input") +
                     FilePart("data.csv", "text/csv", "a,b\r\n1,2") +
                     FilePart("blob.bin", "application/octet-stream", tricky) + Close();
  Outcome outcome = ParseEveryWay(body);
  ASSERT_OK(outcome.status);
  ASSERT_EQ(outcome.parts.size(), 3u);
  EXPECT_EQ(outcome.parts[0].headers.name, "purpose");
  EXPECT_FALSE(outcome.parts[0].headers.has_filename);
  EXPECT_EQ(outcome.parts[0].headers.content_type, "");
  EXPECT_EQ(outcome.parts[0].data, "input");
  EXPECT_EQ(outcome.parts[1].headers.name, "file");
  EXPECT_TRUE(outcome.parts[1].headers.has_filename);
  EXPECT_EQ(outcome.parts[1].headers.filename, "data.csv");
  EXPECT_EQ(outcome.parts[1].headers.content_type, "text/csv");
  EXPECT_EQ(outcome.parts[1].data, "a,b\r\n1,2");
  EXPECT_EQ(outcome.parts[2].data, tricky);
  for (const Part& part : outcome.parts) EXPECT_TRUE(part.ended);
}

TEST(MultipartParserTest, IgnoresPreambleAndEpilogue) {
  std::string body = "This is a preamble.\r\nIt has --dashes and " + std::string(kBoundary) +
                     " in it.\r\n" + FieldPart("a", "1") + Close() + "epilogue, even with --" +
                     kBoundary + "\r\n";
  Outcome outcome = ParseEveryWay(body);
  ASSERT_OK(outcome.status);
  ASSERT_EQ(outcome.parts.size(), 1u);
  EXPECT_EQ(outcome.parts[0].data, "1");
}

TEST(MultipartParserTest, AcceptsAClosingBoundaryWithoutItsLineBreak) {
  std::string body = FieldPart("a", "1") + "--" + kBoundary + "--";
  Outcome outcome = ParseEveryWay(body);
  ASSERT_OK(outcome.status);
  EXPECT_EQ(outcome.parts.size(), 1u);
}

TEST(MultipartParserTest, AcceptsTransportPaddingAfterBoundaries) {
  std::string body = std::string("--") + kBoundary +
                     " \t \r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--" +
                     kBoundary + "-- \r\n";
  Outcome outcome = ParseEveryWay(body);
  ASSERT_OK(outcome.status);
  ASSERT_EQ(outcome.parts.size(), 1u);
  EXPECT_EQ(outcome.parts[0].data, "1");
}

TEST(MultipartParserTest, EmptyPartsAndEmptyFiles) {
  std::string body = FieldPart("empty", "") + FilePart("", "application/octet-stream", "") +
                     FieldPart("crlf", "\r\n") + Close();
  Outcome outcome = ParseEveryWay(body);
  ASSERT_OK(outcome.status);
  ASSERT_EQ(outcome.parts.size(), 3u);
  EXPECT_EQ(outcome.parts[0].data, "");
  EXPECT_TRUE(outcome.parts[1].headers.has_filename);  // The browser's "no file chosen".
  EXPECT_EQ(outcome.parts[1].headers.filename, "");
  EXPECT_EQ(outcome.parts[2].data, "\r\n");
}

TEST(MultipartParserTest, AcceptsABodyWithNoPartsAtAll) {
  Outcome outcome = ParseEveryWay(Close());
  EXPECT_OK(outcome.status);
  EXPECT_TRUE(outcome.parts.empty());
}

TEST(MultipartParserTest, UnescapesQuotedFilenames) {
  std::string body = std::string("--") + kBoundary +
                     "\r\nContent-Disposition: form-data; name=\"f\"; "
                     "filename=\"say \\\"hi\\\" \\\\ then; bye.txt\"\r\n\r\nx\r\n" +
                     Close();
  Outcome outcome = ParseEveryWay(body);
  ASSERT_OK(outcome.status);
  ASSERT_EQ(outcome.parts.size(), 1u);
  EXPECT_EQ(outcome.parts[0].headers.filename, "say \"hi\" \\ then; bye.txt");
}

TEST(MultipartParserTest, HeaderNamesAndParametersAreCaseInsensitiveAndMayBeUnquoted) {
  std::string body = std::string("--") + kBoundary +
                     "\r\ncontent-disposition:FORM-DATA;NAME=upload;  FileName = report.csv ;\r\n"
                     "CONTENT-TYPE:   text/csv  \r\nX-Other: ignored\r\n\r\nx\r\n" +
                     Close();
  Outcome outcome = ParseEveryWay(body);
  ASSERT_OK(outcome.status);
  ASSERT_EQ(outcome.parts.size(), 1u);
  EXPECT_EQ(outcome.parts[0].headers.name, "upload");
  EXPECT_EQ(outcome.parts[0].headers.filename, "report.csv");
  EXPECT_EQ(outcome.parts[0].headers.content_type, "text/csv");
}

TEST(MultipartParserTest, FoldedHeaderLinesAreJoined) {
  std::string body = std::string("--") + kBoundary +
                     "\r\nContent-Disposition: form-data;\r\n\tname=\"folded\"\r\n\r\nx\r\n" +
                     Close();
  Outcome outcome = ParseEveryWay(body);
  ASSERT_OK(outcome.status);
  EXPECT_EQ(outcome.parts[0].headers.name, "folded");
}

std::string PartWithDisposition(const std::string& disposition) {
  return std::string("--") + kBoundary + "\r\nContent-Disposition: " + disposition +
         "\r\n\r\nx\r\n" + Close();
}

TEST(MultipartParserTest, DecodesExtendedFilenames) {
  Outcome utf8 =
      ParseEveryWay(PartWithDisposition("form-data; name=\"f\"; filename=\"fallback.csv\"; "
                                        "filename*=UTF-8''%E2%82%AC%20rates%2Bfees.csv"));
  ASSERT_OK(utf8.status);
  EXPECT_EQ(utf8.parts[0].headers.filename, "\xe2\x82\xac rates+fees.csv");
  EXPECT_TRUE(utf8.parts[0].headers.has_filename);

  Outcome latin1 = ParseEveryWay(
      PartWithDisposition("form-data; name=\"f\"; filename*=iso-8859-1'fr'caf%E9.txt"));
  ASSERT_OK(latin1.status);
  EXPECT_EQ(latin1.parts[0].headers.filename, "caf\xc3\xa9.txt");
}

TEST(MultipartParserTest, RefusesMalformedDispositions) {
  struct Case {
    std::string disposition;
    std::string words;
  };
  for (const Case& c : std::vector<Case>{
           {"attachment; name=\"a\"", "not form-data"},
           {"form-data", "no name parameter"},
           {"form-data; filename=\"a.csv\"", "no name parameter"},
           {"form-data; name=\"a\"; name=\"b\"", "repeated"},
           {"form-data; name=\"a", "no closing quote"},
           {"form-data; name=\"a\" junk", "expected ';'"},
           {"form-data; name=\"a\"; filename*=UTF-16''%00a", "only UTF-8 and ISO-8859-1"},
           {"form-data; name=\"a\"; filename*=UTF-8''bad%zzescape", "malformed percent escape"},
           {"form-data; name=\"a\"; filename*=UTF-8''cut%E", "malformed percent escape"},
           {"form-data; name=\"a\"; filename*=no-quotes", "charset'language'value"},
           {"form-data; name=\"a\"; filename*=UTF-8''%C3%28.csv", "not valid UTF-8"},
           {"form-data; name=\"a\"; filename*=UTF-8''%ED%A0%80.csv", "not valid UTF-8"},
           {"form-data; name=\"a\"; filename*=UTF-8''%C0%AF.csv", "not valid UTF-8"},
           {"form-data; name=\"a\"; filename*=UTF-8''nul%00.csv", "control character"},
           {"form-data; name=\"a\"; filename*=UTF-8''new%0Aline.csv", "control character"},
           {"form-data; name=\"a\"; filename=\"raw\xff.csv\"", "not valid UTF-8"},
       }) {
    Outcome outcome = ParseEveryWay(PartWithDisposition(c.disposition));
    ExpectInvalid(outcome, c.words);
    EXPECT_TRUE(outcome.parts.empty()) << c.disposition;
  }
}

TEST(MultipartParserTest, RefusesMalformedHeaders) {
  struct Case {
    std::string headers;  // Between the boundary line and the empty line.
    std::string words;
  };
  for (const Case& c : std::vector<Case>{
           {"Content-Type: text/plain\r\n", "no Content-Disposition"},
           {"", "no Content-Disposition"},
           {"Content-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b\r\n",
            "two Content-Disposition"},
           {"Content-Disposition: form-data; name=a\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n",
            "two Content-Type"},
           {"no colon here\r\n", "not \"Name: value\""},
           {": empty name\r\n", "not \"Name: value\""},
           {"Bad Name: x\r\n", "not \"Name: value\""},
           {" Content-Disposition: form-data; name=a\r\n", "starts with a space"},
           {"Content-Disposition: form-data; name=\"a\x01\"\r\n", "control character"},
           {"Content-Disposition: form-data; name=a\rX: y\r\n", "control character"},
           {"Content-Disposition: form-data; name=a\nX: y\r\n", "bare LF"},
       }) {
    std::string body = std::string("--") + kBoundary + "\r\n" + c.headers + "\r\nx\r\n" + Close();
    ExpectInvalid(ParseEveryWay(body), c.words);
  }
}

TEST(MultipartParserTest, RefusesBrokenBoundaryLines) {
  struct Case {
    std::string body;
    std::string words;
  };
  std::string b = kBoundary;
  std::string part = "Content-Disposition: form-data; name=a\r\n\r\nx";
  for (const Case& c : std::vector<Case>{
           {"--" + b + "X\r\n" + part + "\r\n--" + b + "--", "followed by \"X\""},
           {"--" + b + "\n" + part + "\r\n--" + b + "--", "followed by \"\\x0a\""},
           {"--" + b + "\r" + part + "\r\n--" + b + "--", "CR not followed by LF"},
           {"--" + b + "  x\r\n" + part + "\r\n--" + b + "--", "after the boundary"},
           {"--" + b + "\r\n" + part + "\r\n--" + b + "-x", "instead of \"--\""},
           {"--" + b + "\r\n" + part + "\r\n--" + b + "andmore\r\n", "also in the content"},
       }) {
    ExpectInvalid(ParseEveryWay(c.body), c.words);
  }
}

TEST(MultipartParserTest, EveryTruncationFailsAtFinishWithTheSameMessage) {
  std::string body = FieldPart("a", "1") + FilePart("x.txt", "text/plain", TrickyData()) + Close();
  size_t complete = body.size() - 2;  // The closing boundary's own CRLF is optional.
  for (size_t size = 0; size < body.size(); ++size) {
    Outcome outcome = ParseWhole(std::string_view(body).substr(0, size));
    if (size >= complete) {
      EXPECT_TRUE(outcome.status.ok()) << size << ": " << outcome.status.ToString();
      continue;
    }
    EXPECT_TRUE(outcome.status.IsInvalidArgument()) << size << ": " << outcome.status.ToString();
    EXPECT_EQ(
        outcome.status.message().rfind("the multipart body ended before its closing boundary", 0),
        0u)
        << size << ": " << outcome.status.message();
  }
}

TEST(MultipartParserTest, ABodyWithoutTheBoundarySaysSo) {
  std::string body =
      "--someOtherBoundary\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n"
      "--someOtherBoundary--\r\n";
  Outcome outcome = ParseEveryWay(body);
  ExpectInvalid(outcome, "no boundary line was found");
  ExpectInvalid(ParseEveryWay(""), "ended before its closing boundary");
}

TEST(MultipartParserTest, HeaderBytesAreLimited) {
  MultipartLimits limits;
  limits.max_header_bytes = 100;
  std::string disposition = "Content-Disposition: form-data; name=a\r\n";  // 40 bytes.
  auto body_with_header_bytes = [&](size_t bytes) {
    std::string pad = "X: " + std::string(bytes - disposition.size() - 5, 'p') + "\r\n";
    return std::string("--") + kBoundary + "\r\n" + disposition + pad + "\r\nx\r\n" + Close();
  };
  EXPECT_OK(ParseEveryWay(body_with_header_bytes(100), limits).status);
  Outcome over = ParseEveryWay(body_with_header_bytes(101), limits);
  EXPECT_TRUE(over.status.IsResourceExhausted()) << over.status.ToString();
  EXPECT_NE(over.status.message().find("limit of 100 bytes"), std::string::npos);

  // Endless header lines are refused once past the limit, not buffered.
  std::string endless = std::string("--") + kBoundary + "\r\n" + disposition;
  Outcome never_ending = ParseWith(
      endless + std::string(1 << 20, 'h'), [] { return 4096; }, limits);
  EXPECT_TRUE(never_ending.status.IsResourceExhausted());
}

TEST(MultipartParserTest, PartCountIsLimited) {
  MultipartLimits limits;
  limits.max_parts = 3;
  std::string three = FieldPart("a", "1") + FieldPart("b", "2") + FieldPart("c", "3");
  EXPECT_OK(ParseEveryWay(three + Close(), limits).status);
  Outcome four = ParseEveryWay(three + FieldPart("d", "4") + Close(), limits);
  EXPECT_TRUE(four.status.IsResourceExhausted()) << four.status.ToString();
  EXPECT_NE(four.status.message().find("more than 3 parts"), std::string::npos);
  EXPECT_EQ(four.parts.size(), 3u);
}

TEST(MultipartParserTest, DeliversDataAsItArrivesWithoutHoldingParts) {
  std::string data(4 << 20, 'd');
  for (size_t i = 0; i < data.size(); i += 997) data[i] = '\r';  // Partial matches galore.
  std::string body = FilePart("big.bin", "application/octet-stream", data) + Close();
  constexpr size_t kChunk = 64 * 1024;

  Outcome outcome;
  MultipartParser parser(kBoundary, Recorder(&outcome));
  size_t fed = 0;
  while (fed < body.size()) {
    size_t size = std::min(kChunk, body.size() - fed);
    ASSERT_OK(parser.Feed(std::string_view(body).substr(fed, size)));
    fed += size;
    if (!outcome.parts.empty() && fed < body.size() - 100) {
      size_t header_bytes = body.find("\r\n\r\n") + 4;
      // All of the part fed so far has been passed on, but for a possible delimiter's start.
      EXPECT_GE(outcome.parts[0].data.size() + std::string(kBoundary).size() + 4,
                fed - header_bytes);
    }
  }
  ASSERT_OK(parser.Finish());
  EXPECT_EQ(outcome.parts[0].data, data);
  EXPECT_LE(outcome.largest_piece, kChunk);
}

TEST(MultipartParserTest, ACallbacksErrorStopsTheParseAndSticks) {
  MultipartCallbacks callbacks;
  int data_calls = 0;
  callbacks.on_part_data = [&](std::string_view) {
    ++data_calls;
    return Status::ResourceExhausted("disk full");
  };
  MultipartParser parser(kBoundary, callbacks);
  std::string body = FieldPart("a", "1") + FieldPart("b", "2") + Close();
  Status status = parser.Feed(body);
  EXPECT_TRUE(status.IsResourceExhausted());
  EXPECT_EQ(status.message(), "disk full");
  EXPECT_EQ(data_calls, 1);
  EXPECT_EQ(parser.Feed("more").message(), "disk full");
  EXPECT_EQ(parser.Finish().message(), "disk full");
  EXPECT_EQ(data_calls, 1);

  MultipartCallbacks refuse_part;
  refuse_part.on_part_begin = [](const PartHeaders& headers) {
    return Status::InvalidArgument("unexpected field " + headers.name);
  };
  MultipartParser refusing(kBoundary, refuse_part);
  EXPECT_EQ(refusing.Feed(body).message(), "unexpected field a");
}

TEST(MultipartParserTest, WorksWithoutCallbacks) {
  MultipartParser parser(kBoundary, {});
  EXPECT_OK(parser.Feed(FieldPart("a", "1") + Close()));
  EXPECT_OK(parser.Finish());
}

TEST(MultipartParserTest, BoundariesOfOneCharacterAndOfSpecialCharactersWork) {
  for (std::string boundary :
       {std::string("x"), std::string("'()+_,-./:=? z"), std::string(70, '-')}) {
    std::string body = "--" + boundary + "\r\nContent-Disposition: form-data; name=a\r\n\r\n" +
                       "-" + boundary + "\r\n-\r\n--" + boundary.substr(1) + "\r\n--" + boundary +
                       "--";
    Outcome outcome = ParseWith(
        body, [] { return 1; }, {}, boundary);
    ASSERT_TRUE(outcome.status.ok()) << boundary << ": " << outcome.status.ToString();
    ASSERT_EQ(outcome.parts.size(), 1u);
    EXPECT_EQ(outcome.parts[0].data, "-" + boundary + "\r\n-\r\n--" + boundary.substr(1))
        << boundary;
  }
}

// Random bytes and random damage to a valid body: the parser must never crash, hang or call back
// out of order (Recorder checks the order), and chunking must never change the outcome.
TEST(MultipartParserTest, HostileBodiesNeverCrashAndChunkingNeverMatters) {
  std::mt19937 generator(20240601);
  std::string valid =
      FieldPart("purpose", "input") + FilePart("x.csv", "text/csv", TrickyData()) + Close();
  const std::string alphabet = std::string("\r\n-\"; =:\\\0x", 11) + kBoundary;
  MultipartLimits limits;
  limits.max_parts = 4;
  limits.max_header_bytes = 256;
  int accepted = 0;
  int refused = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string body;
    if (round % 3 == 0) {
      body.resize(generator() % 512);
      for (char& c : body) c = static_cast<char>(generator() & 0xff);
    } else {
      body = valid;
      int edits = 1 + static_cast<int>(generator() % 8);
      for (int e = 0; e < edits && !body.empty(); ++e) {
        size_t at = generator() % body.size();
        char c = generator() % 2 ? alphabet[generator() % alphabet.size()]
                                 : static_cast<char>(generator() & 0xff);
        switch (generator() % 4) {
          case 0:
            body[at] = c;
            break;
          case 1:
            body.insert(at, 1, c);
            break;
          case 2:
            body.erase(at, 1 + generator() % 16);
            break;
          case 3:
            body.insert(at, body.substr(generator() % body.size(), generator() % 64));
            break;
        }
      }
    }
    Outcome whole = ParseWhole(body, limits);
    ++(whole.status.ok() ? accepted : refused);
    EXPECT_LE(whole.parts.size(), limits.max_parts);
    if (!whole.status.ok()) {
      EXPECT_FALSE(whole.status.message().empty());
    }
    size_t most = 1 + generator() % 32;
    Outcome chunked = ParseWith(
        body, [&] { return 1 + generator() % most; }, limits);
    ASSERT_EQ(Describe(chunked), Describe(whole)) << "round " << round;
  }
  // Both ways out are exercised: the damage is not always fatal, nor always harmless.
  EXPECT_GT(accepted, 100);
  EXPECT_GT(refused, 1000);
}

}  // namespace
}  // namespace pycell::files
