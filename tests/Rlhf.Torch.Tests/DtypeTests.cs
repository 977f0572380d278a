// Element types: creation, value round trips through From/ToArray/ToBytes/FromBytes, conversions.
using System.Buffers.Binary;
using FsCheck;
using FsCheck.Fluent;
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class DtypeTests
{
    public static TheoryData<ScalarType, int, bool> AllTypes => new()
    {
        { ScalarType.Float32, 4, true }, { ScalarType.Float64, 8, true }, { ScalarType.BFloat16, 2, true },
        { ScalarType.Float16, 2, true }, { ScalarType.Int64, 8, false }, { ScalarType.Int32, 4, false },
        { ScalarType.Int16, 2, false }, { ScalarType.Int8, 1, false }, { ScalarType.UInt8, 1, false },
        { ScalarType.Bool, 1, false },
    };

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void Creation_in_every_dtype(ScalarType dtype, int size, bool floating)
    {
        using var scope = Torch.NewScope();
        Assert.Equal(size, dtype.ElementSize());
        Assert.Equal(floating, dtype.IsFloatingPoint());
        var z = Torch.Zeros([2, 3], dtype);
        Assert.Equal(dtype, z.Dtype);
        Assert.Equal(size, z.ElementSize);
        Assert.Equal(6L * size, z.NumBytes);
        Assert.Equal(new byte[6 * size], z.ToBytes());
        var o = Torch.Ones([3], dtype);
        Assert.Equal(new double[] { 1, 1, 1 }, Near.Values(o));
        Assert.Equal(dtype, Torch.Full([2], 1.0, dtype).Dtype);
        Assert.Equal(dtype, Torch.Empty([2], dtype).Dtype);
        Assert.Equal(dtype, Torch.ZerosLike(o).Dtype);
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void Bytes_round_trip_in_every_dtype(ScalarType dtype, int size, bool floating)
    {
        using var scope = Torch.NewScope();
        var values = floating ? new double[] { 0.5, -2, 3, 0.25 } : dtype == ScalarType.Bool ? new double[] { 1, 0, 1, 1 } : new double[] { 1, 0, 7, 100 };
        var t = Torch.From(values, 2, 2).To(dtype);
        Assert.Equal(dtype, t.Dtype);
        Near.Equal(values, t, 0); // all exactly representable
        var bytes = t.ToBytes();
        Assert.Equal(4 * size, bytes.Length);
        var back = Torch.FromBytes(bytes, [2, 2], dtype);
        Assert.Equal(dtype, back.Dtype);
        Assert.Equal(new long[] { 2, 2 }, back.Shape);
        Assert.True(back.Equal(t));
        Assert.Equal(bytes, back.ToBytes());
        Assert.Throws<TorchException>(() => Torch.FromBytes(bytes.AsSpan(1), [2, 2], dtype));
    }

    [Fact]
    public void Arrays_round_trip_through_from_and_to_array()
    {
        using var scope = Torch.NewScope();
        float[] f = [1.5f, -0f, float.MaxValue, float.Epsilon, float.NegativeInfinity];
        Assert.Equal(f, Torch.From(f).ToArray<float>());
        double[] d = [Math.PI, -1e300, double.Epsilon, double.NaN];
        Assert.Equal(d, Torch.From(d).ToArray<double>());
        long[] l = [long.MinValue, -1, 0, long.MaxValue];
        Assert.Equal(l, Torch.From(l).ToArray<long>());
        int[] i = [int.MinValue, -7, int.MaxValue];
        Assert.Equal(i, Torch.From(i).ToArray<int>());
        short[] s = [short.MinValue, 3, short.MaxValue];
        Assert.Equal(s, Torch.From(s).ToArray<short>());
        sbyte[] sb = [sbyte.MinValue, 0, sbyte.MaxValue];
        Assert.Equal(sb, Torch.From(sb).ToArray<sbyte>());
        byte[] u = [0, 1, 128, 255];
        Assert.Equal(u, Torch.From(u).ToArray<byte>());
        bool[] b = [true, false, true];
        Assert.Equal(b, Torch.From(b).ToArray<bool>());
        Half[] h = [(Half)0.1, (Half)(-65504), Half.Epsilon, (Half)1];
        var ht = Torch.From(h);
        Assert.Equal(ScalarType.Float16, ht.Dtype);
        Assert.Equal(h, ht.ToArray<Half>());
        Assert.Equal((Half)1, ht[3].Item<Half>());
    }

    [Fact]
    public void Bfloat16_is_the_top_half_of_a_float32()
    {
        using var scope = Torch.NewScope();
        ushort[] bits = [0x3F80, 0xC020, 0x3F00, 0x4040]; // 1, −2.5, 0.5, 3
        var bytes = new byte[8];
        for (var k = 0; k < 4; k++) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * k), bits[k]);
        var t = Torch.FromBytes(bytes, [4], ScalarType.BFloat16);
        Assert.Equal(new float[] { 1, -2.5f, 0.5f, 3 }, t.Float().ToArray<float>());
        Assert.Equal(-2.5, t[1].Item());

        // float32 → bfloat16 rounds to nearest, ties to even, keeping 8 bits of precision
        var r = T.F(1.00390625f, 1.005859375f, 3.14159265f).BFloat16();
        Assert.Equal(ScalarType.BFloat16, r.Dtype);
        var rb = r.ToBytes();
        Assert.Equal(0x3F80, BinaryPrimitives.ReadUInt16LittleEndian(rb)); // 1 + 2⁻⁸ is a tie: even → 1
        Assert.Equal(0x3F81, BinaryPrimitives.ReadUInt16LittleEndian(rb.AsSpan(2))); // → 1 + 2⁻⁷
        Assert.Equal(3.140625f, r.Float().ToArray<float>()[2]);
        Assert.Throws<NotSupportedException>(() => r.ToArray<decimal>());
    }

    [Fact]
    public void Float16_conversion_rounds_like_dotnet_half()
    {
        using var scope = Torch.NewScope();
        float[] v = [0.1f, 1 / 3f, 70000f, 6e-8f];
        var h = T.F(v).Half().ToArray<Half>();
        Assert.Equal(v.Select(x => (Half)x).ToArray(), h);
        Assert.True(Half.IsPositiveInfinity(h[2])); // beyond 65504
    }

    [Fact]
    public void Conversions_between_dtypes()
    {
        using var scope = Torch.NewScope();
        var f = T.F(-1.7f, 1.7f, 2.5f, 0f);
        Assert.Equal(new long[] { -1, 1, 2, 0 }, f.Long().ToArray<long>()); // truncation toward zero
        Assert.Equal(new[] { -1, 1, 2, 0 }, f.Int().ToArray<int>());
        Assert.Equal(new[] { true, true, true, false }, f.Bool().ToArray<bool>());
        Assert.Equal(new[] { 1f, 0f }, T.B(true, false).Float().ToArray<float>());
        Assert.Equal(new byte[] { 255, 0, 1 }, T.L(-1, 256, 257).To(ScalarType.UInt8).ToArray<byte>()); // integers wrap
        Assert.Equal(new double[] { -1.7f, 1.7f, 2.5f, 0f }, f.Double().ToArray<double>());
        Assert.Equal(ScalarType.Float32, T.D(1).Float().Dtype);
        Assert.Equal(ScalarType.Float16, T.D(1).Half().Dtype);
        Assert.Equal(ScalarType.BFloat16, T.D(1).BFloat16().Dtype);
        Assert.Equal(ScalarType.Int8, T.D(-3).To(ScalarType.Int8).Dtype);
        Assert.Equal(-3, T.D(-3.9).To(ScalarType.Int16).ToArray<short>()[0]);
    }

    [Fact]
    public void Type_promotion_follows_torch()
    {
        using var scope = Torch.NewScope();
        var i = Torch.Arange(3, ScalarType.Int32);
        Assert.Equal(ScalarType.Int32, (i + i).Dtype);
        Assert.Equal(ScalarType.Int32, (i * 2).Dtype);           // an integral scalar keeps the tensor's dtype
        Assert.Equal(ScalarType.Float32, (i * 0.5).Dtype);       // a float scalar promotes to the default float
        Assert.Equal(ScalarType.Float32, (i / 2).Dtype);         // true division of integers is floating
        Assert.Equal(ScalarType.Int64, (i + Torch.Arange(3)).Dtype);
        Assert.Equal(ScalarType.Float64, (T.F(1) + T.D(1)).Dtype);
        Assert.Equal(ScalarType.Float32, (T.F(1) + T.D(1).Sum()).Dtype); // a 0-dim tensor does not promote a dimensioned one
        Assert.Equal(ScalarType.Float32, (Torch.Ones([2], ScalarType.BFloat16) + Torch.Ones([2], ScalarType.Float16)).Dtype);
    }

    [Fact]
    public void Integer_tensors_stay_integer_under_integral_scalars()
    {
        // Regression: every C# scalar reached libtorch as a double, so Arange(5) + 1 became float32,
        // FloorDivide of positions gave floats and Add(int, int) failed on its alpha of 1.0.
        using var scope = Torch.NewScope();
        var pos = Torch.Arange(5);
        void Long(long[] expected, Tensor t)
        {
            Assert.Equal(ScalarType.Int64, t.Dtype);
            Assert.Equal(expected, t.ToArray<long>());
        }
        Long([1, 2, 3, 4, 5], pos + 1);
        Long([1, 2, 3, 4, 5], 1 + pos);
        Long([-1, 0, 1, 2, 3], pos - 1);
        Long([3, 2, 1, 0, -1], 3 - pos);
        Long([0, 3, 6, 9, 12], pos * 3);
        Long([0, 1, 4, 9, 16], pos.Pow(2));
        Long([0, 1, 2, 0, 1], pos.Remainder(3));
        Long([0, 0, 1, 1, 2], pos.Div(2, "floor"));
        Long([1, 1, 2, 3, 3], pos.Clamp(1, 3));
        Long([0, 3, 6, 9, 12], pos.Add(pos, alpha: 2));
        Long([0, -1, -2, -3, -4], pos.Sub(pos, alpha: 2));
        Long([2, 3, 4, 5, 6], pos.Clone().Add_(1).Add_(Torch.Ones([5], ScalarType.Int64)));
        Long([0, 2, 4, 6, 8], pos.Clone().Mul_(2));
        Long([2, 1], T.B(true, false) + 1);
        Assert.Equal(new[] { 2, 4 }, Torch.Arange(1, 3, dtype: ScalarType.Int32).Mul(2).ToArray<int>());
        Assert.Equal(new byte[] { 11, 12 }, Torch.Arange(1, 3, dtype: ScalarType.UInt8).Add(10).ToArray<byte>());

        // non-integral scalars still promote, as in Python; an integral alpha on floats changes nothing
        Assert.Equal(new float[] { 0, 0.5f, 1, 1.5f, 2 }, (pos * 0.5).ToArray<float>());
        Assert.Equal(new float[] { 0.5f, 1.5f }, (Torch.Arange(2) + 0.5).ToArray<float>());
        Assert.Equal(new double[] { 1.5, 5.5 }, T.D(0.5, 1.5).Add(T.D(1, 4)).ToArray<double>());
        Assert.Throws<TorchException>(() => pos.Add(pos, alpha: 0.5)); // torch rejects a fractional alpha for integers
    }

    [Fact]
    public void Data_is_a_live_view_of_contiguous_cpu_memory()
    {
        using var scope = Torch.NewScope();
        var t = Torch.Zeros([2, 2], ScalarType.Int32);
        var span = t.Data<int>();
        span[3] = 42;
        Assert.Equal(new[] { 0, 0, 0, 42 }, t.ToArray<int>());
        t.Fill_(5);
        Assert.Equal(5, t.Data<int>()[0]);
        var bf = Torch.Ones([2], ScalarType.BFloat16);
        Assert.Equal((ushort)0x3F80, bf.Data<ushort>()[1]); // any same-sized type views the bits
    }

    [Fact]
    public void Items_in_every_dtype()
    {
        using var scope = Torch.NewScope();
        Assert.Equal(7L, Torch.Full([], 7L).ItemLong());
        Assert.Equal(1.0, Torch.Full([], 1L, ScalarType.Bool).Item());
        Assert.Equal(0.5, Torch.Scalar(0.5, ScalarType.BFloat16).Item());
        Assert.Equal(0.5, Torch.Scalar(0.5, ScalarType.Float16).Item());
        Assert.Equal(200.0, Torch.Scalar(200, ScalarType.UInt8).Item());
        Assert.Equal(3L, Torch.Scalar(3.9, ScalarType.Float64).ItemLong()); // truncates
        Assert.Equal(-2, Torch.Full([1], -2L, ScalarType.Int32).Item<int>());
    }

    [Fact]
    public void Any_doubles_round_trip_exactly() => Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest(100).WithQuietOnSuccess(true),
        Prop.ForAll(ArbMap.Default.ArbFor<double[]>(), v =>
        {
            using var scope = Torch.NewScope();
            var t = Torch.From(v);
            Assert.Equal(v, t.ToArray<double>()); // NaN, ±∞ and −0 included
            Assert.Equal(v, Torch.FromBytes(t.ToBytes(), [v.Length], ScalarType.Float64).ToArray<double>());
            Assert.True(v.Select(BitConverter.DoubleToInt64Bits).SequenceEqual(t.ToArray<double>().Select(BitConverter.DoubleToInt64Bits)));
        }));

    [Fact]
    public void Any_longs_round_trip_and_survive_a_float64_detour_when_small() => Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest(100).WithQuietOnSuccess(true),
        Prop.ForAll(ArbMap.Default.ArbFor<long[]>(), v =>
        {
            using var scope = Torch.NewScope();
            var t = Torch.From(v);
            Assert.Equal(v, t.ToArray<long>());
            var small = v.Select(x => x % (1L << 52)).ToArray();
            Assert.Equal(small, Torch.From(small).Double().Long().ToArray<long>());
        }));
}
