# hcl_embed_cl(OUT_C VAR FILE): generate OUT_C defining `const char VAR[]`
# with the text of FILE, rebuilt when FILE changes.
function(hcl_embed_cl out_c var file)
  add_custom_command(
    OUTPUT ${out_c}
    COMMAND ${CMAKE_COMMAND} -DIN=${file} -DOUT=${out_c} -DVAR=${var}
            -P ${PROJECT_SOURCE_DIR}/cmake/embed_file.cmake
    DEPENDS ${file} ${PROJECT_SOURCE_DIR}/cmake/embed_file.cmake
    COMMENT "Embedding ${file}")
endfunction()
