using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text.Json;
using Rlhf.Torch;

namespace Rlhf.Shell.Io;

using Torch = Rlhf.Torch.Torch;

/// <summary>One tensor's header entry: dtype, shape and byte range [Begin, End) within the data section.</summary>
public sealed record SafetensorsEntry(string Name, SafetensorsDtype Dtype, long[] Shape, long Begin, long End)
{
    /// <summary>Number of elements (1 for a scalar).</summary>
    public long NumEl => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Bytes of data.</summary>
    public long ByteLength => End - Begin;
}

/// <summary>
/// A safetensors file opened for reading through a read-only memory map: an 8-byte little-endian header length N,
/// N bytes of JSON <c>{name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__": {str: str}}</c>, then the
/// data. Opening validates everything up front — header length and size (≤ 100 MB), JSON, dtypes, shapes against
/// byte ranges, and that the ranges tile the data section exactly (no overlap, no hole, nothing past the end) — and
/// throws <see cref="SafetensorsException"/> naming the file and tensor. Tensors are copied out on request.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Largest header accepted (the format's limit): <see cref="InputLimits.SafetensorsHeaderBytes"/>.</summary>
    public const long MaxHeaderBytes = InputLimits.SafetensorsHeaderBytes;

    private readonly MemoryMappedFile? map;
    private readonly MemoryMappedViewAccessor? view;
    private readonly byte* basePtr;
    private readonly long dataStart;
    private readonly Dictionary<string, SafetensorsEntry> entries;

    private SafetensorsFile(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* basePtr, long dataStart,
        Dictionary<string, SafetensorsEntry> entries, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path; this.map = map; this.view = view; this.basePtr = basePtr; this.dataStart = dataStart;
        this.entries = entries; Metadata = metadata;
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>The <c>__metadata__</c> map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Every entry, in ordinal name order.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries => entries.Values.OrderBy(e => e.Name, StringComparer.Ordinal).ToList();

    /// <summary>The tensor names, in ordinal order.</summary>
    public IEnumerable<string> Names => entries.Keys.OrderBy(k => k, StringComparer.Ordinal);

    /// <summary>True when the file holds <paramref name="name"/>.</summary>
    public bool Contains(string name) => entries.ContainsKey(name);

    /// <summary>The header entry of <paramref name="name"/>.</summary>
    public SafetensorsEntry Entry(string name) => entries.TryGetValue(name, out var e) ? e
        : throw new SafetensorsException(Path, name, "no such tensor in this file");

    /// <summary>The raw little-endian bytes of <paramref name="name"/>, straight from the map (valid until Dispose).</summary>
    public ReadOnlySpan<byte> Bytes(string name)
    {
        var e = Entry(name);
        if (e.ByteLength > int.MaxValue) throw new SafetensorsException(Path, name, $"tensor of {e.ByteLength} bytes is too large for one span");
        return e.ByteLength == 0 ? ReadOnlySpan<byte>.Empty : new ReadOnlySpan<byte>(basePtr + dataStart + e.Begin, (int)e.ByteLength);
    }

    /// <summary>
    /// A new CPU tensor with the data of <paramref name="name"/>, converted to <paramref name="dtype"/> when given.
    /// U16, U32, U64 and the float8 types have no tensor dtype here: read them with <see cref="Bytes"/>.
    /// </summary>
    public Tensor Load(string name, ScalarType? dtype = null)
    {
        var e = Entry(name);
        var st = e.Dtype.ToScalarType()
            ?? throw new SafetensorsException(Path, name, $"dtype {e.Dtype} has no tensor type in this libtorch; read it as raw bytes with Bytes()");
        using var scope = Torch.NewScope();
        var t = Torch.FromBytes(Bytes(name), e.Shape, st);
        if (dtype is { } d && d != st) t = t.To(d);
        return t.MoveToOuter();
    }

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new SafetensorsException(path, null, "file not found");
        var length = new FileInfo(path).Length;
        if (length < 8) throw new SafetensorsException(path, null, $"truncated: {length} bytes, shorter than the 8-byte header length");
        var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        var acquired = false;
        try
        {
            map = MemoryMappedFile.CreateFromFile(fs, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            acquired = true;
            p += view.PointerOffset;
            var raw = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(p, 8));
            if (raw > MaxHeaderBytes) throw new SafetensorsException(path, null, $"header length {raw} exceeds the 100 MB limit (corrupt file?)");
            var n = (long)raw;
            if (n > MaxHeaderBytes) throw new SafetensorsException(path, null, $"header length {n} exceeds the 100 MB limit (corrupt file?)");
            if (8 + n > length) throw new SafetensorsException(path, null, $"header length {n} is longer than the file ({length} bytes): truncated or corrupt");
            var (entries, metadata) = ParseHeader(path, new ReadOnlySpan<byte>(p + 8, (int)n), length - 8 - n);
            return new SafetensorsFile(path, map, view, p, 8 + n, entries, metadata);
        }
        catch
        {
            if (acquired) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            map?.Dispose();
            fs.Dispose();
            throw;
        }
    }

    private static (Dictionary<string, SafetensorsEntry>, IReadOnlyDictionary<string, string>) ParseHeader(string path, ReadOnlySpan<byte> json, long dataLength)
    {
        JsonDocument doc;
        try
        {
            // The reference implementation reads the header as a Rust &str: invalid UTF-8 is an error, not replaced.
            new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetCharCount(json);
            doc = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = InputLimits.JsonDepth });
        }
        catch (System.Text.DecoderFallbackException e) { throw new SafetensorsException(path, null, "header is not valid UTF-8", e); }
        catch (JsonException e) { throw new SafetensorsException(path, null, $"header is not valid JSON: {e.Message}", e); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new SafetensorsException(path, null, $"header must be a JSON object, got {doc.RootElement.ValueKind}");
        var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (!seen.Add(prop.Name)) throw new SafetensorsException(path, prop.Name, "appears twice in the header");
            if (prop.Name == "__metadata__")
            {
                if (prop.Value.ValueKind != JsonValueKind.Object) throw new SafetensorsException(path, null, "__metadata__ must be an object of strings");
                foreach (var m in prop.Value.EnumerateObject())
                {
                    if (m.Value.ValueKind != JsonValueKind.String) throw new SafetensorsException(path, null, $"__metadata__ value of '{m.Name}' must be a string, got {m.Value.ValueKind}");
                    metadata[m.Name] = m.Value.GetString()!;
                }
                continue;
            }
            entries[prop.Name] = ParseEntry(path, prop.Name, prop.Value, dataLength);
        }
        // The byte ranges must tile [0, dataLength) exactly: sorted by start, each begins where the previous ended.
        long cursor = 0;
        string? previous = null;
        foreach (var e in entries.Values.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin < cursor) throw new SafetensorsException(path, e.Name, $"data_offsets [{e.Begin}, {e.End}) overlap tensor '{previous}' (which ends at {cursor})");
            if (e.Begin > cursor) throw new SafetensorsException(path, e.Name, $"data_offsets start at {e.Begin} but the previous tensor ends at {cursor}: hole in the data section");
            cursor = e.End;
            previous = e.Name;
        }
        if (cursor != dataLength)
            throw new SafetensorsException(path, null, $"tensors cover {cursor} bytes of a {dataLength}-byte data section: {(cursor < dataLength ? "trailing bytes" : "truncated")}");
        return (entries, metadata);
    }

    private static SafetensorsEntry ParseEntry(string path, string name, JsonElement v, long dataLength)
    {
        if (v.ValueKind != JsonValueKind.Object) throw new SafetensorsException(path, name, $"entry must be an object, got {v.ValueKind}");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw new SafetensorsException(path, name, "missing string 'dtype'");
        if (!SafetensorsDtypes.TryParse(dt.GetString()!, out var dtype))
            throw new SafetensorsException(path, name, $"unsupported dtype '{dt.GetString()}' (known: {string.Join(", ", Enum.GetNames<SafetensorsDtype>())})");
        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array) throw new SafetensorsException(path, name, "missing array 'shape'");
        var shape = new long[sh.GetArrayLength()];
        var i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var n) || n < 0) throw new SafetensorsException(path, name, $"shape entry {d} is not a non-negative integer");
            shape[i++] = n;
        }
        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new SafetensorsException(path, name, "missing 'data_offsets' [begin, end]");
        long begin, end;
        if (off[0].ValueKind != JsonValueKind.Number || off[1].ValueKind != JsonValueKind.Number) throw new SafetensorsException(path, name, "data_offsets must be integers");
        try { begin = off[0].GetInt64(); end = off[1].GetInt64(); }
        catch (Exception e) when (e is FormatException or InvalidOperationException) { throw new SafetensorsException(path, name, "data_offsets must be integers", e); }
        if (begin < 0 || end < begin) throw new SafetensorsException(path, name, $"data_offsets [{begin}, {end}) are not a valid range");
        if (end > dataLength) throw new SafetensorsException(path, name, $"data_offsets [{begin}, {end}) run past the end of the data section ({dataLength} bytes): truncated or corrupt");
        long numel, bytes;
        try
        {
            numel = shape.Aggregate(1L, (a, b) => checked(a * b));
            bytes = checked(numel * dtype.ElementSize());
        }
        catch (OverflowException) { throw new SafetensorsException(path, name, $"shape [{string.Join(", ", shape)}] of {dtype} has a byte size that overflows 64 bits"); }
        if (bytes != end - begin)
            throw new SafetensorsException(path, name, $"shape [{string.Join(", ", shape)}] of {dtype} needs {bytes} bytes but data_offsets span {end - begin}");
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    /// <summary>Unmaps the file.</summary>
    public void Dispose()
    {
        if (view is not null)
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
            view.Dispose();
        }
        map?.Dispose();
    }
}
