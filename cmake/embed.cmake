# hcl_embed_cl(OUT_C VAR FILE [HEADER...]): generate OUT_C defining
# `const char VAR[]` with the text of each HEADER, then a `#line 1` (so a
# build log's line numbers are FILE's), then FILE; rebuilt when any changes.
function(hcl_embed_cl out_c var file)
  string(REPLACE ";" "|" headers "${ARGN}")
  add_custom_command(
    OUTPUT ${out_c}
    COMMAND ${CMAKE_COMMAND} -DIN=${file} "-DHEADERS=${headers}" -DOUT=${out_c} -DVAR=${var}
            -P ${PROJECT_SOURCE_DIR}/cmake/embed_file.cmake
    DEPENDS ${file} ${ARGN} ${PROJECT_SOURCE_DIR}/cmake/embed_file.cmake
    COMMENT "Embedding ${file}"
    VERBATIM)
endfunction()
