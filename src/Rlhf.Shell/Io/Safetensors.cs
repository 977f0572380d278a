using System.Buffers.Binary;
using System.Text.Json;
using Rlhf.Torch;

namespace Rlhf.Shell.Io;

/// <summary>One tensor to write as raw little-endian bytes (any safetensors dtype, including those libtorch lacks).</summary>
public sealed record SafetensorsRawTensor(string Name, SafetensorsDtype Dtype, long[] Shape, byte[] Data);

/// <summary>Writing safetensors files (reading: <see cref="SafetensorsFile"/>).</summary>
public static class Safetensors
{
    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/> (through a temporary file renamed into place, so a
    /// failure leaves any earlier file intact). Tensors are stored in ordinal name order, contiguous, header padded
    /// with spaces to a multiple of 8 bytes, as the reference implementation does; equal inputs give equal bytes.
    /// </summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        WriteRaw(path, tensors.Select(kv => new SafetensorsRawTensor(kv.Key, SafetensorsDtypes.FromScalarType(kv.Value.Dtype), kv.Value.Shape,
            kv.Value.Device.Type == DeviceType.Cpu ? kv.Value.Contiguous().ToBytes() : kv.Value.Cpu().Contiguous().ToBytes())), metadata);

    /// <summary>Writes raw tensors (see <see cref="Write"/>); each payload's length must match its dtype and shape.</summary>
    public static void WriteRaw(string path, IEnumerable<SafetensorsRawTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        var dup = list.GroupBy(t => t.Name).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new SafetensorsException(path, dup.Key, "given twice");
        if (list.Any(t => t.Name == "__metadata__")) throw new SafetensorsException(path, "__metadata__", "reserved name");
        foreach (var t in list)
        {
            var need = t.Shape.Aggregate(1L, (a, b) => a * b) * t.Dtype.ElementSize();
            if (need != t.Data.Length) throw new SafetensorsException(path, t.Name, $"shape [{string.Join(", ", t.Shape)}] of {t.Dtype} needs {need} bytes, data has {t.Data.Length}");
        }
        var header = Header(list, metadata);
        var tmp = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> len = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
                fs.Write(len);
                fs.Write(header);
                foreach (var t in list) fs.Write(t.Data);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>The JSON header (padded with spaces to a multiple of 8 bytes) for tensors laid out in the given order.</summary>
    internal static byte[] Header(IReadOnlyList<SafetensorsRawTensor> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in tensors)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", t.Dtype.ToString());
                w.WriteStartArray("shape");
                foreach (var d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.Data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.Data.Length;
            }
            w.WriteEndObject();
        }
        var bytes = ms.ToArray();
        var padded = (bytes.Length + 7) / 8 * 8;
        var result = new byte[padded];
        bytes.CopyTo(result, 0);
        for (var i = bytes.Length; i < padded; i++) result[i] = (byte)' ';
        return result;
    }
}
