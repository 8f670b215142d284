# web.cmake - included by manager/CMakeLists.txt: embeds manager/web/* into mgo_manager
# (generated web_assets.c, see embed.cmake and manager/src/web.c).
file(GLOB MGO_WEB_FILES CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_LIST_DIR}/*.html ${CMAKE_CURRENT_LIST_DIR}/*.js ${CMAKE_CURRENT_LIST_DIR}/*.css
  ${CMAKE_CURRENT_LIST_DIR}/*.svg ${CMAKE_CURRENT_LIST_DIR}/*.png ${CMAKE_CURRENT_LIST_DIR}/*.json)
set(MGO_WEB_ASSETS_C ${CMAKE_CURRENT_BINARY_DIR}/web_assets.c)
add_custom_command(OUTPUT ${MGO_WEB_ASSETS_C}
  COMMAND ${CMAKE_COMMAND} -DWEB_DIR=${CMAKE_CURRENT_LIST_DIR} -DOUT=${MGO_WEB_ASSETS_C}
          -P ${CMAKE_CURRENT_LIST_DIR}/embed.cmake
  DEPENDS ${MGO_WEB_FILES} ${CMAKE_CURRENT_LIST_DIR}/embed.cmake
  COMMENT "Embedding the web front end (manager/web)"
  VERBATIM)
target_sources(mgo_manager PRIVATE ${MGO_WEB_ASSETS_C})
target_include_directories(mgo_manager PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
