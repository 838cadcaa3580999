{
  "targets": [
    {
      "target_name": "mptun_tun",
      "sources": ["src/tun/native/tun.c", "src/tun/native/mptcp.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
