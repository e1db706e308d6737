# Compiles SRC with CXX and succeeds only if compilation fails with a message matching the regex
# given on SRC's first line as `// expect: <regex>`.
file(STRINGS ${SRC} first LIMIT_COUNT 1)
string(REGEX REPLACE "^// expect: " "" expect "${first}")
execute_process(COMMAND ${CXX} -std=c++20 -fsyntax-only -I${INCLUDE} ${SRC}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "${SRC} compiled, but it must not")
endif()
if(NOT out MATCHES "${expect}")
  message(FATAL_ERROR "${SRC} failed to compile, but not with a message matching '${expect}':\n${out}")
endif()
message("failed to compile as expected, with a message matching '${expect}'")
