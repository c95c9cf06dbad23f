#!/usr/bin/python3
"""Writes an md RAID1 v1.2 superblock (the layout of linux/raid/md_p.h, checksum as the kernel's
calc_sb_1_csum) 4 KiB into IMAGE, as `mdadm --create --metadata=1.2` would on the first member.
mdadm itself cannot create an array here: the host kernel has no md driver. The result is checked
by `mdadm --examine`, which reads the file with mdadm's own parser.

    md-superblock.py IMAGE
"""
import os
import struct
import sys
import time
import uuid

MAX_DEV = 2
OFFSET = 8  # sectors: v1.2 lives 4 KiB from the start


def superblock(size_sectors):
    sb = bytearray(256 + 2 * MAX_DEV)
    struct.pack_into("<IIII", sb, 0, 0xA92B4EFC, 1, 0, 0)
    sb[16:32] = uuid.uuid4().bytes
    sb[32:64] = b"xenprov-test:0".ljust(32, b"\0")
    data_offset = 2048
    struct.pack_into("<QIIQII", sb, 64, int(time.time()), 1, 0, size_sectors - data_offset, 0, 2)
    struct.pack_into("<QQQQI", sb, 128, data_offset, size_sectors - data_offset, OFFSET, 0, 0)
    sb[168:184] = uuid.uuid4().bytes
    struct.pack_into("<QQQ", sb, 192, int(time.time()), 1, 0xFFFFFFFFFFFFFFFF)
    struct.pack_into("<I", sb, 220, MAX_DEV)
    struct.pack_into("<HH", sb, 256, 0, 0xFFFF)  # this device is role 0, the second is missing
    total = sum(struct.unpack_from("<%dI" % (len(sb) // 4), sb))
    struct.pack_into("<I", sb, 216, ((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF)
    return bytes(sb)


def main():
    path = sys.argv[1]
    size = os.path.getsize(path) // 512
    with open(path, "r+b") as f:
        f.seek(OFFSET * 512)
        f.write(superblock(size))


main()
