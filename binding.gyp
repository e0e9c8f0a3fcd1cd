{
  # node-gyp build of the CPU sources (CMakeLists.txt is the primary build; CI builds both so this
  # file stays honest). NAPI_VERSION must match package.json "binary.napi_versions" and CMake.
  "variables": {
    "cmae_napi_version": "8"
  },
  "targets": [
    {
      "target_name": "cmae_avx512",
      "type": "static_library",
      "sources": ["<!@(node scripts/list-sources.cjs avx512)"],
      "include_dirs": ["native"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fopenmp", "-fexceptions", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512bf16", "-mavx2", "-mfma", "-mf16c"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"]
    },
    {
      "target_name": "cmae",
      "sources": ["<!@(node scripts/list-sources.cjs core)", "<!@(node scripts/list-sources.cjs napi)"],
      "include_dirs": ["native", "<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": ["cmae_avx512", "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all"],
      "defines": ["NAPI_VERSION=<(cmae_napi_version)", "NODE_ADDON_API_DISABLE_DEPRECATED", "CMAE_BUILD_TYPE=\"Release\"", "CMAE_BUILD_SYSTEM=\"node-gyp\""],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fopenmp", "-fexceptions", "-mavx2", "-mfma", "-mf16c"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "ldflags": ["-fopenmp"]
    }
  ]
}
