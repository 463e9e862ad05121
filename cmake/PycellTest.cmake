# pycell_test(name sources...): a GoogleTest binary registered with CTest. Every src/ folder adds
# its own tests with it (from its CMakeLists.txt) when PYCELL_BUILD_TESTS is on.
find_package(GTest REQUIRED)
include(GoogleTest)

function(pycell_test name)
  add_executable(${name} ${ARGN})
  # The test binary doubles as the zygote of the sessions it starts (see zygote_main.h).
  target_link_libraries(${name} PRIVATE pycell_session GTest::gtest
                        nlohmann_json::nlohmann_json)
  target_sources(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/test_main.cc)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  pycell_warnings(${name})
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60)
endfunction()
