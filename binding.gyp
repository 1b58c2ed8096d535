{
  "targets": [
    {
      "target_name": "brig",
      "sources": [
        "addon/addon.cc",
        "addon/launch.cc",
        "addon/child.cc",
        "addon/watcher.cc",
        "addon/trampoline.cc",
        "addon/files.cc",
        "addon/agent.cc",
        "addon/netns.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing", "-O2"]
    },
    {
      "target_name": "brig-client",
      "type": "executable",
      "sources": ["addon/client.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "ldflags": ["<!@(sh scripts/static-ldflags.sh)"]
    },
    {
      "target_name": "brig-reaper",
      "type": "executable",
      "sources": ["addon/reaper.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"]
    }
  ]
}
