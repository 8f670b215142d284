# web.cmake - included by manager/CMakeLists.txt: embeds manager/web/* into mgo_manager
# (generated web_assets.c, see embed.cmake and manager/src/web.c).
file(GLOB MGO_WEB_FILES CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_LIST_DIR}/*.html ${CMAKE_CURRENT_LIST_DIR}/*.js ${CMAKE_CURRENT_LIST_DIR}/*.css
  ${CMAKE_CURRENT_LIST_DIR}/*.svg ${CMAKE_CURRENT_LIST_DIR}/*.png ${CMAKE_CURRENT_LIST_DIR}/*.json)
# Chart.js (the fleet overview's charts) from Debian's libjs-chart.js (scripts/setup.sh),
# embedded too and served at /vendor/chart.min.js: the browser fetches nothing elsewhere.
find_file(MGO_CHARTJS chart.min.js PATHS /usr/share/javascript/chart.js NO_DEFAULT_PATH
  DOC "Chart.js 3 UMD build (Debian: libjs-chart.js)")
if(NOT MGO_CHARTJS)
  message(FATAL_ERROR "chart.min.js not found: install libjs-chart.js (bash scripts/setup.sh) "
                      "or pass -DMGO_CHARTJS=/path/to/chart.min.js")
endif()
get_filename_component(MGO_CHARTJS_REAL ${MGO_CHARTJS} REALPATH)
set(MGO_WEB_ASSETS_C ${CMAKE_CURRENT_BINARY_DIR}/web_assets.c)
add_custom_command(OUTPUT ${MGO_WEB_ASSETS_C}
  COMMAND ${CMAKE_COMMAND} -DWEB_DIR=${CMAKE_CURRENT_LIST_DIR} -DOUT=${MGO_WEB_ASSETS_C}
          -DVENDOR=/vendor/chart.min.js=${MGO_CHARTJS_REAL}
          -P ${CMAKE_CURRENT_LIST_DIR}/embed.cmake
  DEPENDS ${MGO_WEB_FILES} ${MGO_CHARTJS_REAL} ${CMAKE_CURRENT_LIST_DIR}/embed.cmake
  COMMENT "Embedding the web front end (manager/web)"
  VERBATIM)
target_sources(mgo_manager PRIVATE ${MGO_WEB_ASSETS_C})
target_include_directories(mgo_manager PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
