{
  # node-gyp build of the CPU sources (CMakeLists.txt is the primary build; CI builds both so this
  # file stays honest). NAPI_VERSION must match package.json "binary.napi_versions" and CMake.
  # The CPU kernel sources are compiled once per target (native/cpu/target.h): cmae_cpu_portable
  # everywhere, cmae_cpu_avx2 (AVX2 + FMA) and cmae_avx512 on x64 only; the rest has no ISA flags.
  "variables": {
    "cmae_napi_version": "8",
    "cmae_cflags": ["-std=c++17", "-O3", "-fno-math-errno", "-fopenmp", "-fexceptions"]
  },
  "target_defaults": {
    "include_dirs": ["native"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"]
  },
  "targets": [
    {
      "target_name": "cmae_cpu_portable",
      "type": "static_library",
      "sources": ["<!@(node scripts/list-sources.cjs kernels)"],
      "defines": ["CMAE_CPU_TARGET_PORTABLE=1"],
      "cflags_cc": ["<@(cmae_cflags)", "-Wno-psabi"]
    },
    {
      "target_name": "cmae",
      "sources": ["<!@(node scripts/list-sources.cjs core)", "<!@(node scripts/list-sources.cjs napi)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": ["cmae_cpu_portable", "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all"],
      "defines": ["NAPI_VERSION=<(cmae_napi_version)", "NODE_ADDON_API_DISABLE_DEPRECATED", "CMAE_BUILD_TYPE=\"Release\"", "CMAE_BUILD_SYSTEM=\"node-gyp\""],
      "cflags_cc": ["<@(cmae_cflags)"],
      "ldflags": ["-fopenmp"],
      "conditions": [
        ["target_arch=='x64'", {"dependencies": ["cmae_cpu_avx2", "cmae_avx512"]}]
      ]
    }
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "cmae_cpu_avx2",
          "type": "static_library",
          "sources": ["<!@(node scripts/list-sources.cjs kernels)"],
          "defines": ["CMAE_CPU_TARGET_AVX2=1"],
          "cflags_cc": ["<@(cmae_cflags)", "-mavx2", "-mfma", "-mf16c"],
          "dependencies": ["cmae_avx512"]
        },
        {
          "target_name": "cmae_avx512",
          "type": "static_library",
          "sources": ["<!@(node scripts/list-sources.cjs avx512)"],
          "cflags_cc": ["<@(cmae_cflags)", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512bf16", "-mavx2", "-mfma", "-mf16c"]
        }
      ]
    }]
  ]
}
