using System.Buffers.Binary;
using System.Text;
using Rlhf.Shell.Io;
using Rlhf.Torch;

namespace Rlhf.Shell.Tests.Io;

using Torch = Rlhf.Torch.Torch;

public class SafetensorsTests
{
    private static byte[] FileBytes(string header, byte[] data)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var b = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)h.Length);
        h.CopyTo(b, 8);
        data.CopyTo(b, 8 + h.Length);
        return b;
    }

    private static SafetensorsException OpenFails(TempDir dir, byte[] bytes, string name = "bad.safetensors")
    {
        var path = dir.File(name);
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(path, ex.Message);
        return ex;
    }

    [Fact]
    public void Every_tensor_dtype_round_trips_bit_exactly()
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        var g = new Generator(1);
        var tensors = new Dictionary<string, Tensor>
        {
            ["f64"] = Torch.Randn([3, 2], g, ScalarType.Float64),
            ["f32"] = Torch.Randn([2, 3, 4], g),
            ["f16"] = Torch.Randn([5], g).Half(),
            ["bf16"] = Torch.Randn([2, 2], g).BFloat16(),
            ["i64"] = Torch.Randint(-1000, 1000, [7], g),
            ["i32"] = Torch.Randint(-1000, 1000, [2, 2], g).Int(),
            ["i16"] = Torch.Randint(-1000, 1000, [3], g).To(ScalarType.Int16),
            ["i8"] = Torch.Randint(-100, 100, [4], g).To(ScalarType.Int8),
            ["u8"] = Torch.Randint(0, 255, [4], g).To(ScalarType.UInt8),
            ["bool"] = Torch.Randint(0, 2, [6], g).Bool(),
            ["scalar"] = Torch.Scalar(3.5),
            ["empty"] = Torch.Zeros([0, 3]),
        };
        var path = dir.File("all.safetensors");
        Safetensors.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode" });
        using (var f = SafetensorsFile.Open(path))
        {
            Assert.Equal("ünïcode", f.Metadata["note"]);
            Assert.Equal(tensors.Keys.Order(StringComparer.Ordinal), f.Names);
            foreach (var (name, t) in tensors)
            {
                var back = f.Load(name);
                Assert.Equal(t.Dtype, back.Dtype);
                Assert.Equal(t.Shape, back.Shape);
                Assert.Equal(t.ToBytes(), back.ToBytes());
            }
            Assert.Equal(SafetensorsDtype.BF16, f.Entry("bf16").Dtype);
            // dtype conversion on load
            Assert.True(f.Load("bf16", ScalarType.Float32).Equal(tensors["bf16"].Float()));
        }
        // writing what was read gives the same bytes
        var again = dir.File("again.safetensors");
        using (var f = SafetensorsFile.Open(path))
            Safetensors.Write(again, f.Names.Select(n => KeyValuePair.Create(n, f.Load(n))), f.Metadata);
        Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(again));
    }

    [Fact]
    public void Raw_only_dtypes_round_trip_as_bytes()
    {
        using var dir = new TempDir();
        var raw = new[]
        {
            new SafetensorsRawTensor("u16", SafetensorsDtype.U16, [3], [1, 2, 3, 4, 5, 6]),
            new SafetensorsRawTensor("u32", SafetensorsDtype.U32, [1, 2], [1, 2, 3, 4, 5, 6, 7, 8]),
            new SafetensorsRawTensor("u64", SafetensorsDtype.U64, [1], [9, 8, 7, 6, 5, 4, 3, 2]),
            new SafetensorsRawTensor("e4m3", SafetensorsDtype.F8_E4M3, [2], [0x38, 0xb8]),
            new SafetensorsRawTensor("e5m2", SafetensorsDtype.F8_E5M2, [2], [0x3c, 0xbc]),
        };
        var path = dir.File("raw.safetensors");
        Safetensors.WriteRaw(path, raw);
        using var f = SafetensorsFile.Open(path);
        foreach (var r in raw)
        {
            Assert.Equal(r.Dtype, f.Entry(r.Name).Dtype);
            Assert.Equal(r.Shape, f.Entry(r.Name).Shape);
            Assert.Equal(r.Data, f.Bytes(r.Name).ToArray());
        }
        var ex = Assert.Throws<SafetensorsException>(() => f.Load("u16"));
        Assert.Contains("'u16'", ex.Message);
    }

    [Fact]
    public void Header_is_padded_to_eight_bytes_and_follows_the_format()
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        var path = dir.File("x.safetensors");
        Safetensors.Write(path, [KeyValuePair.Create("a", Torch.From(new float[] { 1, 2 }))]);
        var bytes = File.ReadAllBytes(path);
        var n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, n % 8);
        var header = Encoding.UTF8.GetString(bytes, 8, (int)n).TrimEnd(' ');
        Assert.Equal("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", header);
        Assert.Equal(BitConverter.GetBytes(1f).Concat(BitConverter.GetBytes(2f)), bytes[(8 + (int)n)..]);
    }

    [Fact]
    public void Truncated_file_is_a_clear_error()
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        var path = dir.File("ok.safetensors");
        Safetensors.Write(path, [KeyValuePair.Create("weight", Torch.Ones([4, 4]))]);
        var bytes = File.ReadAllBytes(path);
        var ex = OpenFails(dir, bytes[..^5]);
        Assert.Contains("'weight'", ex.Message);
        Assert.Contains("past the end", ex.Message);
        Assert.Contains("truncated", OpenFails(dir, bytes[..5]).Message);
    }

    [Fact]
    public void Header_longer_than_the_file_is_a_clear_error()
    {
        using var dir = new TempDir();
        var bytes = FileBytes("{}", []);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 4096);
        Assert.Contains("longer than the file", OpenFails(dir, bytes).Message);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, ulong.MaxValue);
        Assert.Contains("100 MB", OpenFails(dir, bytes).Message);
    }

    [Fact]
    public void Overlapping_offsets_name_both_tensors()
    {
        using var dir = new TempDir();
        var ex = OpenFails(dir, FileBytes(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", new byte[12]));
        Assert.Contains("'b'", ex.Message);
        Assert.Contains("overlap", ex.Message);
        Assert.Contains("'a'", ex.Message);
    }

    [Fact]
    public void Out_of_range_offsets_and_holes_are_clear_errors()
    {
        using var dir = new TempDir();
        var past = OpenFails(dir, FileBytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", new byte[8]));
        Assert.Contains("'w'", past.Message);
        Assert.Contains("past the end", past.Message);
        var hole = OpenFails(dir, FileBytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", new byte[8]));
        Assert.Contains("hole", hole.Message);
        var trailing = OpenFails(dir, FileBytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[8]));
        Assert.Contains("trailing", trailing.Message);
        var backwards = OpenFails(dir, FileBytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", new byte[8]));
        Assert.Contains("not a valid range", backwards.Message);
        var mismatch = OpenFails(dir, FileBytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", new byte[8]));
        Assert.Contains("needs 12 bytes", mismatch.Message);
    }

    [Fact]
    public void Bad_dtype_is_a_clear_error()
    {
        using var dir = new TempDir();
        var ex = OpenFails(dir, FileBytes("{\"emb\":{\"dtype\":\"F12\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]));
        Assert.Contains("'emb'", ex.Message);
        Assert.Contains("unsupported dtype 'F12'", ex.Message);
        Assert.Contains("unsupported dtype 'f32'", OpenFails(dir, FileBytes("{\"e\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4])).Message);
    }

    [Fact]
    public void Invalid_json_is_a_clear_error()
    {
        using var dir = new TempDir();
        Assert.Contains("not valid JSON", OpenFails(dir, FileBytes("{\"a\":{\"dtype\":", new byte[4])).Message);
        Assert.Contains("JSON object", OpenFails(dir, FileBytes("[1, 2]", [])).Message);
        Assert.Contains("must be a string", OpenFails(dir, FileBytes("{\"__metadata__\":{\"k\":1}}", [])).Message);
        Assert.Contains("appears twice", OpenFails(dir, FileBytes(
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", new byte[2])).Message);
    }

    [Fact]
    public void A_failed_write_leaves_the_earlier_file_intact()
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        var path = dir.File("w.safetensors");
        Safetensors.Write(path, [KeyValuePair.Create("a", Torch.Ones([2]))]);
        var before = File.ReadAllBytes(path);
        Assert.Throws<SafetensorsException>(() => Safetensors.WriteRaw(path, [new SafetensorsRawTensor("a", SafetensorsDtype.F32, [2], new byte[3])]));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Single(Directory.GetFiles(dir.Path));
    }
}
