# cmake -DINPUT=file -DOUTPUT=header -DNAME=kSymbol -P EmbedText.cmake
# Writes a header holding the file's text as `inline constexpr char NAME[]`.
file(READ "${INPUT}" content)
set(delimiter "PYCELL_EMBED")
file(WRITE "${OUTPUT}" "// Generated from ${INPUT}; do not edit.\n#pragma once\n"
     "inline constexpr char ${NAME}[] = R\"${delimiter}(${content})${delimiter}\";\n")
