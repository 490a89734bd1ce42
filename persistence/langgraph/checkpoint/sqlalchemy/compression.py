"""Compression of small serialized values with a preset dictionary (schema v4).

Why: a checkpoint record, a chat message written by a task or a message appended to a
history serializes to a few hundred bytes, most of them the same structural strings
every time (``channel_versions``, ``langchain_core.messages.ai``, ``additional_kwargs``,
``000000000``). Plain zlib finds little to refer back to in 450 bytes (about -35%), and
``zlib.compress`` spends most of its time setting up a 256 KiB state for a 32 KiB window
(about 170 us per call on the development machine, more than the saver's whole ``put``).
So values below ``WIDE_FROM`` bytes are deflated with a 4 KiB window, a small hash and
``PRESET_1`` as the preset dictionary, by copying a compressor primed once: about 10 us,
and -60% on those records and messages. Larger values keep plain zlib (``zlib:``).

The stored type names the dictionary (``zd1:msgpack``), so rows stay self-describing.
``PRESET_1`` must never change: rows written with it are read back with it. A better
dictionary is ``PRESET_2`` with its own prefix, and both stay readable.

The dictionary holds only structure - LangGraph's checkpoint record and LangChain's
message classes serialized with empty contents - never sample content.
"""

from __future__ import annotations

import zlib

#: Type prefix of a value deflated with ``PRESET_1`` (zlib format: header, Adler-32).
PRESET_PREFIX = "zd1:"
#: Values at least this big use plain zlib (a 32 KiB window finds more in them).
WIDE_FROM = 2048

# A checkpoint record, then System/Tool/AI (with a tool call and usage)/Human/AI messages,
# as JsonPlusSerializer's msgpack writes them (langgraph-checkpoint 2.x/3.x,
# langchain-core 0.3/1.x); the most common strings last, closest to the data.
PRESET_1 = (
    b"\x89\xa1v\x04\xa2ts\xd9 2026-01-01T00:00:00.000000+00:00\xa2id\xd9$1f000000-"
    b"0000-6000-8000-000000000000\xaechannel_values\x81\xa9__start__\xc0\xb0channe"
    b"l_versions\x83\xa9__start__\xb5000000000001.00000000\xa8messages\xb500000000"
    b"0001.00000000\xaabranch:to:\xb5000000000001.00000000\xadversions_seen\x82"
    b"\xa9__input__\x80\xa9__start__\x81\xa9__start__\xb5000000000001.00000000\xb0"
    b"updated_channels\x91\xa8messages\xa9rg_inline\x80\xa8rg_blobs\x91\xa8message"
    b"s"
    b"\xc7\x88\x05\x94\xbelangchain_core.messages.system\xadSystemMessage\x86\xa7c"
    b"ontent\xa0\xb1additional_kwargs\x80\xb1response_metadata\x80\xa4type\xa6syst"
    b"em\xa4name\xc0\xa2id\xc0\xb3model_validate_json"
    b"\xc7\xae\x05\x94\xbclangchain_core.messages.tool\xabToolMessage\x89\xa7conte"
    b"nt\xa0\xb1additional_kwargs\x80\xb1response_metadata\x80\xa4type\xa4tool\xa4"
    b"name\xa0\xa2id\xc0\xactool_call_id\xa5call_\xa8artifact\xc0\xa6status\xa7suc"
    b"cess\xb3model_validate_json"
    b"\xc8\x01\x1b\x05\x94\xbalangchain_core.messages.ai\xa9AIMessage\x89\xa7conte"
    b"nt\xa0\xb1additional_kwargs\x80\xb1response_metadata\x82\xaamodel_name\xa0"
    b"\xadfinish_reason\xa4stop\xa4type\xa2ai\xa4name\xc0\xa2id\xc0\xaatool_calls"
    b"\x91\x84\xa4name\xa0\xa4args\x80\xa2id\xa5call_\xa4type\xa9tool_call\xb2inva"
    b"lid_tool_calls\x90\xaeusage_metadata\x83\xacinput_tokens\x00\xadoutput_token"
    b"s\x00\xactotal_tokens\x00\xb3model_validate_json"
    b"\xc7\x85\x05\x94\xbdlangchain_core.messages.human\xacHumanMessage\x86\xa7con"
    b"tent\xa0\xb1additional_kwargs\x80\xb1response_metadata\x80\xa4type\xa5human"
    b"\xa4name\xc0\xa2id\xc0\xb3model_validate_json"
    b"\xc7\xac\x05\x94\xbalangchain_core.messages.ai\xa9AIMessage\x89\xa7content"
    b"\xa0\xb1additional_kwargs\x80\xb1response_metadata\x80\xa4type\xa2ai\xa4name"
    b"\xc0\xa2id\xc0\xaatool_calls\x90\xb2invalid_tool_calls\x90\xaeusage_metadata"
    b"\xc0\xb3model_validate_json"
)
#: Adler-32 of ``PRESET_1`` (tests pin it; zlib checks it on every read).
PRESET_1_ADLER = 0x51FA065D

_WBITS = 12  # 4 KiB window: the dictionary plus a value below WIDE_FROM
_PRIMED = zlib.compressobj(1, zlib.DEFLATED, _WBITS, 4, zlib.Z_DEFAULT_STRATEGY, PRESET_1)


def deflate_small(data: bytes) -> bytes:
    """``data`` deflated with ``PRESET_1`` (for values below ``WIDE_FROM`` bytes)."""
    packer = _PRIMED.copy()
    return packer.compress(data) + packer.flush()


def inflate_small(data: bytes) -> bytes:
    """The bytes ``deflate_small`` packed; ``ValueError`` when they are cut or altered."""
    unpacker = zlib.decompressobj(15, PRESET_1)
    out = unpacker.decompress(data)
    if not unpacker.eof or unpacker.unused_data:
        raise ValueError("the compressed value is truncated or has trailing bytes")
    return out
