// A test-side reader of TensorBoard event files written from the format (TFRecord framing + the Event protobuf), sharing
// nothing with the writer under test: compiled into every test project that reads event files (see their .csproj).
using System.Buffers.Binary;
using Xunit;

namespace Rlhf.Tests.Shared;

internal static class TfEvents
{
    /// <summary>CRC-32C bit by bit from its reflected polynomial (no table shared with the code under test).</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        var crc = uint.MaxValue;
        foreach (var b in data)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++) crc = (crc >> 1) ^ ((crc & 1) * 0x82F63B78u);
        }
        return ~crc;
    }

    /// <summary>The CRC as TFRecord stores it: rotated right by 15 and offset.</summary>
    public static uint MaskedCrc(ReadOnlySpan<byte> data)
    {
        var crc = Crc32C(data);
        return unchecked(((crc >> 15) | (crc << 17)) + 0xA282EAD8u);
    }

    /// <summary>Every TFRecord payload of <paramref name="file"/>, with both CRCs of every record checked.</summary>
    public static List<byte[]> Records(byte[] file, string what = "event file")
    {
        var records = new List<byte[]>();
        var at = 0;
        while (at < file.Length)
        {
            Assert.True(file.Length - at >= 16, $"{what}: truncated record at byte {at}");
            var header = file.AsSpan(at, 8);
            var length = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(header));
            Assert.Equal(MaskedCrc(header), BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 8, 4)));
            var data = file.AsSpan(at + 12, length);
            Assert.Equal(MaskedCrc(data), BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 12 + length, 4)));
            records.Add(data.ToArray());
            at += 16 + length;
        }
        return records;
    }

    /// <summary>The (field, wire type, payload, varint) entries of a protobuf message, in order.</summary>
    public static List<(int Field, int Wire, byte[] Bytes, ulong Varint)> Fields(byte[] m)
    {
        var result = new List<(int, int, byte[], ulong)>();
        var i = 0;
        while (i < m.Length)
        {
            var key = Varint(m, ref i);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0: result.Add((field, wire, [], Varint(m, ref i))); break;
                case 1: result.Add((field, wire, m[i..(i + 8)], 0)); i += 8; break;
                case 5: result.Add((field, wire, m[i..(i + 4)], 0)); i += 4; break;
                case 2: var n = (int)Varint(m, ref i); result.Add((field, wire, m[i..(i + n)], 0)); i += n; break;
                default: throw new Xunit.Sdk.XunitException($"unexpected wire type {wire} in {Convert.ToHexString(m)}");
            }
        }
        return result;
    }

    private static ulong Varint(byte[] b, ref int i)
    {
        ulong v = 0;
        for (var shift = 0; ; shift += 7)
        {
            var x = b[i++];
            v |= (ulong)(x & 0x7F) << shift;
            if (x < 0x80) return v;
        }
    }
}
