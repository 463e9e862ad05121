# Warnings for every pycell target, in one place. PYCELL_WERROR turns them into errors (CI does).
function(pycell_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                                           -Wno-missing-field-initializers)
  if(PYCELL_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
