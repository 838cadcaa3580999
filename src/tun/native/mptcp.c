// The Linux kernel's MPTCP for the concentrator (`mptun server`): a listening socket with
// IPPROTO_MPTCP and TCP Fast Open without cookies, handed to Node as a file descriptor, and the
// kernel's view of a connection (MPTCP_INFO and the subflows' addresses, SOL_MPTCP).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/mptcp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef SOL_MPTCP
#define SOL_MPTCP 284
#endif
#ifndef TCP_FASTOPEN_NO_COOKIE
#define TCP_FASTOPEN_NO_COOKIE 34
#endif

static napi_value throw_sys(napi_env env, int err, const char* what) {
  char msg[256];
  const char* name = strerrorname_np(err);
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, text, e, n;
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &e);
  napi_create_int32(env, err, &n);
  napi_set_named_property(env, e, "errno", n);
  napi_throw(env, e);
  return NULL;
}

// mptcpListen(host: string ('' = every address, both families), port, backlog, tfoQueue) → fd
static napi_value mptcp_listen(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char host[64] = "";
  size_t hl = 0;
  int32_t port = 0, backlog = 0, tfo = 0;
  if (argc < 4 || napi_get_value_string_utf8(env, argv[0], host, sizeof host, &hl) != napi_ok ||
      napi_get_value_int32(env, argv[1], &port) != napi_ok || napi_get_value_int32(env, argv[2], &backlog) != napi_ok ||
      napi_get_value_int32(env, argv[3], &tfo) != napi_ok || port < 0 || port > 65535) {
    napi_throw_type_error(env, "EINVAL", "mptcpListen(host, port, backlog, tfoQueue)");
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  memset(&ss, 0, sizeof ss);
  int family;
  struct sockaddr_in* sin = (struct sockaddr_in*)&ss;
  struct sockaddr_in6* sin6 = (struct sockaddr_in6*)&ss;
  if (hl > 0 && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
    family = AF_INET;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    sl = sizeof *sin;
  } else if (hl == 0 || inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
    family = AF_INET6;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    if (hl == 0) sin6->sin6_addr = in6addr_any;
    sl = sizeof *sin6;
  } else {
    napi_throw_type_error(env, "EINVAL", "mptcpListen: the host is not an IPv4 or IPv6 address");
    return NULL;
  }
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_MPTCP);
  if (fd < 0) return throw_sys(env, errno, "socket(IPPROTO_MPTCP)");
  int one = 1, zero = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) goto fail_reuse;
  if (family == AF_INET6 && hl == 0 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0) goto fail_v6only;
  if (tfo > 0) {
    // TCP Fast Open on the listener (MPTCP supports it since Linux 6.2): the Convert message in
    // the client's SYN is handed to accept() at once; NO_COOKIE: no TFO cookie round trip first.
    if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &tfo, sizeof tfo) < 0) goto fail_tfo;
    if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_NO_COOKIE, &one, sizeof one) < 0) goto fail_tfo_nc;
  }
  if (bind(fd, (struct sockaddr*)&ss, sl) < 0) goto fail_bind;
  if (listen(fd, backlog) < 0) goto fail_listen;
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
  int err;
  const char* what;
fail_reuse: what = "setsockopt(SO_REUSEADDR)"; goto fail;
fail_v6only: what = "setsockopt(IPV6_V6ONLY)"; goto fail;
fail_tfo: what = "setsockopt(TCP_FASTOPEN)"; goto fail;
fail_tfo_nc: what = "setsockopt(TCP_FASTOPEN_NO_COOKIE)"; goto fail;
fail_bind: what = "bind"; goto fail;
fail_listen: what = "listen"; goto fail;
fail:
  err = errno;
  close(fd);
  return throw_sys(env, err, what);
}

static void put_u(napi_env env, napi_value o, const char* name, double v) {
  napi_value x;
  napi_create_double(env, v, &x);
  napi_set_named_property(env, o, name, x);
}

static napi_value addr_value(napi_env env, const struct sockaddr* sa, const char* key_addr, const char* key_port, napi_value o) {
  char text[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in* s = (const struct sockaddr_in*)sa;
    inet_ntop(AF_INET, &s->sin_addr, text, sizeof text);
    port = ntohs(s->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6* s = (const struct sockaddr_in6*)sa;
    inet_ntop(AF_INET6, &s->sin6_addr, text, sizeof text);
    port = ntohs(s->sin6_port);
  }
  napi_value v;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, o, key_addr, v);
  put_u(env, o, key_port, port);
  return o;
}

// mptcpInfo(fd) → { subflows, ..., fallback, subflowAddrs: [{local, localPort, remote, remotePort}] }
// or null when the socket is not MPTCP (a plain TCP socket, or one whose MPTCP_INFO is empty).
static napi_value mptcp_info(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "EINVAL", "mptcpInfo(fd)");
    return NULL;
  }
  struct mptcp_info mi;
  memset(&mi, 0, sizeof mi);
  socklen_t len = sizeof mi;
  napi_value out;
  if (getsockopt(fd, SOL_MPTCP, MPTCP_INFO, &mi, &len) < 0) {
    if (errno == EOPNOTSUPP || errno == ENOPROTOOPT) {
      napi_get_null(env, &out);
      return out;
    }
    return throw_sys(env, errno, "getsockopt(SOL_MPTCP, MPTCP_INFO)");
  }
  napi_create_object(env, &out);
  put_u(env, out, "subflows", mi.mptcpi_subflows);
  put_u(env, out, "subflowsMax", mi.mptcpi_subflows_max);
  put_u(env, out, "addAddrSignal", mi.mptcpi_add_addr_signal);
  put_u(env, out, "addAddrAccepted", mi.mptcpi_add_addr_accepted);
  put_u(env, out, "flags", mi.mptcpi_flags);
  put_u(env, out, "token", mi.mptcpi_token);
  put_u(env, out, "localAddrUsed", mi.mptcpi_local_addr_used);
  napi_value b;
  // An empty answer (len 0) is a socket that fell back to TCP before MPTCP was set up.
  napi_get_boolean(env, len == 0 || (mi.mptcpi_flags & MPTCP_INFO_FLAG_FALLBACK) != 0, &b);
  napi_set_named_property(env, out, "fallback", b);

  // The subflows' addresses (Linux ≥ 5.17).
  enum { MAX_SF = 16 };
  struct {
    struct mptcp_subflow_data d;
    struct mptcp_subflow_addrs a[MAX_SF];
  } sf;
  memset(&sf, 0, sizeof sf);
  sf.d.size_subflow_data = sizeof sf.d;
  sf.d.size_user = sizeof sf.a[0];
  len = sizeof sf;
  napi_value arr;
  napi_create_array(env, &arr);
  if (getsockopt(fd, SOL_MPTCP, MPTCP_SUBFLOW_ADDRS, &sf, &len) == 0) {
    uint32_t n = sf.d.num_subflows < MAX_SF ? sf.d.num_subflows : MAX_SF;
    for (uint32_t i = 0; i < n; i++) {
      napi_value o;
      napi_create_object(env, &o);
      addr_value(env, &sf.a[i].sa_local, "local", "localPort", o);
      addr_value(env, &sf.a[i].sa_remote, "remote", "remotePort", o);
      napi_set_element(env, arr, i, o);
    }
  }
  napi_set_named_property(env, out, "subflowAddrs", arr);
  return out;
}

void mptcp_init(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "mptcpListen", NAPI_AUTO_LENGTH, mptcp_listen, NULL, &f);
  napi_set_named_property(env, exports, "mptcpListen", f);
  napi_create_function(env, "mptcpInfo", NAPI_AUTO_LENGTH, mptcp_info, NULL, &f);
  napi_set_named_property(env, exports, "mptcpInfo", f);
}
