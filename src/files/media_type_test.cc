// Uploads are judged by name and by content. Every sample is real bytes kept in this file (small
// but genuine files, made once and pasted as hex), so libmagic sees what it would see in an
// upload.
#include "files/media_type.h"

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace pycell::files {
namespace {

std::string FromHex(std::string_view hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return bytes;
}

// A 1x1 greyscale PNG.
const std::string kPng = FromHex(
    "89504e470d0a1a0a0000000d49484452000000010000000108000000003a7e9b550000000a49444154789c6360"
    "00000002000148afa4710000000049454e44ae426082");
const std::string kJpeg("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", 20);
const std::string kGif("GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14);
const std::string kPdf = "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n";
// zipfile with one stored member, a.txt.
const std::string kZip = FromHex(
    "504b030414000000000041bc7b5dac2a93d8020000000200000005000000612e7478746869504b010214031400"
    "0000000041bc7b5dac2a93d80200000002000000050000000000000000000000800100000000612e747874504b"
    "0506000000000100010033000000250000000000");
const std::string kEmptyZip = std::string("PK\x05\x06", 4) + std::string(18, '\0');
// The skeleton of an xlsx ([Content_Types].xml, _rels/.rels, xl/workbook.xml), which libmagic
// names as the OOXML spreadsheet type rather than plain zip.
const std::string kXlsx = FromHex(
    "504b0304140000000000a0bd7b5de6b8746b6200000062000000130000005b436f6e74656e745f54797065735d"
    "2e786d6c3c3f786d6c2076657273696f6e3d22312e30223f3e3c547970657320786d6c6e733d22687474703a2f"
    "2f736368656d61732e6f70656e786d6c666f726d6174732e6f72672f7061636b6167652f323030362f636f6e74"
    "656e742d7479706573222f3e504b0304140000000000a0bd7b5d82d91cd510000000100000000b0000005f7265"
    "6c732f2e72656c733c52656c6174696f6e73686970732f3e504b0304140000000000a0bd7b5dce9e98130b0000"
    "000b0000000f000000786c2f776f726b626f6f6b2e786d6c3c776f726b626f6f6b2f3e504b0102140314000000"
    "0000a0bd7b5de6b8746b62000000620000001300000000000000000000008001000000005b436f6e74656e745f"
    "54797065735d2e786d6c504b01021403140000000000a0bd7b5d82d91cd510000000100000000b000000000000"
    "00000000008001930000005f72656c732f2e72656c73504b01021403140000000000a0bd7b5dce9e98130b0000"
    "000b0000000f00000000000000000000008001cc000000786c2f776f726b626f6f6b2e786d6c504b0506000000"
    "0003000300b7000000040100000000");
// An OLE2 compound file header, as every .xls and .doc begins.
const std::string kOle =
    std::string("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8) + std::string(16, '\0') +
    std::string("\x3e\x00\x03\x00\xfe\xff\x09\x00", 8) + std::string(480, '\0');
const std::string kParquet =
    std::string("PAR1\x15\x04\x15\x10\x15\x14L\x15\x02\x15\x00\x12", 16) + std::string(24, '\0');
// pickle.dumps({'a': [1, 2, 3]}, protocol=4)
const std::string kPickle = FromHex("80049512000000000000007d948c0161945d94284b014b024b0365732e");
// The start of an x86-64 ELF executable.
const std::string kElf = std::string(
                             "\x7f"
                             "ELF\x02\x01\x01",
                             7) +
                         std::string(9, '\0') + std::string("\x02\x00\x3e\x00\x01\x00\x00\x00", 8) +
                         std::string(40, '\0');
const std::string kCsv = "name,age\nalice,30\nbob,25\n";

// A POSIX tar holding x.txt ("hi"): one header block with a valid checksum, data, end blocks.
std::string Tar() {
  std::string header(512, '\0');
  auto put = [&](size_t at, std::string_view field) { header.replace(at, field.size(), field); };
  put(0, "x.txt");
  put(100, "0000644");
  put(108, "0000000");
  put(116, "0000000");
  put(124, "00000000002");
  put(136, "00000000000");
  put(148, "        ");
  put(156, "0");
  put(257, std::string_view("ustar\0"
                            "00",
                            8));
  unsigned sum = 0;
  for (char c : header) sum += static_cast<unsigned char>(c);
  char checksum[8];
  std::snprintf(checksum, sizeof checksum, "%06o", sum);
  put(148, std::string_view(checksum, 7));
  std::string data = "hi" + std::string(510, '\0');
  return header + data + std::string(1024, '\0');
}

void ExpectAccepted(std::string_view filename, const std::string& head,
                    const std::string& media_type) {
  Result<std::string> type = CheckUploadType(filename, head);
  ASSERT_TRUE(type.ok()) << filename << ": " << type.status().ToString();
  EXPECT_EQ(*type, media_type) << filename;
}

void ExpectRefused(std::string_view filename, const std::string& head, const std::string& words) {
  Result<std::string> type = CheckUploadType(filename, head);
  ASSERT_FALSE(type.ok()) << filename << " was accepted as " << *type;
  EXPECT_TRUE(type.status().IsInvalidArgument());
  EXPECT_NE(type.status().message().find(words), std::string::npos)
      << "\"" << type.status().message() << "\" should mention \"" << words << "\"";
}

TEST(CheckUploadTypeTest, AcceptsTextFormatsWithTheirOwnMediaTypes) {
  ExpectAccepted("data.csv", kCsv, "text/csv");
  ExpectAccepted("1.csv", "1,2,3\n4,5,6\n", "text/csv");  // libmagic calls this text/plain.
  ExpectAccepted("notes.txt", "just some notes\n", "text/plain");
  ExpectAccepted("readme.md", "# Title\n\nSome *text*.\n", "text/markdown");
  ExpectAccepted("config.json", "{\"a\": [1, 2]}\n", "application/json");
  ExpectAccepted("rows.jsonl", "{\"a\":1}\n{\"a\":2}\n", "application/jsonl");
  ExpectAccepted("script.py", "import os\n\nprint(os.getcwd())\n", "text/x-python");
  ExpectAccepted("page.html", "<!DOCTYPE html>\n<html><body>hi</body></html>\n", "text/html");
  ExpectAccepted("data.xml", "<?xml version=\"1.0\"?>\n<root/>\n", "application/xml");
  ExpectAccepted("app.js", "console.log(1);\n", "text/javascript");
  ExpectAccepted("app.ts", "const x: number = 1;\nexport default x;\n", "application/typescript");
  ExpectAccepted("run.sh", "#!/bin/sh\necho hi\n", "application/x-sh");
  ExpectAccepted("main.c", "#include <stdio.h>\nint main(void) { return 0; }\n", "text/x-c");
  ExpectAccepted("main.cpp", "int main() {}\n", "text/x-c++");
  ExpectAccepted("style.css", "body { color: red; }\n", "text/css");
  ExpectAccepted("paper.tex", "\\documentclass{article}\n", "text/x-tex");
  ExpectAccepted("Main.java", "class Main {}\n", "text/x-java");
  ExpectAccepted("app.rb", "puts 1\n", "text/x-ruby");
  ExpectAccepted("main.go", "package main\n", "text/x-go");
  ExpectAccepted("index.php", "<?php echo 1; ?>\n", "text/x-php");
  ExpectAccepted("Program.cs", "class P {}\n", "text/x-csharp");
}

TEST(CheckUploadTypeTest, TextMayBeInAnyCommonEncoding) {
  ExpectAccepted("utf8.txt", "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93\n", "text/plain");
  ExpectAccepted("latin1.csv", "caf\xe9,cr\xe8me\n", "text/csv");
  ExpectAccepted("bom.csv",
                 "\xef\xbb\xbf"
                 "a,b\n1,2\n",
                 "text/csv");
  ExpectAccepted("utf16.csv",
                 std::string("\xff\xfe"
                             "a\0,\0b\0\n\0"
                             "1\0,\0"
                             "2\0\n\0",
                             18),
                 "text/csv");
  // The head is the first 8 KiB: it may end in the middle of a character.
  std::string accents;
  while (accents.size() < 9000) accents += "\xc3\xa9";
  ExpectAccepted("cut.txt", accents.substr(0, 8191), "text/plain");
  ExpectAccepted("empty.txt", "", "text/plain");
}

TEST(CheckUploadTypeTest, AcceptsBinaryFormatsWhoseContentAgrees) {
  ExpectAccepted("chart.png", kPng, "image/png");
  ExpectAccepted("photo.jpg", kJpeg, "image/jpeg");
  ExpectAccepted("photo.jpeg", kJpeg, "image/jpeg");
  ExpectAccepted("anim.gif", kGif, "image/gif");
  ExpectAccepted("paper.pdf", kPdf, "application/pdf");
  ExpectAccepted("bundle.zip", kZip, "application/zip");
  ExpectAccepted("nothing.zip", kEmptyZip, "application/zip");
  ExpectAccepted("archive.tar", Tar(), "application/x-tar");
  ExpectAccepted("old.xls", kOle, "application/vnd.ms-excel");
  ExpectAccepted("old.doc", kOle, "application/msword");
  ExpectAccepted("table.parquet", kParquet, "application/vnd.apache.parquet");
  ExpectAccepted("model.pkl", kPickle, "application/octet-stream");
}

TEST(CheckUploadTypeTest, OfficeFormatsAreZipContainersAndGetTheirOwnType) {
  ExpectAccepted("book.xlsx", kXlsx,
                 "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
  // libmagic says application/zip for most real files; that is a ZIP container too.
  ExpectAccepted("letter.docx", kZip,
                 "application/vnd.openxmlformats-officedocument.wordprocessingml.document");
  ExpectAccepted("slides.pptx", kZip,
                 "application/vnd.openxmlformats-officedocument.presentationml.presentation");
  ExpectAccepted("book.xlsx", kZip,
                 "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
  ExpectRefused("letter.docx", "Dear Sir,\n", "does not look like docx: its content is text/plain");
  ExpectRefused("book.xlsx", kCsv, "does not look like xlsx");
  ExpectRefused("book.xls", kXlsx, "does not look like xls");  // An xlsx is not an OLE file.
}

TEST(CheckUploadTypeTest, ExtensionsAreCaseInsensitiveAndPathsAreIgnored) {
  ExpectAccepted("DATA.CSV", kCsv, "text/csv");
  ExpectAccepted("Photo.JpG", kJpeg, "image/jpeg");
  ExpectAccepted("C:\\Users\\me\\data.csv", kCsv, "text/csv");
  ExpectAccepted("some/dir/chart.PNG", kPng, "image/png");
}

TEST(CheckUploadTypeTest, RefusesExtensionsNotInTheList) {
  Result<std::string> type = CheckUploadType("setup.exe", "MZ");
  ASSERT_FALSE(type.ok());
  EXPECT_TRUE(type.status().IsInvalidArgument());
  EXPECT_EQ(type.status().message().rfind(
                "file type \".exe\" is not accepted; accepted types: c, cc, cpp, cs, css, csv, "
                "doc, docx, gif,",
                0),
            0u)
      << type.status().message();
  for (std::string_view accepted : {"parquet", "xls", "xlsx", "pkl", "zip", "tar"}) {
    EXPECT_NE(type.status().message().find(accepted), std::string::npos) << accepted;
  }
  ExpectRefused("archive.tar.gz", "\x1f\x8b", "file type \".gz\" is not accepted");
  ExpectRefused("chart.svg", "<svg/>", "file type \".svg\" is not accepted");  // Output only.
  ExpectRefused("README", "hello\n", "\"README\" has no file extension; accepted types: c, ");
  ExpectRefused(".bashrc", "export A=1\n", "has no file extension");
  ExpectRefused("trailing.", "x", "has no file extension");
  ExpectRefused("", "x", "has no file extension");
}

TEST(CheckUploadTypeTest, RefusesContentThatDisagreesWithTheName) {
  ExpectRefused("report.csv", kElf,
                "\"report.csv\" does not look like csv: its content is application/x-executable");
  ExpectRefused("notes.txt", std::string("hello\0world\n", 12), "does not look like txt");
  // No NUL, but control bytes no text encoding has: libmagic's charset analysis says binary.
  ExpectRefused("notes.txt", "\x01\x02\x03\x04\x05\x06\x07\x0e\x0f\x10\x11 binary",
                "does not look like txt: its content is application/octet-stream");
  ExpectRefused("data.json", kPng, "does not look like json: its content is image/png");
  ExpectRefused("chart.png", "not an image\n", "does not look like png: its content is text/plain");
  ExpectRefused("chart.png", kJpeg, "its content is image/jpeg");
  ExpectRefused("photo.jpg", kPng, "its content is image/png");
  ExpectRefused("anim.gif", kPdf, "its content is application/pdf");
  ExpectRefused("paper.pdf", kZip, "its content is application/zip");
  ExpectRefused("bundle.zip", kCsv, "does not look like zip");
  ExpectRefused("archive.tar", kCsv, "does not look like tar");
  ExpectRefused("old.xls", kCsv, "does not look like xls");
  ExpectRefused("table.parquet", kCsv, "does not look like parquet");
  ExpectRefused("table.parquet", "PAR2" + kCsv, "does not look like parquet");
  ExpectRefused("model.pkl", kCsv, "does not look like pkl");
  ExpectRefused("model.pkl", kElf,
                "does not look like pkl: its content is application/x-executable");
  ExpectRefused("chart.png", "", "does not look like png: its content is empty");
}

TEST(CheckUploadTypeTest, MessagesQuoteHostileNamesSafely) {
  std::string name = "evil\x1b[31m\"\n" + std::string(300, 'a') + ".csv";
  Result<std::string> type = CheckUploadType(name, kElf);
  ASSERT_FALSE(type.ok());
  const std::string& message = type.status().message();
  EXPECT_EQ(message.find('\x1b'), std::string::npos);
  EXPECT_EQ(message.find('\n'), std::string::npos);
  EXPECT_NE(message.find("evil\\x1b[31m\\x22\\x0a"), std::string::npos) << message;
  EXPECT_LT(message.size(), 250u);
  EXPECT_NE(message.find("...\" does not look like csv"), std::string::npos) << message;
}

TEST(GuessMediaTypeTest, TheNameDecidesWhenTheContentAgrees) {
  EXPECT_EQ(GuessMediaType("chart.png", kPng), "image/png");
  EXPECT_EQ(GuessMediaType("out.csv", kCsv), "text/csv");
  EXPECT_EQ(GuessMediaType("out.CSV", ""), "text/csv");
  EXPECT_EQ(GuessMediaType("book.xlsx", kZip),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
  EXPECT_EQ(GuessMediaType("t.parquet", kParquet), "application/vnd.apache.parquet");
  EXPECT_EQ(GuessMediaType("plot.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n"),
            "image/svg+xml");
  EXPECT_EQ(GuessMediaType("data.gz", "\x1f\x8b\x08"), "application/gzip");
}

TEST(GuessMediaTypeTest, ContentDecidesWhenTheNameLiesOrSaysNothing) {
  EXPECT_EQ(GuessMediaType("chart", kPng), "image/png");
  EXPECT_EQ(GuessMediaType("fake.png", "just text\n"), "text/plain");
  EXPECT_EQ(GuessMediaType("report.csv", kElf), "application/x-executable");
  EXPECT_EQ(GuessMediaType("output.weird", kPdf), "application/pdf");
  EXPECT_EQ(GuessMediaType("noise", std::string("\x01\x02\x03\x00\xff\xfe\x00", 7)),
            "application/octet-stream");
  EXPECT_EQ(GuessMediaType("empty", ""), "application/octet-stream");
  EXPECT_EQ(GuessMediaType("empty.png", ""), "application/octet-stream");
}

TEST(CheckUploadTypeTest, IsSafeToCallFromManyThreads) {
  std::vector<std::thread> threads;
  std::vector<int> mistakes(8, 0);
  for (size_t t = 0; t < mistakes.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        Result<std::string> png = CheckUploadType("a.png", kPng);
        Result<std::string> csv = CheckUploadType("a.csv", kElf);
        if (!png.ok() || *png != "image/png" || csv.ok() ||
            GuessMediaType("x", kPdf) != "application/pdf") {
          ++mistakes[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int count : mistakes) EXPECT_EQ(count, 0);
}

}  // namespace
}  // namespace pycell::files
