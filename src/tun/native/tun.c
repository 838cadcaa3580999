// mptun's TUN device: the project's only native code.
//
// It opens /dev/net/tun with IFF_TUN | IFF_NO_PI (optionally IFF_VNET_HDR with TSO/CSUM
// offloads), waits for readiness through libuv (uv_poll), and drains up to `maxBatch`
// packets per wake-up into one preallocated arena, recording each packet's offset and length
// in two Uint32Arrays. JavaScript is called once per batch, never once per packet, and no
// memory is allocated on the read path. Writes take a batch too: one buffer with offsets and
// lengths, written packet by packet with write(2) in one call from JavaScript.
//
// The arena belongs to the device: a batch is valid until the callback returns. JavaScript
// takes views (subarray) of what it consumes at once, and copies what it keeps.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

// struct virtio_net_hdr is 10 bytes; we use it as the device's vnet header size.
#define VNET_HDR_LEN 10
// A GSO super-segment is at most 64 KiB of IP packet, plus the vnet header.
#define MAX_PACKET (65535 + VNET_HDR_LEN)
// How many batches one wake-up may drain before yielding to the event loop.
#define MAX_BATCHES_PER_WAKEUP 8

typedef struct {
  int fd;
  int vnet_hdr;
  char name[IFNAMSIZ];
  uint8_t* arena;
  size_t arena_len;
  uint32_t max_batch;
  uint32_t* offsets;
  uint32_t* lengths;
  napi_ref arena_ref;    // Buffer over arena
  napi_ref offsets_ref;  // Uint32Array over offsets
  napi_ref lengths_ref;  // Uint32Array over lengths
  napi_ref callback_ref; // (count) => void, while started
  napi_ref self_ref;     // keeps the JS object alive while polling
  napi_async_context async_ctx;
  napi_env env;
  uv_poll_t poll;
  int polling;
  int closing;
  int finalized;
  // counters
  double rx_packets, rx_bytes, rx_batches, rx_errors, tx_packets, tx_bytes, tx_errors, tx_again;
} tun_device;

static napi_status throw_errno(napi_env env, const char* code, const char* msg) {
  napi_value err_code, err_msg, err;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &err_code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &err_msg);
  napi_create_error(env, err_code, err_msg, &err);
  return napi_throw(env, err);
}

#define NAPI_CALL(env, call)                                     \
  do {                                                           \
    if ((call) != napi_ok) {                                     \
      const napi_extended_error_info* info;                      \
      napi_get_last_error_info((env), &info);                    \
      bool pending;                                              \
      napi_is_exception_pending((env), &pending);                \
      if (!pending)                                              \
        napi_throw_error((env), "EADDON",                        \
                         info->error_message ? info->error_message \
                                             : "N-API call failed"); \
      return NULL;                                               \
    }                                                            \
  } while (0)

static tun_device* unwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv, napi_value* self) {
  napi_value this_arg;
  if (napi_get_cb_info(env, info, argc, argv, &this_arg, NULL) != napi_ok) return NULL;
  tun_device* dev = NULL;
  if (napi_unwrap(env, this_arg, (void**)&dev) != napi_ok || dev == NULL) {
    napi_throw_error(env, "EADDON", "not a TUN device");
    return NULL;
  }
  if (self) *self = this_arg;
  return dev;
}

static void free_device(tun_device* dev) {
  if (dev->fd >= 0) close(dev->fd);
  dev->fd = -1;
  // The arena is owned by its external Buffer's finalizer, and the index arrays by their
  // ArrayBuffers: they are JavaScript's to free.
}

static void arena_finalize(napi_env env, void* data, void* hint) { free(data); }

static void device_finalize(napi_env env, void* data, void* hint) {
  tun_device* dev = (tun_device*)data;
  dev->finalized = 1;
  if (dev->polling || dev->closing) return;  // freed in the close callback
  free_device(dev);
  free(dev);
}

// new TunDevice(name: string, vnetHdr: boolean, maxBatch: number, arenaBytes: number)
static napi_value device_new(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], self;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  char name[IFNAMSIZ] = {0};
  size_t name_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &name_len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "TUN device name must be a string");
    return NULL;
  }
  if (name_len >= IFNAMSIZ) {
    char msg[128];
    snprintf(msg, sizeof msg, "TUN device name is %zu bytes long: a name is at most %d bytes", name_len, IFNAMSIZ - 1);
    throw_errno(env, "EINVAL", msg);
    return NULL;
  }
  napi_get_value_string_utf8(env, argv[0], name, sizeof name, &name_len);
  bool vnet = false;
  napi_get_value_bool(env, argv[1], &vnet);
  uint32_t max_batch = 256, arena_bytes = 0;
  napi_get_value_uint32(env, argv[2], &max_batch);
  napi_get_value_uint32(env, argv[3], &arena_bytes);
  if (max_batch < 1) max_batch = 1;
  if (arena_bytes < 2 * MAX_PACKET) arena_bytes = 2 * MAX_PACKET;

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    char msg[256];
    if (e == ENOENT || e == ENODEV || e == ENXIO) {
      snprintf(msg, sizeof msg, "/dev/net/tun is missing (%s): load the tun module (modprobe tun) or, in a container, pass --device /dev/net/tun", strerror(e));
      throw_errno(env, "ENOTUN", msg);
    } else if (e == EACCES || e == EPERM) {
      snprintf(msg, sizeof msg, "cannot open /dev/net/tun (%s): run with sudo (needs CAP_NET_ADMIN)", strerror(e));
      throw_errno(env, "EPERM", msg);
    } else {
      snprintf(msg, sizeof msg, "cannot open /dev/net/tun: %s", strerror(e));
      throw_errno(env, "ETUNOPEN", msg);
    }
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  // IFF_TUN_EXCL: refuse to attach to a device of that name that already exists.
  ifr.ifr_flags |= IFF_TUN_EXCL;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    char msg[256];
    if (e == EPERM || e == EACCES) {
      snprintf(msg, sizeof msg, "cannot create TUN device '%s' (%s): run with sudo (needs CAP_NET_ADMIN)", name, strerror(e));
      throw_errno(env, "EPERM", msg);
    } else if (e == EBUSY || e == EEXIST) {
      snprintf(msg, sizeof msg, "cannot create TUN device '%s': the name is taken by another device", name);
      throw_errno(env, "EBUSY", msg);
    } else if (e == EINVAL) {
      snprintf(msg, sizeof msg, "cannot create TUN device '%s': invalid name or flags (%s); a name is at most 15 characters and may hold %%d", name, strerror(e));
      throw_errno(env, "EINVAL", msg);
    } else {
      snprintf(msg, sizeof msg, "cannot create TUN device '%s': %s", name, strerror(e));
      throw_errno(env, "ETUNSETIFF", msg);
    }
    return NULL;
  }
  if (vnet) {
    int sz = VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
      int e = errno;
      close(fd);
      char msg[160];
      snprintf(msg, sizeof msg, "TUNSETVNETHDRSZ failed: %s", strerror(e));
      throw_errno(env, "EOFFLOAD", msg);
      return NULL;
    }
  }

  tun_device* dev = calloc(1, sizeof *dev);
  dev->fd = fd;
  dev->vnet_hdr = vnet;
  dev->env = env;
  snprintf(dev->name, IFNAMSIZ, "%s", ifr.ifr_name);
  dev->max_batch = max_batch;
  dev->arena_len = arena_bytes;
  dev->arena = malloc(arena_bytes);
  if (!dev->arena) {
    free_device(dev);
    free(dev);
    napi_throw_error(env, "ENOMEM", "cannot allocate the TUN arena");
    return NULL;
  }

  napi_value arena, ab_off, ab_len, offsets, lengths;
  NAPI_CALL(env, napi_create_external_buffer(env, arena_bytes, dev->arena, arena_finalize, NULL, &arena));
  // The index arrays are plain JS-owned ArrayBuffers; C keeps pointers to their storage.
  void* off_data;
  void* len_data;
  NAPI_CALL(env, napi_create_arraybuffer(env, max_batch * sizeof(uint32_t), &off_data, &ab_off));
  NAPI_CALL(env, napi_create_arraybuffer(env, max_batch * sizeof(uint32_t), &len_data, &ab_len));
  dev->offsets = off_data;
  dev->lengths = len_data;
  NAPI_CALL(env, napi_create_typedarray(env, napi_uint32_array, max_batch, ab_off, 0, &offsets));
  NAPI_CALL(env, napi_create_typedarray(env, napi_uint32_array, max_batch, ab_len, 0, &lengths));
  NAPI_CALL(env, napi_create_reference(env, arena, 1, &dev->arena_ref));
  NAPI_CALL(env, napi_create_reference(env, offsets, 1, &dev->offsets_ref));
  NAPI_CALL(env, napi_create_reference(env, lengths, 1, &dev->lengths_ref));
  NAPI_CALL(env, napi_set_named_property(env, self, "arena", arena));
  NAPI_CALL(env, napi_set_named_property(env, self, "offsets", offsets));
  NAPI_CALL(env, napi_set_named_property(env, self, "lengths", lengths));
  napi_value js_name, js_fd;
  NAPI_CALL(env, napi_create_string_utf8(env, dev->name, NAPI_AUTO_LENGTH, &js_name));
  NAPI_CALL(env, napi_create_int32(env, fd, &js_fd));
  NAPI_CALL(env, napi_set_named_property(env, self, "name", js_name));
  NAPI_CALL(env, napi_set_named_property(env, self, "fd", js_fd));
  NAPI_CALL(env, napi_wrap(env, self, dev, device_finalize, NULL, NULL));
  return self;
}

// setOffload(flags: number): TUNSETOFFLOAD with TUN_F_* bits.
static napi_value device_set_offload(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  tun_device* dev = unwrap(env, info, &argc, argv, NULL);
  if (!dev) return NULL;
  uint32_t flags = 0;
  napi_get_value_uint32(env, argv[0], &flags);
  if (dev->fd < 0) {
    napi_throw_error(env, "ECLOSED", "TUN device is closed");
    return NULL;
  }
  if (ioctl(dev->fd, TUNSETOFFLOAD, (unsigned long)flags) < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "TUNSETOFFLOAD(0x%x) on %s failed: %s", flags, dev->name, strerror(errno));
    throw_errno(env, "EOFFLOAD", msg);
    return NULL;
  }
  return NULL;
}

// Reads one batch into the arena; returns the count of packets.
static uint32_t read_batch(tun_device* dev, int* would_block) {
  uint32_t count = 0;
  size_t pos = 0;
  *would_block = 0;
  while (count < dev->max_batch && dev->arena_len - pos >= MAX_PACKET) {
    ssize_t n = read(dev->fd, dev->arena + pos, MAX_PACKET);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) dev->rx_errors++;
      *would_block = 1;
      break;
    }
    if (n == 0) {
      *would_block = 1;
      break;
    }
    dev->offsets[count] = (uint32_t)pos;
    dev->lengths[count] = (uint32_t)n;
    count++;
    dev->rx_packets++;
    dev->rx_bytes += (double)n;
    // keep packets 8-byte aligned in the arena
    pos += ((size_t)n + 7) & ~(size_t)7;
  }
  return count;
}

static void on_poll(uv_poll_t* handle, int status, int events) {
  tun_device* dev = (tun_device*)handle->data;
  napi_env env = dev->env;
  if (status < 0 || !dev->callback_ref) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, self;
  napi_get_reference_value(env, dev->callback_ref, &cb);
  napi_get_reference_value(env, dev->self_ref, &self);
  for (int b = 0; b < MAX_BATCHES_PER_WAKEUP && dev->polling && dev->fd >= 0; b++) {
    int would_block;
    uint32_t count = read_batch(dev, &would_block);
    if (count > 0) {
      dev->rx_batches++;
      napi_value arg;
      napi_create_uint32(env, count, &arg);
      napi_value result;
      napi_status st = napi_make_callback(env, dev->async_ctx, self, cb, 1, &arg, &result);
      if (st == napi_pending_exception) {
        napi_value exc;
        napi_get_and_clear_last_exception(env, &exc);
        napi_fatal_exception(env, exc);
        break;
      }
    }
    if (would_block) break;
  }
  napi_close_handle_scope(env, scope);
}

// start(callback: (count: number) => void)
static napi_value device_start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  tun_device* dev = unwrap(env, info, &argc, argv, &self);
  if (!dev) return NULL;
  if (dev->fd < 0) {
    napi_throw_error(env, "ECLOSED", "TUN device is closed");
    return NULL;
  }
  if (dev->polling || dev->closing) {
    napi_throw_error(env, "EBUSY", dev->polling ? "TUN device is already started" : "TUN device is still stopping");
    return NULL;
  }
  uv_loop_t* loop;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  if (dev->callback_ref) napi_delete_reference(env, dev->callback_ref);
  NAPI_CALL(env, napi_create_reference(env, argv[0], 1, &dev->callback_ref));
  if (!dev->self_ref) NAPI_CALL(env, napi_create_reference(env, self, 1, &dev->self_ref));
  if (!dev->async_ctx) {
    napi_value res_name;
    napi_create_string_utf8(env, "mptun:tun", NAPI_AUTO_LENGTH, &res_name);
    NAPI_CALL(env, napi_async_init(env, self, res_name, &dev->async_ctx));
  }
  int r = uv_poll_init(loop, &dev->poll, dev->fd);
  if (r == 0) {
    dev->poll.data = dev;
    r = uv_poll_start(&dev->poll, UV_READABLE, on_poll);
  }
  if (r != 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "uv_poll on %s failed: %s", dev->name, uv_strerror(r));
    throw_errno(env, "EPOLL", msg);
    return NULL;
  }
  dev->polling = 1;
  return NULL;
}

static void on_close(uv_handle_t* handle) {
  tun_device* dev = (tun_device*)handle->data;
  dev->closing = 0;
  if (dev->finalized) {
    free_device(dev);
    free(dev);
  }
}

static void stop_polling(napi_env env, tun_device* dev) {
  if (dev->polling) {
    uv_poll_stop(&dev->poll);
    dev->polling = 0;
    dev->closing = 1;
    uv_close((uv_handle_t*)&dev->poll, on_close);
  }
  if (dev->callback_ref) {
    napi_delete_reference(env, dev->callback_ref);
    dev->callback_ref = NULL;
  }
  if (dev->self_ref) {
    napi_delete_reference(env, dev->self_ref);
    dev->self_ref = NULL;
  }
}

static napi_value device_stop(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  tun_device* dev = unwrap(env, info, &argc, NULL, NULL);
  if (!dev) return NULL;
  stop_polling(env, dev);
  return NULL;
}

static napi_value device_close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  tun_device* dev = unwrap(env, info, &argc, NULL, NULL);
  if (!dev) return NULL;
  stop_polling(env, dev);
  if (dev->fd >= 0) {
    close(dev->fd);
    dev->fd = -1;
  }
  return NULL;
}

// readBatch(): number — synchronous drain into the arena (for callers that poll themselves)
static napi_value device_read_batch(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  tun_device* dev = unwrap(env, info, &argc, NULL, NULL);
  if (!dev) return NULL;
  if (dev->fd < 0) {
    napi_throw_error(env, "ECLOSED", "TUN device is closed");
    return NULL;
  }
  int would_block;
  uint32_t count = read_batch(dev, &would_block);
  if (count) dev->rx_batches++;
  napi_value out;
  napi_create_uint32(env, count, &out);
  return out;
}

// writeBatch(buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number): number
// Writes `count` packets; returns how many the device took (fewer when it would block).
static napi_value device_write_batch(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  tun_device* dev = unwrap(env, info, &argc, argv, NULL);
  if (!dev) return NULL;
  if (dev->fd < 0) {
    napi_throw_error(env, "ECLOSED", "TUN device is closed");
    return NULL;
  }
  uint8_t* buf;
  size_t buf_len;
  if (napi_get_buffer_info(env, argv[0], (void**)&buf, &buf_len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "writeBatch: buf must be a Buffer");
    return NULL;
  }
  napi_typedarray_type t1, t2;
  size_t n1, n2;
  void *d1, *d2;
  napi_value ab;
  size_t bo;
  if (napi_get_typedarray_info(env, argv[1], &t1, &n1, &d1, &ab, &bo) != napi_ok || t1 != napi_uint32_array ||
      napi_get_typedarray_info(env, argv[2], &t2, &n2, &d2, &ab, &bo) != napi_ok || t2 != napi_uint32_array) {
    napi_throw_type_error(env, "EINVAL", "writeBatch: offsets and lengths must be Uint32Arrays");
    return NULL;
  }
  uint32_t count = 0;
  napi_get_value_uint32(env, argv[3], &count);
  if (count > n1 || count > n2) {
    napi_throw_range_error(env, "ERANGE", "writeBatch: count exceeds the index arrays");
    return NULL;
  }
  const uint32_t* offs = d1;
  const uint32_t* lens = d2;
  uint32_t done = 0;
  for (; done < count; done++) {
    uint64_t end = (uint64_t)offs[done] + lens[done];
    if (end > buf_len) {
      napi_throw_range_error(env, "ERANGE", "writeBatch: a packet runs past the end of the buffer");
      return NULL;
    }
    ssize_t n;
    do {
      n = write(dev->fd, buf + offs[done], lens[done]);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        dev->tx_again++;
        break;
      }
      // A malformed packet (EINVAL) or a device that is down (EIO): count it and go on,
      // so one bad packet does not stall the batch.
      dev->tx_errors++;
      continue;
    }
    dev->tx_packets++;
    dev->tx_bytes += (double)n;
  }
  napi_value out;
  napi_create_uint32(env, done, &out);
  return out;
}

// write(packet: Buffer): boolean
static napi_value device_write(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  tun_device* dev = unwrap(env, info, &argc, argv, NULL);
  if (!dev) return NULL;
  if (dev->fd < 0) {
    napi_throw_error(env, "ECLOSED", "TUN device is closed");
    return NULL;
  }
  uint8_t* buf;
  size_t len;
  if (napi_get_buffer_info(env, argv[0], (void**)&buf, &len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "write: packet must be a Buffer");
    return NULL;
  }
  ssize_t n;
  do {
    n = write(dev->fd, buf, len);
  } while (n < 0 && errno == EINTR);
  bool ok = n >= 0;
  if (ok) {
    dev->tx_packets++;
    dev->tx_bytes += (double)n;
  } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
    dev->tx_again++;
  } else {
    dev->tx_errors++;
  }
  napi_value out;
  napi_get_boolean(env, ok, &out);
  return out;
}

static napi_value device_stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  tun_device* dev = unwrap(env, info, &argc, NULL, NULL);
  if (!dev) return NULL;
  napi_value o, v;
  napi_create_object(env, &o);
#define PUT(field, name)                \
  napi_create_double(env, dev->field, &v); \
  napi_set_named_property(env, o, name, v);
  PUT(rx_packets, "rxPackets");
  PUT(rx_bytes, "rxBytes");
  PUT(rx_batches, "rxBatches");
  PUT(rx_errors, "rxErrors");
  PUT(tx_packets, "txPackets");
  PUT(tx_bytes, "txBytes");
  PUT(tx_errors, "txErrors");
  PUT(tx_again, "txAgain");
#undef PUT
  return o;
}

// The kernel-MPTCP helpers of the concentrator (mptcp.c).
void mptcp_init(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"setOffload", NULL, device_set_offload, NULL, NULL, NULL, napi_default_method, NULL},
      {"start", NULL, device_start, NULL, NULL, NULL, napi_default_method, NULL},
      {"stop", NULL, device_stop, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, device_close, NULL, NULL, NULL, napi_default_method, NULL},
      {"readBatch", NULL, device_read_batch, NULL, NULL, NULL, napi_default_method, NULL},
      {"writeBatch", NULL, device_write_batch, NULL, NULL, NULL, napi_default_method, NULL},
      {"write", NULL, device_write, NULL, NULL, NULL, napi_default_method, NULL},
      {"stats", NULL, device_stats, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value cls;
  NAPI_CALL(env, napi_define_class(env, "TunDevice", NAPI_AUTO_LENGTH, device_new, NULL,
                                   sizeof methods / sizeof methods[0], methods, &cls));
  NAPI_CALL(env, napi_set_named_property(env, exports, "TunDevice", cls));
  napi_value v;
#define CONST(name, value)              \
  napi_create_uint32(env, value, &v); \
  napi_set_named_property(env, exports, name, v);
  CONST("TUN_F_CSUM", TUN_F_CSUM);
  CONST("TUN_F_TSO4", TUN_F_TSO4);
  CONST("TUN_F_TSO6", TUN_F_TSO6);
  CONST("TUN_F_TSO_ECN", TUN_F_TSO_ECN);
  CONST("VNET_HDR_LEN", VNET_HDR_LEN);
  CONST("MAX_PACKET", MAX_PACKET);
#undef CONST
  mptcp_init(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
