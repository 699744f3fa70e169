"""Unique bytes for the same picture, for load tools (Locust, the soak): the API keeps only an
image's own bytes (data after the format's end marker is dropped), so a tag must go inside."""

import struct
import zlib


def tagged(data, tag):
    """The image with `tag` stored inside it: a JPEG COM segment right after SOI, or a PNG
    tEXt chunk right after IHDR. The pixels are the same; the bytes (and SHA-256) are not."""
    text = tag.encode()
    if data.startswith(b"\xff\xd8"):
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]
    ihdr_end = 8 + 8 + 13 + 4  # magic, IHDR length+type, IHDR data, CRC
    chunk = b"tEXt" + b"locust\x00" + text
    packed = struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return data[:ihdr_end] + packed + data[ihdr_end:]
