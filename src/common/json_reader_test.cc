#include "common/json_reader.h"

#include <gtest/gtest.h>

#include <string>

#include "common/utf8.h"

namespace pycell {
namespace {

using nlohmann::json;

TEST(JsonReaderTest, ParsesWithinTheLimits) {
  auto parsed = ParseUntrustedJson(R"({"a":[1,2,{"b":"c"}]})");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ((*parsed)["a"][2]["b"], "c");
}

// Issue 16 rows 3 and 4: a million '[' (a display frame) or 100 000 '{"a":' (an MCP body) ended
// the server with a stack overflow. Refused, without recursion, before anything recursive runs.
TEST(JsonReaderTest, RefusesDeepNestingWithoutRecursion) {
  for (size_t depth : {65u, 100000u, 1000000u}) {
    std::string arrays = std::string(depth, '[') + std::string(depth, ']');
    auto parsed = ParseUntrustedJson(arrays, JsonLimits{64u << 20, 64, 1u << 22});
    ASSERT_FALSE(parsed.ok()) << depth;
    EXPECT_NE(parsed.status().message().find("nesting"), std::string::npos);
    std::string objects;
    for (size_t i = 0; i < depth; ++i) objects += R"({"a":)";
    objects += "1" + std::string(depth, '}');
    EXPECT_FALSE(ParseUntrustedJson(objects, JsonLimits{64u << 20, 64, 1u << 22}).ok()) << depth;
  }
  EXPECT_TRUE(ParseUntrustedJson(std::string(64, '[') + std::string(64, ']')).ok());
}

TEST(JsonReaderTest, RefusesTooManyValuesAndTooManyBytes) {
  std::string many = "[";
  for (int i = 0; i < 2000; ++i) many += "0,";
  many += "0]";
  EXPECT_FALSE(ParseUntrustedJson(many, JsonLimits{1u << 20, 8, 1000}).ok());
  EXPECT_TRUE(ParseUntrustedJson(many, JsonLimits{1u << 20, 8, 3000}).ok());
  EXPECT_FALSE(ParseUntrustedJson(many, JsonLimits{100, 8, 3000}).ok());
  EXPECT_FALSE(ParseUntrustedJson("{", {}).ok());
  EXPECT_FALSE(ParseUntrustedJson("", {}).ok());
  EXPECT_FALSE(ParseUntrustedJson("\"\xff\"", {}).ok());  // Not UTF-8.
}

TEST(JsonReaderTest, TypedFieldsNeverThrow) {
  json j = json::parse(R"({"s":"x","i":5,"big":18446744073709551615,"f":1.5,"nan":null,
                          "b":true,"arr":["a","b"],"mixed":["a",1],"o":{}})");
  EXPECT_EQ(*StringField(j, "s", "t"), "x");
  EXPECT_TRUE(StringField(j, "missing", "t").status().IsNotFound());
  EXPECT_TRUE(StringField(j, "i", "t").status().IsInvalidArgument());
  EXPECT_EQ(*IntField(j, "i", 0, 10, "t"), 5);
  EXPECT_TRUE(IntField(j, "i", 6, 10, "t").status().IsInvalidArgument());
  EXPECT_TRUE(IntField(j, "big", 0, INT64_MAX, "t").status().IsInvalidArgument());
  EXPECT_TRUE(IntField(j, "f", 0, 10, "t").status().IsInvalidArgument());
  EXPECT_TRUE(IntField(j, "s", 0, 10, "t").status().IsInvalidArgument());
  EXPECT_EQ(*NumberField(j, "f", 0, 2, "t"), 1.5);
  EXPECT_TRUE(NumberField(j, "nan", 0, 2, "t").status().IsInvalidArgument());
  EXPECT_EQ(**OptionalBoolField(j, "b", "t"), true);
  EXPECT_FALSE(OptionalBoolField(j, "none", "t")->has_value());
  EXPECT_EQ(StringArrayField(j, "arr", 5, "t")->size(), 2u);
  EXPECT_TRUE(StringArrayField(j, "mixed", 5, "t").status().IsInvalidArgument());
  EXPECT_TRUE(StringArrayField(j, "arr", 1, "t").status().IsInvalidArgument());
  EXPECT_TRUE(ObjectField(j, "o", "t").ok());
  EXPECT_TRUE(ObjectField(j, "arr", "t").status().IsInvalidArgument());
  // Not an object at all.
  EXPECT_TRUE(StringField(json::array(), "s", "t").status().IsNotFound());
}

// Issue 16 row 5: a file named "bad\xff.txt" made every JSON dump that held its name throw
// (type_error 316), which ended the server.
TEST(JsonReaderTest, DumpNeverThrowsOnInvalidUtf8) {
  json j = {{"name", std::string("bad\xff.txt")}};
  std::string text;
  EXPECT_NO_THROW(text = DumpJson(j));
  EXPECT_TRUE(IsValidUtf8(text));
}

TEST(Utf8Test, EscapeNonUtf8KeepsValidTextAndEscapesTheRest) {
  EXPECT_EQ(EscapeNonUtf8("plain.csv"), "plain.csv");
  EXPECT_EQ(EscapeNonUtf8("r\xc3\xa9sum\xc3\xa9.txt"), "r\xc3\xa9sum\xc3\xa9.txt");
  EXPECT_EQ(EscapeNonUtf8("bad\xff.txt"), "bad%FF.txt");
  EXPECT_EQ(EscapeNonUtf8("\xc3"), "%C3");                // Truncated sequence.
  EXPECT_EQ(EscapeNonUtf8("\xed\xa0\x80"), "%ED%A0%80");  // A surrogate.
  EXPECT_EQ(EscapeNonUtf8("\xc0\xaf"), "%C0%AF");         // Overlong '/'.
  EXPECT_EQ(EscapeNonUtf8("50%.csv"), "50%.csv");
  for (int b = 0; b < 256; ++b) {
    std::string one(1, static_cast<char>(b));
    EXPECT_TRUE(IsValidUtf8(EscapeNonUtf8(one))) << b;
  }
}

}  // namespace
}  // namespace pycell
