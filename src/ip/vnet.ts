// The virtio-net header that the TUN device puts before every packet when it is opened with
// IFF_VNET_HDR (include/uapi/linux/virtio_net.h, struct virtio_net_hdr, 10 bytes). With it the
// kernel hands us GSO super-segments of up to 64 KiB and takes TSO super-segments from us,
// and checksums may be left partial (NEEDS_CSUM) in both directions.
//
// Fields are in the machine's byte order for a legacy (non-virtio-1.0) header; TUN without
// TUNSETVNETLE on a little-endian host means little-endian.

export const VNET_HDR_LEN = 10;

/** flags: the checksum from csum_start, over the rest of the packet, goes at csum_start + csum_offset. */
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
/** flags: the checksum was verified (receive side). */
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;

export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

const OFF_FLAGS = 0;
const OFF_GSO_TYPE = 1;
const OFF_HDR_LEN = 2;
const OFF_GSO_SIZE = 4;
const OFF_CSUM_START = 6;
const OFF_CSUM_OFFSET = 8;

/** The representation of a virtio-net header. */
export interface VnetHdr {
  flags: number;
  gsoType: number;
  /** bytes of headers (IP + TCP) before the payload, for GSO */
  hdrLen: number;
  /** payload bytes per segment, for GSO */
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

export const VNET_HDR_NONE: Readonly<VnetHdr> = Object.freeze({
  flags: 0, gsoType: VIRTIO_NET_HDR_GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0,
});

/** Parses the header at `buf[offset..offset+10)`; the caller has checked the length. */
export function parseVnetHdr(buf: Buffer, offset = 0, out: VnetHdr = { ...VNET_HDR_NONE }): VnetHdr {
  out.flags = buf[offset + OFF_FLAGS]!;
  out.gsoType = buf[offset + OFF_GSO_TYPE]!;
  out.hdrLen = buf.readUInt16LE(offset + OFF_HDR_LEN);
  out.gsoSize = buf.readUInt16LE(offset + OFF_GSO_SIZE);
  out.csumStart = buf.readUInt16LE(offset + OFF_CSUM_START);
  out.csumOffset = buf.readUInt16LE(offset + OFF_CSUM_OFFSET);
  return out;
}

export function emitVnetHdr(hdr: Readonly<VnetHdr>, buf: Buffer, offset = 0): void {
  buf[offset + OFF_FLAGS] = hdr.flags;
  buf[offset + OFF_GSO_TYPE] = hdr.gsoType;
  buf.writeUInt16LE(hdr.hdrLen, offset + OFF_HDR_LEN);
  buf.writeUInt16LE(hdr.gsoSize, offset + OFF_GSO_SIZE);
  buf.writeUInt16LE(hdr.csumStart, offset + OFF_CSUM_START);
  buf.writeUInt16LE(hdr.csumOffset, offset + OFF_CSUM_OFFSET);
}
