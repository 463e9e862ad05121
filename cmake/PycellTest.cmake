# pycell_test(name [ONE_PROCESS] sources...): a GoogleTest binary registered with CTest. Every src/
# folder adds its own tests with it (from its CMakeLists.txt) when PYCELL_BUILD_TESTS is on.
#
# By default each test is its own CTest test (gtest_discover_tests), run in its own process. With
# ONE_PROCESS the whole binary is one CTest test named `name`, run once: for binaries whose tests
# share something costly to start per process (store_test starts a PostgreSQL server once).
find_package(GTest REQUIRED)
include(GoogleTest)

function(pycell_test name)
  cmake_parse_arguments(PARSE_ARGV 1 PYCELL_TEST "ONE_PROCESS" "" "")
  add_executable(${name} ${PYCELL_TEST_UNPARSED_ARGUMENTS})
  # The test binary doubles as the zygote of the sessions it starts (see zygote_main.h).
  target_link_libraries(${name} PRIVATE pycell_session GTest::gtest
                        nlohmann_json::nlohmann_json)
  target_sources(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/test_main.cc)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  pycell_warnings(${name})
  if(PYCELL_TEST_ONE_PROCESS)
    add_test(NAME ${name} COMMAND ${name})
  else()
    gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60)
  endif()
endfunction()
