using System.Buffers.Binary;
using Google.Protobuf;

namespace Rlhf.Shell.Telemetry;

/// <summary>CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), and TFRecord's masking of it.</summary>
public static class Crc32C
{
    private static readonly uint[] Table = BuildTable();

    private static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }

    /// <summary>The CRC-32C of <paramref name="data"/> (<c>"123456789"</c> → 0xE3069283).</summary>
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        var c = 0xFFFFFFFFu;
        foreach (var b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return ~c;
    }

    /// <summary>TFRecord's masked CRC (TensorFlow <c>tsl/lib/hash/crc32c.h</c> <c>Mask</c>): rotate right by 15, add 0xA282EAD8.</summary>
    public static uint Mask(uint crc) => ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

/// <summary>
/// TensorBoard event files: <c>events.out.tfevents.SECONDS.HOST</c> in the run directory, a sequence of TFRecords
/// (<c>uint64 length</c>, <c>uint32 masked_crc32c(length)</c>, <c>data</c>, <c>uint32 masked_crc32c(data)</c>, all
/// little-endian) around <c>tensorflow.Event</c> protobufs: first <c>{wall_time, file_version: "brain.Event:2"}</c>, then
/// per logged step <c>{wall_time, step, summary {value {tag, simple_value}}…}</c> with the metrics under their TRL names
/// (TensorFlow <c>core/util/event.proto</c>, <c>core/framework/summary.proto</c>). Each record is flushed to disk.
/// </summary>
public sealed class TensorBoardWriter : IMetricsSink
{
    private readonly FileStream _stream;
    private readonly TimeProvider _time;

    /// <summary>A new event file in <paramref name="directory"/>, named from the clock and the host name.</summary>
    public TensorBoardWriter(string directory, TimeProvider? time = null, string? host = null)
    {
        _time = time ?? TimeProvider.System;
        Directory.CreateDirectory(directory);
        var now = _time.GetUtcNow();
        Path = System.IO.Path.Combine(directory, $"events.out.tfevents.{now.ToUnixTimeSeconds():D10}.{host ?? Environment.MachineName}");
        _stream = new FileStream(Path, FileMode.Append, FileAccess.Write, FileShare.Read);
        WriteRecord(Event(WallTime(now), null, w =>
        {
            w.WriteTag(3, WireFormat.WireType.LengthDelimited);
            w.WriteString("brain.Event:2");
        }));
    }

    /// <summary>The event file.</summary>
    public string Path { get; }

    /// <inheritdoc />
    public void Write(MetricsRecord record)
    {
        var summary = new MemoryStream();
        var s = new CodedOutputStream(summary);
        foreach (var (tag, value) in record.Values)
        {
            MetricText.CheckKey(tag);
            var v = new MemoryStream();
            var vw = new CodedOutputStream(v);
            vw.WriteTag(1, WireFormat.WireType.LengthDelimited);
            vw.WriteString(tag);
            vw.WriteTag(2, WireFormat.WireType.Fixed32);
            vw.WriteFloat((float)value);
            vw.Flush();
            s.WriteTag(1, WireFormat.WireType.LengthDelimited);
            s.WriteBytes(ByteString.CopyFrom(v.ToArray()));
        }
        s.Flush();
        WriteRecord(Event(WallTime(_time.GetUtcNow()), record.Step, w =>
        {
            w.WriteTag(5, WireFormat.WireType.LengthDelimited);
            w.WriteBytes(ByteString.CopyFrom(summary.ToArray()));
        }));
    }

    private static double WallTime(DateTimeOffset t) => t.ToUnixTimeMilliseconds() / 1000.0;

    /// <summary>An Event: wall_time (field 1, double), step (2, int64, when given), then the one-of part.</summary>
    private static byte[] Event(double wallTime, long? step, Action<CodedOutputStream> what)
    {
        var ms = new MemoryStream();
        var w = new CodedOutputStream(ms);
        w.WriteTag(1, WireFormat.WireType.Fixed64);
        w.WriteDouble(wallTime);
        if (step is long st)
        {
            w.WriteTag(2, WireFormat.WireType.Varint);
            w.WriteInt64(st);
        }
        what(w);
        w.Flush();
        return ms.ToArray();
    }

    private void WriteRecord(byte[] data)
    {
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], Crc32C.Mask(Crc32C.Compute(header[..8])));
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, Crc32C.Mask(Crc32C.Compute(data)));
        var record = new byte[12 + data.Length + 4];
        header.CopyTo(record);
        data.CopyTo(record, 12);
        footer.CopyTo(record.AsSpan(12 + data.Length));
        _stream.Write(record);
        _stream.Flush(flushToDisk: true);
    }

    /// <inheritdoc />
    public void Dispose() => _stream.Dispose();
}
